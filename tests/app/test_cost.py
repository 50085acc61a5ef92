"""Cost per VM through the local Functions host: the daily timer asks local Azure's Cost Management once per scope
(grouped by the vmkeeper-vm tag, filtered to vmkeeper's kinds of artifact), records cost per VM and per policy
that agrees with the emulated fleet's used sizes × the Retail Prices API's prices, estimates points newer than the
cost data from the retail price × size, honours a 429's Retry-After by leaving the scope for a later run, and
raises vmkeeper.cost.over_budget once per policy and month (two runs, or two at once)."""

from __future__ import annotations

import calendar
import json
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableClient
from azure.mgmt.compute import ComputeManagementClient

from shared.alerts import events as A
from tests.app.restore_world import POLICIES, REGION, old_snapshot_set, protected, start

GB = 1024**3
DAY = 86400
QUERY = "Microsoft.CostManagement/query/action"


def cost_world(az, emu, azurite, tmp_path, monkeypatch, *, lag_hours: int = 0, budget: float | None = None,
               **extra: str) -> dict[str, Any]:
    extra.setdefault("VMKEEPER_RETAIL_PRICES_URL", f"{az.base_url}/api/retail/prices")
    w = start(az, emu, azurite, tmp_path, monkeypatch, VMKEEPER_COST_SCHEDULE="0 15 6 * * *",
              VMKEEPER_COST_TABLE=f"cost{secrets.token_hex(4)}", VMKEEPER_ALERTS_TABLE=f"alerts{secrets.token_hex(4)}",
              VMKEEPER_COST_DATA_LAG_HOURS=str(lag_hours), **extra)
    policies = json.loads(json.dumps(POLICIES))
    if budget is not None:
        policies["policies"]["full"]["budget"] = {"monthly": budget, "currency": "USD"}
    (tmp_path / "policies.json").write_text(json.dumps(policies))
    az.settings(cost_management={"data_lag_hours": lag_hours})
    w["azurite"] = azurite
    return w


@pytest.fixture
def world(az, emu, azurite, tmp_path, monkeypatch):
    w = cost_world(az, emu, azurite, tmp_path, monkeypatch)
    yield w
    w["host"].close()


def _snapshots(az, world) -> list[Any]:
    c = az.client(ComputeManagementClient, world["sub"])
    return [s for s in c.snapshots.list() if (s.tags or {}).get("managed-by") == "vmkeeper"]


def _created_at(az, emu, ids: list[str], when: float) -> None:
    """Make each resource as if created at ``when`` (real epoch seconds), whatever the emulator's clock."""
    with emu.lock:
        created = {i: emu.store.get(i).created for i in ids}
    for i, c in created.items():
        az.admin("POST", "costmanagement/age", {"ids": [i], "seconds": max(0.0, c - when)})


def _billed(price: float, gb: float, start: float, end: float, first_day_start: float) -> float:
    """What the emulator bills: price × GB over each day's share of its month, from ``start`` (not before the
    window's first day) to ``end``."""
    total, t = 0.0, max(start, first_day_start)
    while t < end:
        d = datetime.fromtimestamp(t, UTC)
        stop = min(end, datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() + DAY)
        total += price * gb * (stop - t) / (DAY * calendar.monthrange(d.year, d.month)[1])
        t = stop
    return total


def _retail_price(az, region: str = REGION) -> float:
    import ssl
    import urllib.parse
    import urllib.request

    q = urllib.parse.quote(f"meterName eq 'Standard LRS Snapshots' and armRegionName eq '{region}'")
    with urllib.request.urlopen(f"{az.base_url}/api/retail/prices?$filter={q}",  # noqa: S310 (loopback)
                                context=ssl.create_default_context(cafile=az.ca_path)) as resp:
        return json.loads(resp.read())["Items"][0]["retailPrice"]


def _queries(az, since: int) -> list[dict[str, Any]]:
    return [c for c in az.calls(since) if c["operation"] == QUERY and "vmkeeper/" in (c.get("userAgent") or "")]


def alerts(world) -> list[dict[str, Any]]:
    table = TableClient.from_connection_string(world["azurite"].connection_string,
                                               world["settings"]["VMKEEPER_ALERTS_TABLE"])
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return [json.loads(r["event"]) for r in table.list_entities()]
    except ResourceNotFoundError:  # no alert was ever recorded: the outbox makes its table on first use
        return []


def test_cost_per_vm_agrees_with_used_sizes_times_prices_in_one_query_per_scope(world, az, emu):
    old_snapshot_set(az, world, timedelta(0))
    snaps = _snapshots(az, world)
    c = az.client(ComputeManagementClient, world["sub"])
    vm = c.virtual_machines.get("rg-vm-00", "vm-00000")
    blank = c.snapshots.begin_create_or_update("rg-vm-00", "not-a-vm", {
        "location": REGION, "tags": {"managed-by": "vmkeeper", "vmkeeper-vm": ""},
        "properties": {"incremental": False, "creationData": {"createOption": "Copy",
                                                               "sourceResourceId": vm.storage_profile.os_disk.managed_disk.id}}}).result()
    three_days_ago = time.time() - 3 * DAY
    _created_at(az, emu, [s.id for s in snaps] + [blank.id], three_days_ago)
    before = len(az.calls())
    world["host"].fire_timer("cost_per_vm")
    assert len(_queries(az, before)) == 1  # one scope (the world's one subscription), one query, one page
    recorded = world["wiring"].cost.recorded()
    now = min(emu.clock.timestamp(), datetime.now(UTC).replace(hour=23, minute=59, second=59).timestamp() + 1)
    today = datetime.now(UTC).date()
    month_start = datetime(today.year, today.month, 1, tzinfo=UTC).timestamp()
    price = _retail_price(az)
    with emu.lock:
        used = {s.id: emu.store.get(s.id).internal["usedBytes"] for s in snaps}
        started = {s.id: emu.store.get(s.id).created for s in snaps}
    assert all(u > 0 for u in used.values())
    expected = sum(_billed(price, used[i] / GB, started[i], now, month_start) for i in used)
    (row,) = [v for v in recorded["vms"] if v["name"] == world["vm_id"].lower()]
    assert row["month_to_date"] == pytest.approx(expected, rel=1e-3)
    assert row["policy"] == "full" and row["estimate"] == 0
    assert row["last_30_days"] == pytest.approx(sum(_billed(price, used[i] / GB, started[i], now, 0) for i in used),
                                                rel=1e-3)
    assert sum(row["daily"].values()) == pytest.approx(row["last_30_days"], rel=1e-6)  # the trend's series
    assert len(row["daily"]) in (4, 5)  # three days ago … today (and tomorrow's first seconds, the emulator ahead)
    (policy,) = [p for p in recorded["policies"] if p["name"] == "full"]
    assert policy["month_to_date"] == pytest.approx(row["month_to_date"], rel=1e-9)
    # An empty vmkeeper-vm value names no VM: counted, as untagged.
    (untagged,) = [v for v in recorded["vms"] if v["name"] == "untagged"]
    assert untagged["month_to_date"] > 0
    # The report page shows it: per policy and per VM, with a trend line each.
    page = world["wiring"].reports.html()
    assert 'id="cost-policy-table"' in page and 'id="cost-vm-table"' in page and ">vm-00000<" in page


def test_a_429_is_left_for_a_later_run_after_its_retry_after(world, az):
    from azure.mgmt.costmanagement import CostManagementClient

    old_snapshot_set(az, world, timedelta(0))
    az.settings(cost_management={"queries_per_window": 1, "window_seconds": 2})
    body = {"type": "ActualCost", "timeframe": "MonthToDate", "dataset": {"granularity": "None"}}
    az.client(CostManagementClient).query.usage(f"/subscriptions/{world['sub']}", body)  # someone else's query
    before = len(az.calls())
    started = time.monotonic()
    world["host"].fire_timer("cost_per_vm")
    assert time.monotonic() - started < 2  # not slept on inside the function
    (refused,) = _queries(az, before)
    assert refused["status"] == 429
    run = world["wiring"].cost.recorded()["run"]
    assert list(run["deferred"]) == [world["sub"]] and run["queried"] == []
    world["host"].fire_timer("cost_per_vm")  # before Retry-After: the scope is not asked again
    assert len(_queries(az, before)) == 1
    time.sleep(2.2)
    world["host"].fire_timer("cost_per_vm")  # after it: asked, and answered
    assert [c["status"] for c in _queries(az, before)] == [429, 200]
    recorded = world["wiring"].cost.recorded()
    assert recorded["run"]["queried"] == [world["sub"]]
    world["host"].fire_timer("cost_per_vm")  # the same day again: nothing more asked
    assert len(_queries(az, before)) == 2


def test_points_newer_than_the_cost_data_are_estimated_from_the_retail_price_and_size(
        az, emu, azurite, tmp_path, monkeypatch):
    w = cost_world(az, emu, azurite, tmp_path, monkeypatch, lag_hours=6)
    try:
        old_snapshot_set(az, w, timedelta(0))
        snaps = _snapshots(az, w)
        an_hour_ago = time.time() - 3600
        _created_at(az, emu, [s.id for s in snaps], an_hour_ago)
        w["host"].fire_timer("cost_per_vm")
        recorded = w["wiring"].cost.recorded()
        at = datetime.fromisoformat(recorded["at"].replace("Z", "+00:00")).timestamp()
        price = _retail_price(az)
        size = sum(s.disk_size_gb for s in snaps)  # provisioned: the used size is no property
        expected = _billed(price, size, an_hour_ago, at, 0)
        (row,) = [v for v in recorded["vms"] if v["name"] == w["vm_id"].lower()]
        assert row["estimate"] == pytest.approx(expected, rel=1e-3) and expected > 0
        assert row["month_to_date"] == pytest.approx(row["estimate"], rel=1e-9)  # none of it in the cost data yet
        with emu.lock:
            used = sum(emu.store.get(s.id).internal["usedBytes"] for s in snaps) / GB
        assert used < size  # the estimate is the upper bound: provisioned, not used
    finally:
        w["host"].close()


def test_a_budget_breach_alerts_once_per_month_over_runs_and_concurrent_runs(az, emu, azurite, tmp_path, monkeypatch):
    w = cost_world(az, emu, azurite, tmp_path, monkeypatch, budget=0.0001)
    try:
        old_snapshot_set(az, w, timedelta(0))
        _created_at(az, emu, [s.id for s in _snapshots(az, w)], time.time() - 2 * DAY)
        w["host"].fire_timer("cost_per_vm")
        w["host"].fire_timer("cost_per_vm")
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                barrier.wait()
                w["wiring"].cost.run(datetime.now(UTC))
            except BaseException as exc:  # noqa: BLE001 (reported below)
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        (alert,) = [e for e in alerts(w) if e["type"] == A.COST_OVER_BUDGET]
        month = datetime.now(UTC).strftime("%Y-%m")
        assert alert["subject"] == "policy/full"
        assert alert["data"]["month"] == month and alert["data"]["budget"] == 0.0001
        assert alert["data"]["monthToDate"] > 0.0001 and alert["data"]["currency"] == "USD"
    finally:
        w["host"].close()


def test_a_policy_within_its_budget_raises_nothing(az, emu, azurite, tmp_path, monkeypatch):
    w = cost_world(az, emu, azurite, tmp_path, monkeypatch, budget=1000.0)
    try:
        old_snapshot_set(az, w, timedelta(0))
        w["host"].fire_timer("cost_per_vm")
        assert [e for e in alerts(w) if e["type"] == A.COST_OVER_BUDGET] == []
        assert w["wiring"].cost.recorded()["run"]["alerts"] == 0
    finally:
        w["host"].close()


@pytest.fixture(scope="module")
def saved(_local_azure, azurite, tmp_path_factory):
    """A world one scheduled slot protected (a snapshot set, a restore point, each copied to the second region)."""
    return protected(_local_azure, azurite, tmp_path_factory.mktemp("cost"), build=cost_world)


def test_snapshots_restore_points_and_their_copies_cost_their_used_sizes_in_each_region(
        az, emu, azurite, tmp_path, monkeypatch, saved):
    w = cost_world(az, emu, azurite, tmp_path, monkeypatch, saved=saved)
    try:
        c = az.client(ComputeManagementClient, w["sub"])
        snaps = _snapshots(az, w)
        collections = [r for r in c.restore_point_collections.list_all() if (r.tags or {}).get("managed-by") == "vmkeeper"]
        assert {s.location for s in snaps} == {"westeurope", "northeurope"} and len(collections) == 2
        _created_at(az, emu, [s.id for s in snaps] + [r.id for r in collections], time.time() - 2 * DAY)
        w["host"].fire_timer("cost_per_vm")
        recorded = w["wiring"].cost.recorded()
        now = min(emu.clock.timestamp(), datetime.now(UTC).replace(hour=23, minute=59, second=59).timestamp() + 1)
        prices = {r: _retail_price(az, r) for r in ("westeurope", "northeurope")}
        assert prices["westeurope"] != prices["northeurope"]  # each region priced on its own
        expected = 0.0
        with emu.lock:
            for s in snaps:
                res = emu.store.get(s.id)
                expected += _billed(prices[s.location], res.internal["usedBytes"] / GB, res.created, now, 0)
            for r in collections:
                drps = [x for x in emu.store.resources.values()
                        if x.key.startswith(r.id.lower() + "/") and x.type.endswith("diskRestorePoints")]
                assert len(drps) == 3  # the OS disk and two data disks
                expected += sum(_billed(prices[r.location], d.internal["usedBytes"] / GB, d.created, now, 0)
                                for d in drps)
        (row,) = [v for v in recorded["vms"] if v["name"] == w["vm_id"].lower()]
        assert row["last_30_days"] == pytest.approx(expected, rel=1e-3)
        (policy,) = [p for p in recorded["policies"] if p["name"] == "full"]
        assert policy["last_30_days"] == pytest.approx(expected, rel=1e-3)
    finally:
        w["host"].close()


def test_a_new_restore_point_is_estimated_from_its_disks_sizes(az, emu, azurite, tmp_path, monkeypatch, saved):
    w = cost_world(az, emu, azurite, tmp_path, monkeypatch, lag_hours=6, saved=saved)
    try:
        c = az.client(ComputeManagementClient, w["sub"])
        snaps = _snapshots(az, w)
        collections = [r for r in c.restore_point_collections.list_all() if (r.tags or {}).get("managed-by") == "vmkeeper"]
        an_hour_ago = time.time() - 3600
        _created_at(az, emu, [s.id for s in snaps] + [r.id for r in collections], an_hour_ago)
        w["host"].fire_timer("cost_per_vm")
        recorded = w["wiring"].cost.recorded()
        at = datetime.fromisoformat(recorded["at"].replace("Z", "+00:00")).timestamp()
        expected = sum(_billed(_retail_price(az, s.location), s.disk_size_gb, an_hour_ago, at, 0) for s in snaps)
        for r in collections:
            (rp,) = c.restore_point_collections.get(r.id.split("/")[4], r.name, expand="restorePoints").restore_points
            storage = rp.source_metadata.storage_profile
            size = storage.os_disk.disk_size_gb + sum(d.disk_size_gb for d in storage.data_disks)
            created = rp.time_created.timestamp()
            assert abs(created - an_hour_ago) < 120  # aged with its collection
            expected += _billed(_retail_price(az, r.location), size, created, at, 0)
        (row,) = [v for v in recorded["vms"] if v["name"] == w["vm_id"].lower()]
        assert row["estimate"] == pytest.approx(expected, rel=1e-3)
        assert row["month_to_date"] == pytest.approx(row["estimate"], rel=1e-9)
    finally:
        w["host"].close()


def test_retail_prices_out_of_reach_leave_the_points_unpriced_and_the_run_goes_on(az, emu, azurite, tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    w = cost_world(az, emu, azurite, tmp_path, monkeypatch, lag_hours=6,
                   VMKEEPER_RETAIL_PRICES_URL=f"https://127.0.0.1:{closed}/api/retail/prices")
    try:
        old_snapshot_set(az, w, timedelta(0))
        _created_at(az, emu, [s.id for s in _snapshots(az, w)], time.time() - 3600)  # within the data lag
        w["host"].fire_timer("cost_per_vm")
        recorded = w["wiring"].cost.recorded()
        assert recorded is not None
        run = recorded["run"]
        assert run["queried"] == [w["sub"]] and run["unpriced"] == [REGION] and REGION in run["priceErrors"]
        assert all(v["estimate"] == 0 for v in recorded["vms"])  # not estimated, not guessed
    finally:
        w["host"].close()


def test_a_collection_deleted_after_resource_graph_listed_it_is_skipped_and_the_run_goes_on(
        az, emu, azurite, tmp_path, monkeypatch, saved):
    w = cost_world(az, emu, azurite, tmp_path, monkeypatch, lag_hours=6, saved=saved)
    try:
        c = az.client(ComputeManagementClient, w["sub"])
        collections = [r for r in c.restore_point_collections.list_all() if (r.tags or {}).get("managed-by") == "vmkeeper"]
        (gone,) = [r for r in collections if r.location == REGION]
        _created_at(az, emu, [s.id for s in _snapshots(az, w)] + [r.id for r in collections], time.time() - 3600)
        graph_calls = lambda: [x for x in az.calls() if x["method"] == "POST" and "resourcegraph" in x["path"].lower()]  # noqa: E731
        before = len(graph_calls())
        # Resource Graph answers slowly; while its second query's (the collections') answer is on its way, one
        # collection is deleted: the run then reads a collection that is gone (as with Resource Graph's lag).
        az.faults([{"kind": "slow", "method": "POST", "path": "(?i)resourcegraph", "delay_ms": 1500, "probability": 1}])

        def delete_once_listed() -> None:
            deadline = time.monotonic() + 30
            while len(graph_calls()) < before + 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            c.restore_point_collections.begin_delete(gone.id.split("/")[4], gone.name).result()

        deleter = threading.Thread(target=delete_once_listed)
        deleter.start()
        try:
            w["host"].fire_timer("cost_per_vm")
        finally:
            deleter.join()
            az.faults([])
        gets = [x for x in az.calls() if x["method"] == "GET" and x["path"].split("?")[0].lower() == gone.id.lower()]
        assert [x["status"] for x in gets][-1:] == [404]  # it was read, and gone
        recorded = w["wiring"].cost.recorded()
        assert recorded is not None and recorded["run"]["queried"] == [w["sub"]]
        assert "unread" not in recorded["run"]  # gone is not a failure
        (row,) = [v for v in recorded["vms"] if v["name"] == w["vm_id"].lower()]
        assert row["estimate"] > 0  # the snapshots and the other collection are still estimated
    finally:
        w["host"].close()


def test_a_scope_billed_in_another_currency_keeps_it_and_a_budget_in_usd_is_skipped_and_said(
        az, emu, azurite, tmp_path, monkeypatch, saved):
    w = cost_world(az, emu, azurite, tmp_path, monkeypatch, lag_hours=6, budget=0.0001, saved=saved)
    try:
        az.settings(cost_management={"currency": "EUR"})  # the subscription is billed in EUR
        c = az.client(ComputeManagementClient, w["sub"])
        collections = [r for r in c.restore_point_collections.list_all() if (r.tags or {}).get("managed-by") == "vmkeeper"]
        _created_at(az, emu, [s.id for s in _snapshots(az, w)], time.time() - 2 * DAY)  # in the cost data
        _created_at(az, emu, [r.id for r in collections], time.time() - 3600)  # newer: to estimate
        before = len(az.calls())
        w["host"].fire_timer("cost_per_vm")
        asked = [x for x in az.calls(before) if x["path"].startswith("/api/retail/prices")]
        assert asked and all(x["status"] == 400 for x in asked)  # asked in EUR; local Azure serves USD only
        recorded = w["wiring"].cost.recorded()
        run = recorded["run"]
        assert run["queried"] == [w["sub"]]
        assert run["unpriced"] == ["northeurope (EUR)", "westeurope (EUR)"]
        assert all("USD" in why for why in run["priceErrors"].values())  # the API's own reason
        (row,) = [v for v in recorded["vms"] if v["name"] == w["vm_id"].lower()]
        assert row["currency"] == "EUR" and row["month_to_date"] > 0 and row["estimate"] == 0  # no USD mixed in
        assert {p["currency"] for p in recorded["policies"]} == {"EUR"}
        assert run["budgetsSkipped"] == [{"policy": "full", "budgetCurrency": "USD", "costCurrencies": ["EUR"]}]
        assert run["alerts"] == 0 and [e for e in alerts(w) if e["type"] == A.COST_OVER_BUDGET] == []
    finally:
        az.settings(cost_management={"currency": "USD"})
        w["host"].close()


def test_a_429_on_a_later_page_defers_the_scope_and_says_how_many_pages_were_read(world, az, emu):
    old_snapshot_set(az, world, timedelta(0))
    _created_at(az, emu, [s.id for s in _snapshots(az, world)], time.time() - 3 * DAY)  # rows on several days
    az.settings(cost_management={"page_rows": 1})  # every row a page: the fleet's rows need several
    try:
        before = len(az.calls())
        # The first page's answer is slow; once it is logged, the next POST to the query (the nextLink) is a 429.
        az.faults([{"kind": "slow", "method": "POST", "path": "CostManagement/query", "delay_ms": 1500, "count": 1}])

        def throttle_next_page() -> None:
            deadline = time.monotonic() + 30
            while not _queries(az, before) and time.monotonic() < deadline:
                time.sleep(0.02)
            az.faults([{"kind": "429", "method": "POST", "path": "CostManagement/query", "retry_after": 5,
                        "count": 1}])

        thrower = threading.Thread(target=throttle_next_page)
        thrower.start()
        try:
            world["host"].fire_timer("cost_per_vm")
        finally:
            thrower.join()
            az.faults([])
        assert [c["status"] for c in _queries(az, before)] == [200, 429]
        run = world["wiring"].cost.recorded()["run"]
        assert list(run["deferred"]) == [world["sub"]] and run["queried"] == []
        assert run["pagesRead"] == {world["sub"]: 1}  # said: the page read is not kept as if it were the month
    finally:
        az.settings(cost_management={"page_rows": 1000})


def test_a_collection_that_cannot_be_read_is_said_and_the_run_goes_on(az, emu, azurite, tmp_path, monkeypatch, saved):
    w = cost_world(az, emu, azurite, tmp_path, monkeypatch, lag_hours=6, saved=saved)
    try:
        c = az.client(ComputeManagementClient, w["sub"])
        collections = [r for r in c.restore_point_collections.list_all() if (r.tags or {}).get("managed-by") == "vmkeeper"]
        (broken,) = [r for r in collections if r.location == REGION]
        _created_at(az, emu, [s.id for s in _snapshots(az, w)] + [r.id for r in collections], time.time() - 3600)
        az.faults([{"kind": "500", "method": "GET", "path": f"(?i){broken.name}$", "probability": 1}])
        try:
            w["host"].fire_timer("cost_per_vm")
        finally:
            az.faults([])
        recorded = w["wiring"].cost.recorded()
        assert recorded is not None and recorded["run"]["queried"] == [w["sub"]]
        assert list(recorded["run"]["unread"]) == [broken.id.lower()]  # said: its new points are not estimated
        (row,) = [v for v in recorded["vms"] if v["name"] == w["vm_id"].lower()]
        assert row["estimate"] > 0  # the snapshots and the other collection still are
    finally:
        w["host"].close()
