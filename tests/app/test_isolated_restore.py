"""Restores from isolated copies (docs/isolated-copies.md, docs/restore.md) against local Azure, through the app's own
wiring (shared/wiring.py: the restore API and service, the worker, the isolated copies' retention pass), real SDK
clients and real tables and queues in Azurite, with the role assignments infra/ makes (tests/app/test_isolated_copies.py
``deployed``): the app's identity holds infra/vmkeeper-isolated-reader-role.json at the backup group and nothing else
there.

The catalogue offers a VM's isolated copies as recovery points of their own (``snapshot-set:{set}:{region}:isolated``,
where they are, their immutabilityPolicy); a restore from one makes its disks in production from the copies, with
the app's identity (ARM's linked access check on each copy), writing only in the allowed target; the isolated
retention pass does not delete a copy a restore uses."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from shared.instants import parse_instant
from shared.queue import messages as jobs
from shared.schedule.steps import new_message
from tests.app import openapi_check
from tests.app.restore_world import OPERATOR_PRINCIPAL, READER_PRINCIPAL
from tests.app.test_isolated_copies import (
    BACKUP_RG,
    BACKUP_SUB,
    RG,
    backup,  # noqa: F401 (a fixture)
    backup_client,
    copies_of,
    isolated_job,
    isolated_wiring,
)
from tests.app.test_scheduled_worker import run

BACKUP_GROUP = f"/subscriptions/{BACKUP_SUB}/resourceGroups/{BACKUP_RG}"
TARGET_RG = "rg-restore"
WRITES = ("PUT", "POST", "PATCH", "DELETE")


@pytest.fixture
def wiring(az, azurite, sub, backup, resources, tmp_path):  # noqa: F811
    """The app as deployed with isolated copies and restores into rg-restore (the allow-list)."""
    resources.resource_groups.create_or_update(TARGET_RG, {"location": "westeurope"})
    wired = isolated_wiring(az, azurite, sub, backup, tmp_path, VMKEEPER_RESTORE_QUEUE="restores-{suffix}",
                            VMKEEPER_RESTORE_SCOPES=f"/subscriptions/{sub}/resourceGroups/{TARGET_RG}")
    queue = wired.env["VMKEEPER_RESTORE_QUEUE"]
    for name in (queue, f"{queue}-poison"):
        wired.storage.queue(name).create_queue()
    return wired


def copied(az, wiring, compute, sub, vm_name="vm-00000", slot="2026-11-25T06:00:00+00:00", immutable=True):
    vm = compute.virtual_machines.get(RG, vm_name)
    job = isolated_job(vm, sub, slot)
    if not immutable:
        job.pop("immutability")
    assert isinstance(run(wiring.schedule.worker, az, new_message(job))[0], jobs.Done)
    return vm, job


def points(wiring, sub, vm_name="vm-00000") -> list[dict]:
    answer = wiring.restore_api.recovery_points({"X-MS-CLIENT-PRINCIPAL": READER_PRINCIPAL}, sub, RG, vm_name)
    assert answer.status == 200, answer.body
    openapi_check.check("GET", f"/api/vms/{sub}/{RG}/{vm_name}/recovery-points", 200,
                        {"content-type": answer.content_type}, answer.text().encode())
    return answer.body["value"]


def isolated_point(wiring, sub, job) -> dict:
    wanted = f"snapshot-set:{job['set_id']}:westeurope:isolated"
    found = [p for p in points(wiring, sub) if p["id"] == wanted]
    assert len(found) == 1, [p["id"] for p in points(wiring, sub)]
    return found[0]


def accept(wiring, body: dict) -> str:
    answer = wiring.restore_api.create({"X-MS-CLIENT-PRINCIPAL": OPERATOR_PRINCIPAL,
                                        "Idempotency-Key": uuid.uuid4().hex}, json.dumps(body).encode())
    assert answer.status == 202, answer.body
    return answer.body["id"]


def finish(az, wiring, restore_id: str, limit: int = 200) -> dict:
    """The restore's worker, as its queue would run it, the emulator's clock moved by each delay asked."""
    for _ in range(limit):
        outcome = wiring.restores.advance({"restore_id": restore_id})
        if isinstance(outcome, jobs.Done):
            return wiring.restores.get(restore_id).to_json()
        assert isinstance(outcome, jobs.Retry), outcome
        az.advance(outcome.delay or 1)
    raise AssertionError("the restore never ended")


def app_writes(az, since: int) -> list[dict]:
    """The app's writes (a Resource Graph query is a POST that reads)."""
    return [c for c in az.calls(since) if c["method"] in WRITES and not str(c.get("operation") or "").endswith("/read")
            and "vmkeeper/" in (c.get("userAgent") or "")
            and "vmkeeper-isolated/" not in (c.get("userAgent") or "")]


def test_the_points_api_lists_a_vms_isolated_copies_with_where_they_are_and_their_immutability(az, wiring, compute, sub):
    vm, job = copied(az, wiring, compute, sub)
    listed = points(wiring, sub)
    point = isolated_point(wiring, sub, job)
    assert (point["kind"], point["complete"], point["copy"]) == ("snapshot_set", True, False)
    assert point["isolated"]["resource_group"] == BACKUP_GROUP
    # Azure's word on the copies' immutability (Locked for two days: the policy's), as for any set.
    policy = point["immutabilityPolicy"]
    copy = backup_client(az).snapshots.get(BACKUP_RG, copies_of(job)[0]).properties.immutability_policy
    assert policy["type"] == "Locked" and parse_instant(policy["policyExpirationTime"]) == copy.policy_expiration_time
    assert {d["source_id"].rsplit("/", 1)[-1] for d in point["disks"]} == set(copies_of(job))
    assert all(d["source_id"].lower().startswith(BACKUP_GROUP.lower()) for d in point["disks"])
    assert point["targets"] == ["disks", "vm", "os_disk", "files", "export"]
    # The set in production is its own point, as before.
    production = [p for p in listed if p["id"] == f"snapshot-set:{job['set_id']}:westeurope"]
    assert len(production) == 1 and "isolated" not in production[0]
    # Another VM's copies are not this one's.
    other = [p for p in points(wiring, sub, "vm-00002") if p.get("isolated")]
    assert other == []


def test_a_disks_restore_from_an_isolated_copy_makes_its_disks_in_the_target_only(az, wiring, compute, sub):
    vm, job = copied(az, wiring, compute, sub)
    point = isolated_point(wiring, sub, job)
    target = f"/subscriptions/{sub}/resourceGroups/{TARGET_RG}"
    since = len(az.calls())
    restore_id = accept(wiring, {"vm": vm.id, "recovery_point": point["id"],
                                 "target": {"type": "disks", "resource_group": target}})
    done = finish(az, wiring, restore_id)
    assert done["state"] == "succeeded", done
    made = list(compute.disks.list_by_resource_group(TARGET_RG))
    assert len(made) == len(job["snapshots"])
    sources = {d.creation_data.source_resource_id.lower() for d in made}
    assert sources == {f"{BACKUP_GROUP}/providers/Microsoft.Compute/snapshots/{n}".lower() for n in copies_of(job)}
    # Every write the app made is in the target group; none in the backup subscription (it may only read there).
    writes = app_writes(az, since)
    assert writes and all(c["path"].lower().startswith(target.lower() + "/") for c in writes), \
        sorted({c["path"] for c in writes})
    # ARM checked the app's identity's access to each copy (its reader role at the backup group grants it).
    linked = [c for c in az.calls(since) if c["method"] == "LINKED" and c["path"].lower().startswith(BACKUP_GROUP.lower())]
    assert {(c["operation"], c["status"]) for c in linked} == {("Microsoft.Compute/snapshots/beginGetAccess/action", 200)}
    assert {s.name for s in backup_client(az).snapshots.list_by_resource_group(BACKUP_RG)} >= set(copies_of(job))


def test_a_vm_restore_from_an_isolated_copy_makes_a_vm_in_the_target(az, wiring, compute, sub):
    vm, job = copied(az, wiring, compute, sub)
    point = isolated_point(wiring, sub, job)
    target = f"/subscriptions/{sub}/resourceGroups/{TARGET_RG}"
    from azure.mgmt.network import NetworkManagementClient

    network = az.client(NetworkManagementClient, sub, polling_interval=0)  # the target's network (arranged)
    vnet = network.virtual_networks.begin_create_or_update(TARGET_RG, "vnet-restore", {
        "location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.9.0.0/16"]},
                                                 "subnets": [{"name": "default", "properties": {"addressPrefix": "10.9.0.0/24"}}]}}).result()
    subnet = vnet.as_dict()["properties"]["subnets"][0]["id"]
    since = len(az.calls())
    restore_id = accept(wiring, {"vm": vm.id, "recovery_point": point["id"],
                                 "target": {"type": "vm", "resource_group": target, "vm_name": "from-isolated",
                                            "subnet": subnet}})
    done = finish(az, wiring, restore_id)
    assert done["state"] == "succeeded", done
    made = compute.virtual_machines.get(TARGET_RG, "from-isolated")
    os_disk = compute.disks.get(TARGET_RG, made.storage_profile.os_disk.managed_disk.id.rsplit("/", 1)[-1])
    assert os_disk.creation_data.source_resource_id.lower().startswith(BACKUP_GROUP.lower())
    assert len(made.storage_profile.data_disks) == len(job["snapshots"]) - 1
    writes = app_writes(az, since)
    assert writes and all(c["path"].lower().startswith(target.lower() + "/") for c in writes), \
        sorted({c["path"] for c in writes})


def test_the_isolated_retention_pass_does_not_delete_a_copy_a_restore_uses(az, wiring, compute, sub):
    # No immutability: nothing but the restore keeps the older set's copies once a newer set is there (keep_last 1).
    vm, old = copied(az, wiring, compute, sub, slot="2026-11-24T06:00:00+00:00", immutable=False)
    az.advance(3600)
    copied(az, wiring, compute, sub, immutable=False)
    point = isolated_point(wiring, sub, old)
    assert point["immutabilityPolicy"] is None
    old_copies = set(copies_of(old))
    restore_id = accept(wiring, {"vm": vm.id, "recovery_point": point["id"],
                                 "target": {"type": "disks", "resource_group": f"/subscriptions/{sub}/resourceGroups/{TARGET_RG}"}})
    # The passes' clock is the restore's (the service's wall clock: the emulator's runs ahead over a session).
    now = parse_instant(wiring.restores.get(restore_id).created_at)
    for shift in (0, 3601, 3601):  # marked, then deleted by now, were it not pinned
        az.advance(shift)
        now += timedelta(seconds=shift)
        decisions, applied = wiring.isolated_retention.run(now)
        assert not applied.errors, applied.errors
        by_name = {d.artifact_id.rsplit("/", 1)[-1]: d for d in decisions}
        assert {(by_name[n].action, by_name[n].rule) for n in old_copies} == {("keep", "pinned")}, by_name
        az.advance(1)
    assert old_copies <= {s.name for s in backup_client(az).snapshots.list_by_resource_group(BACKUP_RG)}
    assert finish(az, wiring, restore_id)["state"] == "succeeded"
    # Once the restore has ended, the pin is gone: the old copies go as retention says.
    gone = {}
    for shift in (0, 3601):
        az.advance(shift)
        now += timedelta(seconds=shift)
        decisions, _ = wiring.isolated_retention.run(now)
        gone.update({d.artifact_id.rsplit("/", 1)[-1]: d.action for d in decisions})
        az.advance(1)
    assert {gone[n] for n in old_copies} == {"delete"}


def test_an_export_from_an_isolated_copy_hands_a_sas_on_a_disk_made_in_the_target(az, wiring, compute, sub):
    vm, job = copied(az, wiring, compute, sub)
    point = isolated_point(wiring, sub, job)
    target = f"/subscriptions/{sub}/resourceGroups/{TARGET_RG}"
    restore_id = accept(wiring, {"vm": vm.id, "recovery_point": point["id"],
                                 "target": {"type": "export", "resource_group": target, "lun": 0, "duration_hours": 1}})
    ready = finish(az, wiring, restore_id)
    assert ready["state"] == "ready", ready
    (disk,) = compute.disks.list_by_resource_group(TARGET_RG)
    assert disk.creation_data.source_resource_id.lower().startswith(BACKUP_GROUP.lower())
    taken = wiring.restore_api.access({"X-MS-CLIENT-PRINCIPAL": OPERATOR_PRINCIPAL}, restore_id)
    assert taken.status == 200 and taken.body["access_sas"].startswith("https://")
    assert wiring.restore_api.cancel({"X-MS-CLIENT-PRINCIPAL": OPERATOR_PRINCIPAL}, restore_id).status == 202
    assert finish(az, wiring, restore_id)["state"] == "succeeded"
    assert list(compute.disks.list_by_resource_group(TARGET_RG)) == []
