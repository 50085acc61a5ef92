"""The report's cost section (shared/report/cost_view.py): per policy and per VM with month to date, the estimated
part, last 30 days and a trend line each; nothing from the data reaches the page unescaped; said when no run yet."""

from __future__ import annotations

from dataclasses import replace

from shared.report.render import render
from tests.report.sample import sample_report
from tests.unit.test_report_render import parse


def test_the_cost_section_has_a_row_and_a_trend_per_policy_and_per_vm():
    data = sample_report()
    doc = parse(render(data)).root
    section = doc.find(id="cost")
    policy_rows = section.find(id="cost-policy-table").all("tbody")[0].all("tr")
    vm_rows = section.find(id="cost-vm-table").all("tbody")[0].all("tr")
    assert len(policy_rows) == len(data.cost["policies"]) and len(vm_rows) == len(data.cost["vms"])
    assert len(section.all("svg")) == len(policy_rows) + len(vm_rows)
    assert all(len(s.all("polyline")[0].attrs["points"].split()) == 8 for s in section.all("svg"))  # eight days each
    first = data.cost["vms"][0]
    assert f"{first['month_to_date']:,.2f} USD" in vm_rows[0].text()


def test_a_name_from_the_data_is_escaped_and_no_run_yet_is_said():
    data = sample_report()
    nasty = {**data.cost["vms"][0], "name": '/subscriptions/x/vm/<script>alert(1)</script>', "policy": "<b>p</b>"}
    html = render(replace(data, cost={**data.cost, "vms": [nasty]}))
    assert "<script>alert(1)</script>" not in html and "&lt;b&gt;p&lt;/b&gt;" in html
    empty = parse(render(replace(data, cost=None))).root.find(id="cost")
    assert "No cost run yet" in empty.text()


def test_a_large_fleet_shows_its_costliest_vms_and_says_where_the_rest_are():
    from shared.report.cost_view import MAX_VMS

    data = sample_report()
    row = data.cost["vms"][0]
    many = [{**row, "name": f"/subscriptions/x/vm/vm-{i:05d}", "month_to_date": 10_000.0 - i} for i in range(10_000)]
    html = render(replace(data, cost={**data.cost, "vms": many}))
    vm_rows = parse(html).root.find(id="cost").find(id="cost-vm-table").all("tbody")[0].all("tr")
    assert len(vm_rows) == MAX_VMS and "vm-00000" in vm_rows[0].text()  # the costliest first
    assert f"{MAX_VMS} costliest of 10000" in html and "vmkeeper cost lists every VM" in html


def test_a_budget_not_compared_and_unpriced_regions_are_said():
    data = sample_report()
    run = {**(data.cost.get("run") or {}), "unpriced": ["westeurope (EUR)"],
           "budgetsSkipped": [{"policy": "gold", "budgetCurrency": "USD", "costCurrencies": ["EUR"]}],
           "deferred": {"sub-1": "2026-11-28T11:00:00Z"}, "pagesRead": {"sub-1": 3}}
    text = parse(render(replace(data, cost={**data.cost, "run": run}))).root.find(id="cost").text()
    assert "Policy gold: its budget (USD) was not compared, its cost being in EUR." in text
    assert "westeurope (EUR)" in text
    assert "Subscription sub-1: Cost Management throttled the query after 3 page(s), not kept" in text
