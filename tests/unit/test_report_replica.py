"""The report page's replica kind (pure rendering): a Replica column only when some VM has or needs a Site Recovery
replica, its cells in minutes with Azure's health and errors as text, and no replica in the points per day."""

from __future__ import annotations

from dataclasses import replace

from shared.report.model import REPLICA
from shared.report.render import render
from tests.report.sample import sample_report
from tests.unit.test_report_render import parse


def vm_heads(page: str) -> list[str]:
    table = parse(page).root.find(id="vm-table")
    return [th.text() for th in table.all("thead")[0].all("th")]


def test_the_replica_column_is_there_only_when_some_vm_has_a_replica():
    data = sample_report()
    assert vm_heads(render(data))[-1] == "ReplicaRPO / target"
    plain = replace(data, vms=tuple(replace(v, kinds=tuple(k for k in v.kinds if k.kind != REPLICA)) for v in data.vms))
    assert not [h for h in vm_heads(render(plain)) if h.startswith("Replica")]  # a fleet without Site Recovery
    points = parse(render(data)).root.find(id="points").all("details")[0].all("table")[0]
    assert not [th.text() for th in points.all("thead")[0].all("th") if th.text().startswith("Replica")]


def test_an_unhealthy_replicas_health_and_errors_are_text():
    data = sample_report()
    i, vm = next((i, v) for i, v in enumerate(data.vms) if any(k.kind == REPLICA and k.state == "breached"
                                                               for k in v.kinds))
    kinds = tuple(replace(k, replication={**k.replication, "health": "<b>Critical</b>", "errors": [{
        "code": "X<script>", "message": 'a "quoted" <i>message</i>', "recommended_action": ""}]})
        if k.kind == REPLICA else k for k in vm.kinds)
    page = render(replace(data, vms=data.vms[:i] + (replace(vm, kinds=kinds),) + data.vms[i + 1:]))
    assert "<b>Critical</b>" not in page and "X<script>" not in page and "<i>message</i>" not in page
    row = parse(page).root.find(id="vm-table").all("tbody")[0].all("tr")[i]
    cell = row.all("td")[-1]
    assert cell.text().startswith("<b>Critical</b> ") and cell.attrs["data-health"] == "<b>Critical</b>"
    assert 'X<script>: a "quoted" <i>message</i>' in cell.attrs["title"]
