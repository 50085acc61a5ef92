"""Cost per VM, the pure parts (shared/cost/model.py): the one query a scope gets, its rows read by column name,
the estimate for points newer than the cost data, the sums per VM and per policy, the budget decision."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shared.cost import model as M
from shared.cost.prices import snapshot_price
from shared.policy.document import BudgetSpec

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
VM = "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1"
SNAP = "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/snapshots/snap1"


def test_one_query_covers_month_to_date_and_the_last_30_days_daily_grouped_by_the_vm_tag():
    q = M.query(NOW)
    assert q["timeframe"] == "Custom" and q["dataset"]["granularity"] == "Daily"
    assert q["timePeriod"]["from"].startswith("2026-11-08") and q["timePeriod"]["to"].startswith("2026-12-07")
    assert q["dataset"]["grouping"][0] == {"type": "TagKey", "name": "vmkeeper-vm"}
    assert set(q["dataset"]["filter"]["dimensions"]["values"]) == set(M.RESOURCE_TYPES)
    # On the 31st, the month's first day is earlier than 29 days ago: the window starts there (31 days, Daily's most).
    first, last = M.window(datetime(2026, 12, 31, tzinfo=UTC))
    assert (first, last) == (date(2026, 12, 1), date(2026, 12, 31)) and (last - first).days + 1 == 31


def test_rows_are_read_by_column_name_and_an_empty_or_missing_tag_is_untagged():
    columns = [{"name": "Cost"}, {"name": "TagKey"}, {"name": "TagValue"}, {"name": "ResourceId"},
               {"name": "UsageDate"}, {"name": "Currency"}]
    rows = M.parse(columns, [[1.5, "vmkeeper-vm", VM.upper(), SNAP, 20261206, "USD"],
                             [2.0, "vmkeeper-vm", "", SNAP, 20261206, "USD"],
                             [3.0, "", "", "/x/vault", 20261205, "USD"]])
    assert [r.vm for r in rows] == [VM, M.UNTAGGED, M.UNTAGGED]
    assert rows[0].day == date(2026, 12, 6) and rows[0].cost == 1.5
    reordered = M.parse(list(reversed(columns)), [["USD", 20261206, SNAP, VM, "vmkeeper-vm", 1.5]])
    assert reordered == rows[:1]
    with pytest.raises(ValueError, match="UsageDate"):
        M.parse([{"name": "Cost"}], [[1.0]])


def test_the_estimate_prices_only_points_newer_than_the_cost_data_by_day_share_of_the_month():
    cut = NOW - timedelta(hours=24)
    new = M.Point(SNAP, VM, "gold", "westeurope", 128.0, NOW - timedelta(hours=6))
    old = M.Point(SNAP + "-old", VM, "gold", "westeurope", 128.0, NOW - timedelta(hours=30))
    elsewhere = M.Point(SNAP + "-x", VM, "gold", "nowhere", 128.0, NOW - timedelta(hours=6))
    rows = M.estimate([new, old, elsewhere], {"westeurope": 0.05}, NOW, cut)
    assert [r.resource_id for r in rows] == [SNAP]
    assert sum(r.cost for r in rows) == pytest.approx(0.05 * 128 * 6 / 24 / 31)
    across = M.Point(SNAP, VM, "gold", "westeurope", 10.0, NOW - timedelta(hours=14))  # from yesterday 22:00
    parts = M.estimate([across], {"westeurope": 0.05}, NOW, cut)
    assert [r.day for r in parts] == [date(2026, 12, 6), date(2026, 12, 7)]
    assert parts[0].cost == pytest.approx(0.05 * 10 * 2 / 24 / 31)


def test_sums_per_vm_and_per_policy_month_to_date_and_last_30_days():
    actual = [M.Row(VM, SNAP, date(2026, 12, 6), 1.0, "USD"), M.Row(VM, SNAP, date(2026, 11, 20), 4.0, "USD"),
              M.Row(M.UNTAGGED, "/x/vault", date(2026, 12, 6), 2.0, "USD")]
    estimated = [M.Row(VM, SNAP + "-new", date(2026, 12, 7), 0.5, "USD")]
    vms, policies = M.summarize(actual, estimated, {SNAP: "gold", SNAP + "-new": "gold"}, NOW, "s")
    assert vms[VM].month_to_date == 1.5 and vms[VM].last_30_days == 5.5 and vms[VM].estimate == 0.5
    assert vms[VM].policy == "gold" and vms[VM].daily == {"2026-12-06": 1.0, "2026-11-20": 4.0, "2026-12-07": 0.5}
    assert policies["gold"].month_to_date == 1.5 and policies[M.NO_POLICY].month_to_date == 2.0
    assert vms[M.UNTAGGED].month_to_date == 2.0


def test_over_budget_is_actual_plus_estimate_over_the_monthly_amount_in_the_same_currency():
    budgets = {"gold": BudgetSpec(10.0), "silver": BudgetSpec(10.0), "eur": BudgetSpec(1.0, "EUR")}
    spent = {"gold": {"USD": 10.5}, "silver": {"USD": 10.0}, "eur": {"USD": 5.0}}
    (breach,), skipped = M.over_budget(spent, budgets, NOW)
    assert (breach.policy, breach.month, breach.spent, breach.monthly) == ("gold", "2026-12", 10.5, 10.0)
    assert skipped == [M.Skipped("eur", "EUR", ("USD",))]  # not compared, and said


def test_the_snapshot_price_is_the_lrs_snapshot_meter_per_gb_month():
    items = [{"type": "Consumption", "unitOfMeasure": "1 GB/Month", "meterName": "Standard ZRS Snapshots",
              "productName": "Snapshots", "skuName": "Standard ZRS", "retailPrice": 0.0625},
             {"type": "Consumption", "unitOfMeasure": "1 GB/Month", "meterName": "Standard LRS Snapshots",
              "productName": "Snapshots", "skuName": "Standard LRS", "retailPrice": 0.05},
             {"type": "Reservation", "unitOfMeasure": "1 GB/Month", "meterName": "LRS Snapshots",
              "productName": "Snapshots", "skuName": "Standard LRS", "retailPrice": 0.01},
             {"type": "Consumption", "unitOfMeasure": "1/Month", "meterName": "P10 LRS Disk",
              "productName": "Premium SSD", "skuName": "P10 LRS", "retailPrice": 19.71}]
    assert snapshot_price(items) == 0.05
    assert snapshot_price(items[2:]) is None


def test_an_estimate_row_is_dropped_where_cost_management_already_billed_that_resource_that_day():
    cut = NOW - timedelta(hours=24)
    point = M.Point(SNAP, VM, "gold", "westeurope", 10.0, NOW - timedelta(hours=14))  # from yesterday 22:00
    estimated = M.estimate([point], {"westeurope": 0.05}, NOW, cut)
    actual = [M.Row(VM, SNAP, date(2026, 12, 6), 0.001, "USD"),  # yesterday's two hours, already billed
              M.Row(VM, SNAP + "-other", date(2026, 12, 7), 1.0, "USD")]  # another resource's today
    kept = M.unbilled(estimated, actual)
    assert [(r.resource_id, r.day) for r in kept] == [(SNAP, date(2026, 12, 7))]
    vms, _ = M.summarize(actual, kept, {SNAP: "gold"}, NOW, "s")
    assert vms[VM].estimate == pytest.approx(kept[0].cost)  # yesterday counted once, as billed


def test_a_429s_advice_is_the_longest_of_cost_managements_own_headers_and_a_zero_is_none():
    from shared.cost.service import throttle_seconds

    rate = "x-ms-ratelimit-microsoft.costmanagement"
    assert throttle_seconds({f"{rate}-qpu-retry-after": "10", f"{rate}-entity-retry-after": "30",
                             f"{rate}-tenant-retry-after": "20", "Retry-After": "5"}) == 30
    assert throttle_seconds({f"{rate}-tenant-retry-after": "45"}) == 45  # no Retry-After at all
    assert throttle_seconds({"Retry-After": "0"}) is None  # zero is no advice (an hour's default, not 1 s)
    assert throttle_seconds({"Retry-After": "0", f"{rate}-qpu-retry-after": "0"}) is None
    assert throttle_seconds({"retry-after": "7"}) == 7
    assert throttle_seconds({}) is None and throttle_seconds(None) is None


def test_one_currency_per_vm_and_policy_and_a_budget_over_mixed_currencies_is_skipped_and_said():
    cut = NOW - timedelta(hours=24)
    actual = [M.Row(VM, SNAP, date(2026, 12, 6), 1.0, "EUR")]
    assert M.currency_of(actual) == "EUR" and M.currency_of([]) is None
    new = M.Point(SNAP + "-new", VM, "gold", "westeurope", 10.0, NOW - timedelta(hours=6))
    estimated = M.estimate([new], {"westeurope": 0.046}, NOW, cut, "EUR")  # asked in the cost data's currency
    assert {r.currency for r in estimated} == {"EUR"}
    kept, other = M.in_currency([*actual, M.Row(VM, SNAP, date(2026, 12, 6), 9.0, "USD")], "EUR")
    assert kept == actual and [r.currency for r in other] == ["USD"]
    vms, policies = M.summarize(kept, estimated, {SNAP: "gold"}, NOW, "s")
    assert vms[VM].currency == policies["gold"].currency == "EUR"
    with pytest.raises(ValueError, match="USD row"):  # never summed with another currency, whatever comes last
        M.summarize(actual, M.estimate([new], {"westeurope": 0.05}, NOW, cut), {SNAP: "gold"}, NOW, "s")
    budgets = {"gold": BudgetSpec(1.0, "EUR"), "silver": BudgetSpec(1.0, "EUR")}
    breaches, skipped = M.over_budget({"gold": {"EUR": 5.0, "USD": 5.0}, "silver": {"EUR": 5.0}}, budgets, NOW)
    assert [b.policy for b in breaches] == ["silver"] and breaches[0].currency == "EUR"
    assert skipped == [M.Skipped("gold", "EUR", ("EUR", "USD"))]  # part of gold's cost is in USD: not compared
