"""Cost Management query and the Retail Prices API of local Azure, through azure-mgmt-costmanagement 5.0.0 (it
sends api-version 2025-03-01) over HTTPS: the two official examples replayed; what the query answers agrees with
the emulated fleet's used sizes × the retail prices the emulator serves, day by day of existence; incremental
points hold what changed; the per-scope throttle answers 429 with Retry-After; nextLink pages; the Retail Prices
API filters and pages in its own shape."""

from __future__ import annotations

import calendar
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.mgmt.costmanagement import CostManagementClient

from emulator.recoveryservices.models import seed_protected_item, seed_vault
from tests.conftest import SHARED

EXAMPLES = SHARED / "next" / "examples" / "Microsoft.CostManagement" / "2025-03-01"
GB = 1024**3
DAY = 86400


@pytest.fixture
def cost(az):
    return az.client(CostManagementClient, retry_total=0)


def _key_paths(value, prefix=""):
    if isinstance(value, dict):
        out = set()
        for k, v in value.items():
            out |= {f"{prefix}{k}"} | _key_paths(v, f"{prefix}{k}.")
        return out
    if isinstance(value, list):
        out = set()
        for v in value:
            out |= _key_paths(v, f"{prefix[:-1]}[].")
        return out
    return set()


@pytest.mark.parametrize("name", ["SubscriptionQueryGrouping.json", "ResourceGroupQuery.json"])
def test_the_official_examples_replay(az, cost, sub, name):
    example = json.loads((EXAMPLES / name).read_text())
    params = example["parameters"]
    scope = f"/subscriptions/{sub}"
    if "resourceGroupName" in params:
        scope += f"/resourceGroups/{params['resourceGroupName']}"
        from azure.mgmt.resource.resources import ResourceManagementClient

        az.client(ResourceManagementClient, sub).resource_groups.create_or_update(params["resourceGroupName"],
                                                                                 {"location": "westeurope"})
    request = HttpRequest("POST", f"{az.base_url}{scope}/providers/Microsoft.CostManagement/query",
                          params={"api-version": params["api-version"]}, json=params["parameters"])
    response = cost.send_request(request)
    assert str(response.status_code) in example["responses"], response.text()
    body = response.json()
    wanted = _key_paths(example["responses"]["200"]["body"])
    assert wanted <= _key_paths(body) | {"properties.rows"}, wanted - _key_paths(body)
    assert [c["name"] for c in body["properties"]["columns"]][0] == "PreTaxCost"
    assert body["properties"]["columns"][-1] == {"name": "Currency", "type": "String"}
    # And through the SDK's own operation: the same body deserialises into a QueryResult.
    result = cost.query.usage(scope.lstrip("/") if name == "ResourceGroupQuery.json" else scope, params["parameters"])
    assert result.columns[0].name == "PreTaxCost"


def _retail(az, query: dict | None = None, url: str | None = None) -> dict:
    ctx = ssl.create_default_context(cafile=az.ca_path)
    url = url or f"{az.base_url}/api/retail/prices?" + urllib.parse.urlencode(query or {}, quote_via=urllib.parse.quote)
    with urllib.request.urlopen(url, context=ctx) as resp:  # noqa: S310 (loopback); no credential: the API is public
        return json.loads(resp.read())


def _price(az, meter: str, region: str) -> float:
    page = _retail(az, {"$filter": f"meterName eq '{meter}' and armRegionName eq '{region}'"})
    (item,) = page["Items"]
    assert item["unitOfMeasure"] in ("1 GB/Month", "1/Month") and item["type"] == "Consumption"
    return item["retailPrice"]


def _snapshot(compute, vm, name: str, disk: str, tags: dict[str, str]) -> str:
    rg = vm.id.split("/")[4]
    return compute.snapshots.begin_create_or_update(rg, name, {
        "location": vm.location, "tags": tags,
        "properties": {"incremental": True, "creationData": {"createOption": "Copy", "sourceResourceId": disk}}}).result().id


def _days_cost(price: float, quantity: float, start: float, end: float) -> float:
    """price × quantity spread over each day's share of its month, from ``start`` to ``end`` (epoch seconds)."""
    total, t = 0.0, start
    while t < end:
        day = datetime.fromtimestamp(t, UTC)
        day_start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        stop = min(end, day_start + DAY)
        total += price * quantity * (stop - t) / (DAY * calendar.monthrange(day.year, day.month)[1])
        t = stop
    return total


def test_cost_per_vm_agrees_with_used_sizes_times_retail_prices(az, emu, cost, sub, compute):
    vms = sorted(compute.virtual_machines.list_all(), key=lambda v: v.id)[:2]
    tagged, other = vms
    snap = _snapshot(compute, tagged, "s-os", tagged.storage_profile.os_disk.managed_disk.id,
                     {"vmkeeper-vm": tagged.id.lower()})
    blank = _snapshot(compute, other, "s-blank", other.storage_profile.os_disk.managed_disk.id, {"vmkeeper-vm": ""})
    vault = seed_vault(emu, sub, "rg-backup", "vault-we", tagged.location)
    seed_protected_item(emu, vault, tagged.id)
    az.admin("POST", "costmanagement/age", {"ids": [snap, blank, vault], "seconds": 3 * DAY})
    result = cost.query.usage(f"/subscriptions/{sub}", {
        "type": "ActualCost", "timeframe": "Custom",
        "timePeriod": {"from": datetime.fromtimestamp(emu.clock.timestamp() - 10 * DAY, UTC).isoformat(),
                       "to": datetime.fromtimestamp(emu.clock.timestamp(), UTC).isoformat()},
        "dataset": {"granularity": "Daily", "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
                    "grouping": [{"type": "TagKey", "name": "vmkeeper-vm"}, {"type": "Dimension", "name": "ResourceType"}],
                    "filter": {"dimensions": {"name": "ResourceType", "operator": "In", "values": [
                        "Microsoft.Compute/snapshots", "Microsoft.Compute/restorePointCollections",
                        "Microsoft.RecoveryServices/vaults"]}}}})
    now = emu.clock.timestamp()
    names = [c.name for c in result.columns]
    assert names == ["Cost", "TagKey", "TagValue", "ResourceType", "UsageDate", "Currency"]
    per: dict[tuple[str, str], float] = {}
    days = set()
    for cost_, _key, value, rtype, usage_date, currency in result.rows:
        per[(value, rtype)] = per.get((value, rtype), 0.0) + cost_
        days.add(usage_date)
        assert currency == "USD"
    assert len(days) == 4  # three days ago (part), two whole days, today (part)
    snapshot_price = _price(az, "Standard LRS Snapshots", tagged.location)
    with emu.lock:
        used = emu.store.get(snap).internal["usedBytes"]
        disk = emu.store.get(tagged.storage_profile.os_disk.managed_disk.id)
        start = emu.store.get(snap).created
    assert used == disk.properties["diskSizeBytes"] // 2  # the disk's first point holds its used bytes (half)
    expected = _days_cost(snapshot_price, used / GB, start, now)
    got = per[(tagged.id.lower(), "microsoft.compute/snapshots")]
    assert got == pytest.approx(expected, rel=1e-4)
    # An empty tag value is no VM: its snapshot's cost is there, under an empty value, not under a VM.
    assert per[("", "microsoft.compute/snapshots")] > 0
    # The vault bills the protected instance and its storage, under the vault's own (absent) tags.
    instance = _price(az, "Azure VM Protected Instances", tagged.location)
    assert per[("", "microsoft.recoveryservices/vaults")] > _days_cost(instance, 1, start, now) * 0.99


def test_an_incremental_point_holds_what_changed_since_the_last(az, emu, compute):
    vm = sorted(compute.virtual_machines.list_all(), key=lambda v: v.id)[0]
    disk = vm.storage_profile.os_disk.managed_disk.id
    first = _snapshot(compute, vm, "inc-1", disk, {})
    az.advance(DAY)
    second = _snapshot(compute, vm, "inc-2", disk, {})
    with emu.lock:
        used = emu.store.get(disk).properties["diskSizeBytes"] // 2
        assert emu.store.get(first).internal["usedBytes"] == used
        assert emu.store.get(second).internal["usedBytes"] == pytest.approx(used * 0.02, rel=1e-3)


def test_too_many_queries_on_a_scope_answer_429_with_retry_after(az, cost, sub):
    az.settings(cost_management={"queries_per_window": 2, "window_seconds": 120})
    body = {"type": "ActualCost", "timeframe": "MonthToDate", "dataset": {"granularity": "None"}}
    for _ in range(2):
        cost.query.usage(f"/subscriptions/{sub}", body)
    with pytest.raises(HttpResponseError) as refused:
        cost.query.usage(f"/subscriptions/{sub}", body)
    headers = refused.value.response.headers
    assert refused.value.status_code == 429
    assert 1 <= int(headers["Retry-After"]) <= 120
    assert headers["x-ms-ratelimit-microsoft.costmanagement-entity-retry-after"] == headers["Retry-After"]
    az.advance(121)
    assert cost.query.usage(f"/subscriptions/{sub}", body) is not None


def test_rows_over_a_page_come_by_next_link_without_counting_as_queries(az, emu, cost, sub, compute):
    az.settings(cost_management={"page_rows": 2, "queries_per_window": 1})
    vm = sorted(compute.virtual_machines.list_all(), key=lambda v: v.id)[0]
    ids = [_snapshot(compute, vm, f"p-{i}", vm.storage_profile.os_disk.managed_disk.id, {}) for i in range(1)]
    az.admin("POST", "costmanagement/age", {"ids": ids, "seconds": 5 * DAY})
    body = {"type": "ActualCost", "timeframe": "Custom",
            "timePeriod": {"from": datetime.fromtimestamp(emu.clock.timestamp() - 8 * DAY, UTC).isoformat(),
                           "to": datetime.fromtimestamp(emu.clock.timestamp(), UTC).isoformat()},
            "dataset": {"granularity": "Daily", "aggregation": {"c": {"name": "Cost", "function": "Sum"}}}}
    first = cost.query.usage(f"/subscriptions/{sub}", body)
    rows, link = list(first.rows), first.next_link
    while link:
        page = cost.send_request(HttpRequest("POST", link, json=body)).json()["properties"]
        rows += page["rows"]
        link = page["nextLink"]
    assert len(first.rows) == 2 and len(rows) == 6  # six days: five days ago (part) … today (part)
    assert sorted(r[1] for r in rows) == [r[1] for r in rows]


def test_a_bad_query_is_a_400_naming_the_field(cost, sub):
    with pytest.raises(HttpResponseError) as bad:
        cost.query.usage(f"/subscriptions/{sub}", {"type": "ActualCost", "timeframe": "Yesterday", "dataset": {}})
    assert bad.value.status_code == 400 and bad.value.error.target == "timeframe"
    with pytest.raises(HttpResponseError) as bad:
        cost.query.usage(f"/subscriptions/{sub}", {"type": "ActualCost", "timeframe": "Custom", "dataset": {}})
    assert bad.value.error.target == "timePeriod"


def test_retail_prices_filter_and_page_in_azures_shape(az, sub):
    az.settings(cost_management={"retail_page_size": 3})
    first = _retail(az, {"$filter": "serviceName eq 'Storage' or serviceName eq 'Backup'"})
    assert set(first) == {"BillingCurrency", "CustomerEntityId", "CustomerEntityType", "Items", "NextPageLink", "Count"}
    assert first["Count"] == 3 and first["NextPageLink"]
    items, page = list(first["Items"]), first
    while page["NextPageLink"]:
        page = _retail(az, url=page["NextPageLink"])
        items += page["Items"]
    assert {i["serviceName"] for i in items} == {"Storage", "Backup"}
    assert len({(i["meterId"]) for i in items}) == len(items)
    we = [i for i in items if i["armRegionName"] == "westeurope" and i["meterName"] == "Standard LRS Snapshots"]
    assert len(we) == 1 and we[0]["retailPrice"] == we[0]["unitPrice"] > 0
    with pytest.raises(urllib.error.HTTPError) as bad:
        _retail(az, {"$filter": "colour eq 'blue'"})
    assert bad.value.code == 400 and "colour" in json.loads(bad.value.read())["Error"]["Message"]


def test_the_billing_currency_setting_labels_the_rows_and_retail_prices_stay_usd_only(az, emu, cost, sub, compute):
    vm = sorted(compute.virtual_machines.list_all(), key=lambda v: v.id)[0]
    snap = _snapshot(compute, vm, "s-eur", vm.storage_profile.os_disk.managed_disk.id, {})
    az.admin("POST", "costmanagement/age", {"ids": [snap], "seconds": DAY})
    az.settings(cost_management={"currency": "EUR"})
    try:
        body = {"type": "ActualCost", "timeframe": "Custom", "dataset": {"granularity": "None"},
                "timePeriod": {"from": datetime.fromtimestamp(emu.clock.timestamp() - 10 * DAY, UTC).isoformat(),
                               "to": datetime.fromtimestamp(emu.clock.timestamp(), UTC).isoformat()}}
        result = cost.query.usage(f"/subscriptions/{sub}", body)
        assert result.rows and result.columns[-1].name == "Currency" and {r[-1] for r in result.rows} == {"EUR"}
        with pytest.raises(urllib.error.HTTPError) as refused:  # said, not answered in USD as if in EUR
            _retail(az, {"currencyCode": "'EUR'"})
        assert refused.value.code == 400 and "USD" in json.loads(refused.value.read())["Error"]["Message"]
        with pytest.raises(RuntimeError, match="currency"):
            az.settings(cost_management={"currency": "euro"})
    finally:
        az.settings(cost_management={"currency": "USD"})
