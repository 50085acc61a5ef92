"""Snapshot immutability (Compute 2026-03-02: updateImmutabilityPolicy / updateImmutabilityPolicyLock, the ``next/``
contracts Snapshot_UpdateImmutabilityPolicy(Lock)) through the real SDK client (azure-mgmt-compute 39.0.0): Unlocked
may be shortened, extended or removed, Locked only extended; a delete under an unexpired policy is refused
(409 OperationNotAllowed, whoever asks), after expiry it goes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import (
    CreationData,
    ImmutabilityPolicyData,
    ImmutabilityPolicyLockData,
    Snapshot,
)

from emulator.testing import StaticCredential

RG = "rg-vm-00"
EXAMPLES = (Path(__file__).resolve().parents[3] / "shared" / "azure-api" / "next" / "examples" / "Microsoft.Compute"
            / "2026-03-02" / "snapshotExamples")
DAY = 86400


def _error(err: pytest.ExceptionInfo) -> tuple[int, str]:
    return err.value.status_code, err.value.error.code if err.value.error else ""


def _snapshot(compute, name: str) -> Snapshot:
    disk = compute.virtual_machines.get(RG, "vm-00000").storage_profile.os_disk.managed_disk.id
    return compute.snapshots.begin_create_or_update(RG, name, Snapshot(
        location="westeurope", incremental=True,
        creation_data=CreationData(create_option="Copy", source_resource_id=disk))).result()


def _unlocked(compute, name: str, days: int) -> Snapshot:
    return compute.snapshots.begin_update_immutability_policy(
        RG, name, ImmutabilityPolicyData(immutability_duration_days=days, type="Unlocked")).result()


def _locked(compute, name: str, days: int) -> Snapshot:
    return compute.snapshots.begin_update_immutability_policy_lock(
        RG, name, ImmutabilityPolicyLockData(immutability_duration_days=days, type="Locked")).result()


def _refused(call) -> tuple[int, str]:
    with pytest.raises(HttpResponseError) as err:
        call()
    return _error(err)


def test_the_examples_bodies_set_and_lock_a_policy(az, compute):
    """The examples' request bodies are taken; the SDK's final Snapshot carries their two fields in
    properties.immutabilityPolicy, with start and expiry 30 days apart."""
    _snapshot(compute, "mySnapshot")
    for file, begin in (("Snapshot_UpdateImmutabilityPolicy.json", compute.snapshots.begin_update_immutability_policy),
                        ("Snapshot_UpdateImmutabilityPolicyLock.json",
                         compute.snapshots.begin_update_immutability_policy_lock)):
        example = json.loads((EXAMPLES / file).read_text())
        params = example["parameters"]
        done = begin(RG, params["resourceName"],
                     params["immutabilityPolicyData"]).result()
        policy = done.properties.immutability_policy
        assert {"immutabilityDurationDays": policy.immutability_duration_days, "type": policy.type} == \
            example["responses"]["200"]["body"]
        assert (policy.policy_expiration_time - policy.policy_start_time).total_seconds() == 30 * DAY
        assert policy.is_policy_expired is False
    read = compute.snapshots.get(RG, "mySnapshot").properties.immutability_policy
    assert read.type == "Locked" and read.immutability_duration_days == 30


def test_the_operations_answer_202_and_name_their_permission(az, compute):
    _snapshot(compute, "watched")
    since = len(az.calls())
    _unlocked(compute, "watched", 3)
    posts = [c for c in az.calls(since) if c["method"] == "POST"]
    assert [(c["status"], c["operation"]) for c in posts] == [
        (202, "Microsoft.Compute/snapshots/updateImmutabilityPolicy/action")]


def test_unlocked_can_be_shortened_extended_and_removed(compute):
    _snapshot(compute, "unlocked")
    start = _unlocked(compute, "unlocked", 10).properties.immutability_policy.policy_start_time
    shorter = _unlocked(compute, "unlocked", 2).properties.immutability_policy
    assert shorter.immutability_duration_days == 2 and shorter.policy_start_time == start  # the start is kept
    assert _unlocked(compute, "unlocked", 20).properties.immutability_policy.immutability_duration_days == 20
    removed = _unlocked(compute, "unlocked", 0).properties.immutability_policy
    assert removed.is_policy_expired is True and removed.immutability_duration_days == 0
    compute.snapshots.begin_delete(RG, "unlocked").result()


def test_locked_can_only_be_extended(compute):
    _snapshot(compute, "locked")
    _unlocked(compute, "locked", 5)
    start = _locked(compute, "locked", 5).properties.immutability_policy.policy_start_time  # locking keeps the start
    assert _locked(compute, "locked", 9).properties.immutability_policy.policy_start_time == start
    assert _refused(lambda: _locked(compute, "locked", 8)) == (409, "OperationNotAllowed")  # shortened
    assert _refused(lambda: _unlocked(compute, "locked", 30)) == (409, "OperationNotAllowed")  # unlocked
    assert _refused(lambda: _unlocked(compute, "locked", 0)) == (409, "OperationNotAllowed")  # removed
    kept = compute.snapshots.get(RG, "locked").properties.immutability_policy
    assert (kept.type, kept.immutability_duration_days) == ("Locked", 9)


@pytest.mark.parametrize("kind", ["Unlocked", "Locked"])
def test_a_delete_under_a_policy_is_refused_whoever_asks_and_goes_after_expiry(az, compute, sub, kind):
    _snapshot(compute, "held")
    (_locked if kind == "Locked" else _unlocked)(compute, "held", 2)
    owner = az.client(ComputeManagementClient, sub, credential=StaticCredential("operator-owner"), polling_interval=0)
    az.role_assignments([{"principal": "operator-owner", "scope": f"/subscriptions/{sub}", "actions": ["*"]}])
    for client in (compute, owner):
        assert _refused(lambda c=client: c.snapshots.begin_delete(RG, "held").result()) == (409, "OperationNotAllowed")
    assert compute.snapshots.get(RG, "held").name == "held"
    az.advance(2 * DAY - 60)
    assert _refused(lambda: owner.snapshots.begin_delete(RG, "held").result()) == (409, "OperationNotAllowed")
    az.advance(61)
    assert compute.snapshots.get(RG, "held").properties.immutability_policy.is_policy_expired is True
    owner.snapshots.begin_delete(RG, "held").result()
    assert _refused(lambda: compute.snapshots.get(RG, "held")) == (404, "ResourceNotFound")


def test_an_expired_policy_replaced_starts_anew(az, compute):
    _snapshot(compute, "renewed")
    first = _locked(compute, "renewed", 1).properties.immutability_policy
    az.advance(DAY + 1)
    again = _unlocked(compute, "renewed", 1).properties.immutability_policy  # expired Locked: Unlocked again
    assert again.type == "Unlocked" and again.policy_start_time >= first.policy_expiration_time
    assert again.is_policy_expired is False


def test_bad_bodies_are_refused_naming_the_field(compute):
    _snapshot(compute, "bodies")
    post = compute.snapshots.begin_update_immutability_policy
    for body, target in (({"immutabilityDurationDays": 3, "type": "Locked"}, "type"),
                         ({"immutabilityDurationDays": 3, "type": "Forever"}, "type"),
                         ({"immutabilityDurationDays": -1, "type": "Unlocked"}, "immutabilityDurationDays"),
                         ({"immutabilityDurationDays": "3", "type": "Unlocked"}, "immutabilityDurationDays")):
        with pytest.raises(HttpResponseError) as err:
            post(RG, "bodies", body).result()
        assert _error(err) == (400, "InvalidParameter") and err.value.error.target == target
    with pytest.raises(HttpResponseError) as err:  # Unlocked through the Lock operation
        compute.snapshots.begin_update_immutability_policy_lock(
            RG, "bodies", {"immutabilityDurationDays": 3, "type": "Unlocked"}).result()
    assert err.value.error.target == "type"
    assert compute.snapshots.get(RG, "bodies").properties.immutability_policy is None  # nothing was set
    assert _refused(lambda: _unlocked(compute, "no-such-snapshot", 3))[0] == 404


def test_a_group_delete_is_blocked_by_a_held_snapshot(az, compute, sub):
    from azure.mgmt.resource.resources import ResourceManagementClient

    resources = az.client(ResourceManagementClient, sub, polling_interval=0)
    resources.resource_groups.create_or_update("rg-held", {"location": "westeurope"})
    disk = compute.virtual_machines.get(RG, "vm-00000").storage_profile.os_disk.managed_disk.id
    compute.snapshots.begin_create_or_update("rg-held", "in-group", Snapshot(
        location="westeurope", incremental=True,
        creation_data=CreationData(create_option="Copy", source_resource_id=disk))).result()
    compute.snapshots.begin_update_immutability_policy_lock(
        "rg-held", "in-group", ImmutabilityPolicyLockData(immutability_duration_days=1, type="Locked")).result()
    with pytest.raises(HttpResponseError):
        resources.resource_groups.begin_delete("rg-held").result()
    assert compute.snapshots.get("rg-held", "in-group").name == "in-group"
