"""ARM throttling (token buckets, x-ms-ratelimit-remaining-*, 429 + Retry-After) and every kind
of injected fault, observed through the SDK's own retry and polling."""

from __future__ import annotations

import threading
import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import CreationData, Snapshot
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.resource.resources.models import ResourceGroup


def test_write_burst_hits_429_with_retry_after_and_sdk_retries_lose_nothing(az, sub):
    az.settings(throttle={"limits": {"writes": {"capacity": 5, "rate": 0.2}}})
    raw = az.client(ResourceManagementClient, sub, retry_total=0)
    for i in range(5):
        raw.resource_groups.create_or_update(f"rg-drain-{i}", ResourceGroup(location="westeurope"))
    with pytest.raises(HttpResponseError) as err:
        raw.resource_groups.create_or_update("rg-drain-x", ResourceGroup(location="westeurope"))
    assert err.value.status_code == 429
    assert err.value.error.code == "SubscriptionRequestsThrottled"
    assert int(err.value.response.headers["Retry-After"]) >= 1
    assert err.value.response.headers["x-ms-ratelimit-remaining-subscription-writes"] == "0"

    # ARM's shape (a burst, then a steady refill) scaled down: 5 tokens, refilled at 10 per second.
    # azure-core retries a 429 three times (retry_status), each after Retry-After.
    az.settings(throttle={"limits": {"writes": {"capacity": 5, "rate": 10}}})
    client = az.client(ResourceManagementClient, sub)  # the SDK's default retry policy
    since = len(az.calls())
    errors: list[Exception] = []

    def create(i: int) -> None:
        try:
            client.resource_groups.create_or_update(f"rg-burst-{i:02d}", ResourceGroup(location="westeurope"))
        except Exception as exc:  # noqa: BLE001 (collected and asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    names = {g.name for g in client.resource_groups.list()}
    assert {f"rg-burst-{i:02d}" for i in range(20)} <= names
    statuses = [c["status"] for c in az.calls(since) if c["method"] == "PUT"]
    assert statuses.count(429) > 0, "the burst should have been throttled"
    assert statuses.count(201) == 20


def test_reads_report_remaining_budget(az, compute, sub):
    from azure.core.rest import HttpRequest

    az.settings(throttle={"limits": {"reads": {"capacity": 250, "rate": 0.01}}})
    url = f"{az.base_url}/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000?api-version=2026-04-01"
    first = int(compute._client.send_request(HttpRequest("GET", url)).headers["x-ms-ratelimit-remaining-subscription-reads"])
    second = int(compute._client.send_request(HttpRequest("GET", url)).headers["x-ms-ratelimit-remaining-subscription-reads"])
    assert first == 249 and second == 248


def fast_client(az, sub, **kwargs):
    return az.client(ComputeManagementClient, sub, polling_interval=0, retry_backoff_factor=0.01, **kwargs)


@pytest.mark.parametrize("kind", ["429", "500", "503", "reset"])
def test_transient_faults_are_retried_by_the_sdk(az, fleet, kind):
    sub = fleet["subscriptions"][0]
    client = fast_client(az, sub)
    az.faults([{"kind": kind, "method": "GET", "path": "/virtualMachines/vm-00000$", "count": 2}])
    since = len(az.calls())
    assert client.virtual_machines.get("rg-vm-00", "vm-00000").name == "vm-00000"
    rules = az.admin("GET", "faults")["rules"]
    assert rules[0]["fired"] == 2
    statuses = [c["status"] for c in az.calls(since)]
    if kind != "reset":  # a reset connection never produced a response
        assert statuses.count(int(kind)) == 2
    assert statuses[-1] == 200


def test_slow_responses_are_slow(az, fleet):
    client = fast_client(az, fleet["subscriptions"][0])
    az.faults([{"kind": "slow", "path": "/virtualMachines/vm-00000$", "count": 1, "delay_ms": 400}])
    start = time.monotonic()
    client.virtual_machines.get("rg-vm-00", "vm-00000")
    assert time.monotonic() - start >= 0.4


def test_long_running_operation_that_ends_failed(az, fleet):
    client = fast_client(az, fleet["subscriptions"][0])
    disk = client.virtual_machines.get("rg-vm-00", "vm-00000").storage_profile.data_disks[0].managed_disk.id
    az.faults([{"kind": "lro_failed", "operation": "Microsoft.Compute/snapshots/write", "count": 1}])
    body = Snapshot(location="westeurope", incremental=True, creation_data=CreationData(create_option="Copy", source_resource_id=disk))
    with pytest.raises(HttpResponseError) as err:
        client.snapshots.begin_create_or_update("rg-vm-00", "doomed", body).result()
    assert "InternalOperationError" in str(err.value)
    assert client.snapshots.get("rg-vm-00", "doomed").provisioning_state == "Failed"
    assert client.snapshots.begin_create_or_update("rg-vm-00", "fine", body).result().provisioning_state == "Succeeded"


def test_probability_faults_are_reproducible_with_a_seed(az, fleet):
    client = fast_client(az, fleet["subscriptions"][0], retry_total=0)

    def run() -> list[bool]:
        az.faults([{"kind": "500", "method": "GET", "probability": 0.5}], seed=42)
        outcome = []
        for _ in range(20):
            try:
                client.virtual_machines.get("rg-vm-00", "vm-00000")
                outcome.append(True)
            except HttpResponseError:
                outcome.append(False)
        return outcome

    first, second = run(), run()
    assert first == second
    assert 3 <= first.count(False) <= 17


def test_bad_fault_rules_are_refused_naming_the_field(az):
    with pytest.raises(RuntimeError, match="kind"):
        az.faults([{"kind": "418", "count": 1}])
    with pytest.raises(RuntimeError, match="probability"):
        az.faults([{"kind": "500", "probability": 2}])
