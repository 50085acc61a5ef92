"""Replica drills (``drill.point: replica``) end to end through the local Functions host, Azurite and the emulator
with the real SDK clients: the VM replicated by the app's own enable path (tests/app/replication_world.py), the timer
plans, the drill worker finds the replicated item in the vaults of VMKEEPER_VAULTS, isolates a VNet of its own in the
target region, test-fails over into it at the newest recovery point, waits for the test VM's agent, records RTO and
the point's age, cleans the test failover up (after a failed one too), checks the target group holds nothing of the
test and tears down its VNet; it never adopts a group or VNet of its name that it did not make."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from shared import tags as T
from shared.alerts import events as A
from shared.replication import names
from tests.app import replication_world as R
from tests.app.replication_world import SRC_CONTAINER, SRC_FABRIC, VAULT, VAULT_RG
from tests.app.restore_world import POLICIES, REGION, SECOND, saved_after, start, wiring_wrapping
from tests.app.test_drill import DRILL, drill_world, groups
from tests.app.test_drill_safety import KEEP_HOURS, alerts, kept_alerts, poisoned, row_of, until, vnet

TEST_FAILOVER = "/replicationprotecteditems/testfailover/action"
APP_IDENTITY = "vmkeeper-identity"  # the bearer token of the app's credential under the deployed role
CLEANUP = "/replicationprotecteditems/testfailovercleanup/action"
assert (REGION, SECOND) == (R.SOURCE, R.TARGET)


def app_calls(az: Any, mark: int, operation_suffix: str) -> list[dict[str, Any]]:
    """The app's own calls (its user agent) of an operation ending so, since ``mark``."""
    return [c for c in az.calls(mark) if "vmkeeper/" in (c.get("userAgent") or "")
            and (c.get("operation") or "").lower().endswith(operation_suffix)]


def said(w: dict[str, Any]) -> list[str]:
    """The alerts raised (none yet: the outbox table is not even made)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return [e["type"] for e in alerts(w)]
    except ResourceNotFoundError:
        return []


def in_group(az: Any, sub: str, group: str) -> set[str]:
    return {r.id.lower() for r in az.client(ResourceManagementClient, sub).resources.list_by_resource_group(group)}


def replica_world(az: Any, emu: Any, azurite: Any, tmp_path: Any, monkeypatch: Any, wiring_class: Any = None,
                  credential: Any = None, saved: dict[str, Any] | None = None,
                  **drill: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """tests/app/test_drill.py's drill world (``credential``: the app's identity) with ``point: replica`` and the
    policy's ``replication`` block, its VM tagged ``vmkeeper-dr: critical`` and replicated by the app
    (tests/app/replication_world.py); with ``saved`` (the module's ``replicated``), as it stood once replicated.
    VMKEEPER_VAULTS names the target-region vault before the app first reads its settings."""
    from shared import wiring

    suffix = secrets.token_hex(4)
    w = start(az, emu, azurite, tmp_path, monkeypatch, wiring_class=wiring_class or wiring.Wiring, credential=credential,
              saved=saved, VMKEEPER_DRILL_QUEUE=f"drills-{suffix}", VMKEEPER_ALERTS_TABLE=f"alerts{suffix}",
              **R.app_settings(suffix))
    sub = w["sub"]
    policy = {**POLICIES["policies"]["full"], "drill": {**DRILL, "point": "replica", **drill}, "replication": R.block(sub)}
    (tmp_path / "policies.json").write_text(json.dumps({**POLICIES, "policies": {"full": policy}}))
    monkeypatch.setenv("VMKEEPER_VAULTS", json.dumps({SECOND: R.vault_id(sub)}))
    az.settings(siterecovery={"initial_replication_seconds": 1}, vm_agent={"ready_after_seconds": 1})
    w["host"].ensure_queues()
    if saved is None:
        R.dr_side(az, emu, sub)
        R.tag_critical(az, sub, w["vm_id"])
        R.enable(w["host"], w["settings"], [w["vm_id"]])
    item = json.loads(R.rows(w["settings"])[w["vm_id"].lower()]["detail"])["item_id"]
    return w, {"vault": R.vault_id(sub), "item": item, "item_name": names.protected_item(w["vm_id"]),
               "vm_name": w["vm_id"].rsplit("/", 1)[-1], "target_rg": R.TARGET_RG, "asr": R.site_recovery(az, sub)}


def item_of(replica: dict[str, Any]) -> Any:
    return replica["asr"].replication_protected_items.get(VAULT_RG, VAULT, SRC_FABRIC, SRC_CONTAINER, replica["item_name"])


@pytest.fixture(scope="module")
def replicated(_local_azure, azurite, tmp_path_factory):
    """The replica world, its VM replicated by the app once for the module: a test starts from its own copy."""
    return saved_after(_local_azure, azurite, tmp_path_factory.mktemp("replicated"),
                       lambda *args: replica_world(*args)[0])


def test_a_replica_drill_test_fails_over_into_its_isolated_vnet_proves_it_ready_and_leaves_nothing(
        az, emu, azurite, tmp_path, monkeypatch, replicated):
    w, replica = replica_world(az, emu, azurite, tmp_path, monkeypatch, saved=replicated, keep_hours=KEEP_HOURS)
    try:
        sub, target = w["sub"], replica["target_rg"]
        before, target_before = groups(az, sub), in_group(az, sub, target)
        points = list(replica["asr"].recovery_points.list_by_replication_protected_items(
            VAULT_RG, VAULT, SRC_FABRIC, SRC_CONTAINER, replica["item_name"]))
        mark = len(az.calls())
        w["host"].fire_timer("plan_drills")
        until(w, lambda: (w["wiring"].drills.history() or [None])[0] is not None
              and w["wiring"].drills.history()[0].result == "passed")

        # passed and kept for keep_hours: the test VM is in the target group, its NIC in the drill's own VNet
        (drill,) = w["wiring"].drills.history()
        row = row_of(w, drill.id)
        assert drill.point_kind == "replica" and drill.rto_seconds > 0 and drill.rpo_seconds >= 0, drill
        assert row["region"] == SECOND and row["group"].endswith(f"/vmkeeper-drill-{drill.id}")
        newest = max(points, key=lambda p: p.properties.recovery_point_time)
        assert row["point"].lower() == newest.id.lower() and row["replicatedItem"].lower() == replica["item"].lower()
        assert row["drilledVm"].lower().endswith(f"/resourcegroups/{target}/providers/microsoft.compute/virtualmachines/"
                                                 f"{replica['vm_name']}-test")
        net = az.client(NetworkManagementClient, sub)
        nic = net.network_interfaces.get(target, "vm-00000-nic-test")
        drill_vnet = net.virtual_networks.get(f"vmkeeper-drill-{drill.id}", "vnet-drill")
        assert nic.ip_configurations[0].subnet.id.lower().startswith(drill_vnet.id.lower() + "/subnets/")
        assert drill_vnet.tags[T.DRILL_ID] == drill.id and drill_vnet.location == SECOND
        assert len(app_calls(az, mark, TEST_FAILOVER)) == 1 and app_calls(az, mark, CLEANUP) == []

        # after keep_hours: cleaned up, nothing of the test left in the target group, the drill's group gone
        assert w["host"].run_until_idle(timeout=120)
        (drill,) = w["wiring"].drills.history()
        assert drill.result == "passed" and drill.cleanup == "removed", drill
        assert len(app_calls(az, mark, CLEANUP)) == 1
        assert in_group(az, sub, target) == target_before
        assert groups(az, sub) == before
        item = item_of(replica).properties
        assert item.test_failover_state == "None" and item.last_successful_test_failover_time is not None
        assert json.loads(row_of(w, drill.id)["testLeft"]) == []
        assert said(w) == [] and poisoned(w) == 0
        assert w["wiring"].reports.data().drills[0].point_kind == "replica"  # the report's drill history

        w["host"].fire_timer("plan_drills")  # the same period again: the same drill, nothing new
        assert w["host"].run_until_idle(timeout=60)
        assert [d.id for d in w["wiring"].drills.history()] == [drill.id]
        assert len(app_calls(az, mark, TEST_FAILOVER)) == 1
    finally:
        w["host"].close()


def test_under_the_deployed_role_a_replica_drill_passes(az, emu, azurite, tmp_path, monkeypatch, replicated):
    """The app as deployed: the emulator holds infra/vmkeeper-role.json at the subscription for the app's identity
    (tests/app/deployed_roles.py) and checks each request's action and Site Recovery's linked checks on the test
    VM, NIC, disks and the drill's subnet: the role grants all a replica drill needs."""
    from emulator.testing import StaticCredential
    from tests.app.deployed_roles import assignments

    w, replica = replica_world(az, emu, azurite, tmp_path, monkeypatch, saved=replicated,
                               credential=StaticCredential(APP_IDENTITY))
    try:
        az.role_assignments(assignments(APP_IDENTITY, [w["sub"]], []))
        mark = len(az.calls())
        w["host"].fire_timer("plan_drills")
        assert w["host"].run_until_idle(timeout=120)
        (drill,) = w["wiring"].drills.history()
        assert drill.result == "passed" and drill.cleanup == "removed", drill
        linked = {c["operation"] for c in az.calls(mark) if c["method"] == "LINKED" and c["status"] == 200}
        assert {"Microsoft.Compute/virtualMachines/write", "Microsoft.Network/networkInterfaces/write",
                "Microsoft.Compute/disks/write", "Microsoft.Network/virtualNetworks/subnets/join/action"} <= linked
        assert not [c for c in az.calls(mark) if c["status"] == 403]
    finally:
        az.role_assignments([])
        w["host"].close()


@pytest.mark.parametrize("failure", ["test_failover", "agent"])
def test_a_failing_test_failover_alerts_once_and_is_cleaned_up(az, emu, azurite, tmp_path, monkeypatch, replicated,
                                                               failure):
    """``test_failover``: ASR's test failover job ends Failed. ``agent``: it succeeds, but the test VM's agent never
    gets Ready. Either way the drill fails saying why, one ``vmkeeper.drill.failed``; after ``keep_failed_hours``
    the test failover is cleaned up (testFailoverCleanup, after the failed one too), nothing is left in the target
    group, and the drill's VNet and group are gone."""
    w, replica = replica_world(az, emu, azurite, tmp_path, monkeypatch, saved=replicated, keep_failed_hours=0,
                               ready_timeout_minutes=0.1)
    try:
        sub, target = w["sub"], replica["target_rg"]
        before, target_before = groups(az, sub), in_group(az, sub, target)
        if failure == "test_failover":
            az.faults([{"kind": "lro_failed", "operation": ".*/replicationProtectedItems/testFailover/action", "count": 1}])
        else:
            az.vm_agent_fault(f"{replica['vm_name']}-test")
        mark = len(az.calls())
        w["host"].fire_timer("plan_drills")
        assert w["host"].run_until_idle(timeout=120)

        (drill,) = w["wiring"].drills.history()
        assert drill.result == "failed" and drill.cleanup == "removed", drill
        if failure == "test_failover":
            assert "test failover" in drill.reason and "Failed" in drill.reason
        else:
            assert "not ready" in drill.reason and f"{replica['vm_name']}-test" in drill.reason
        (failed,) = [e for e in alerts(w)]
        assert failed["type"] == A.DRILL_FAILED and failed["subject"] == w["vm_id"].lower()
        assert len(app_calls(az, mark, TEST_FAILOVER)) == 1 and len(app_calls(az, mark, CLEANUP)) == 1
        item = item_of(replica).properties
        assert item.test_failover_state == "None" and "TestFailover" in item.allowed_operations
        assert (item.last_successful_test_failover_time is None) == (failure == "test_failover")
        assert in_group(az, sub, target) == target_before and groups(az, sub) == before
        assert poisoned(w) == 0
    finally:
        az.faults([])
        w["host"].close()


@pytest.mark.parametrize("taken", ["group", "vnet"])
def test_a_replica_drill_never_adopts_a_group_or_vnet_of_its_name_that_it_did_not_make(
        az, emu, azurite, tmp_path, monkeypatch, replicated, taken):
    """``group``: an operator's group has the drill's name. ``vnet``: the drill's group is there (made before a
    crash) and holds an operator's VNet of the drill's VNet name. Either way the drill fails saying why, sends no
    test failover, writes nothing to the operator's group or VNet, and deletes nothing."""
    from shared.drill.planner import drill_id, group_name, period_of

    w, replica = replica_world(az, emu, azurite, tmp_path, monkeypatch, saved=replicated)
    try:
        sub = w["sub"]
        drill = drill_id(w["vm_id"].lower(), period_of(datetime.now(UTC), 7), 7)
        name = group_name(drill)
        rm = az.client(ResourceManagementClient, sub)
        tags = {"owner": "db"} if taken == "group" else {T.MANAGED_BY: T.MANAGED_BY_VALUE, T.DRILL_ID: drill}
        rm.resource_groups.create_or_update(name, {"location": SECOND, "tags": tags})
        net = az.client(NetworkManagementClient, sub, polling_interval=0)
        net.virtual_networks.begin_create_or_update(name, "db-net" if taken == "group" else "vnet-drill",
                                                    vnet("10.9.0.0/16")).result()
        held = {r.id.lower(): r.tags for r in rm.resources.list_by_resource_group(name)}
        mark = len(az.calls())
        w["host"].fire_timer("plan_drills")
        assert w["host"].run_until_idle(timeout=120)

        (row,) = w["wiring"].drills.history()
        assert row.result == "failed" and "is not this drill's" in row.reason, row
        assert rm.resource_groups.get(name).tags == tags
        assert {r.id.lower(): r.tags for r in rm.resources.list_by_resource_group(name)} == held
        writes = [c for c in az.calls(mark) if c["method"] in ("PUT", "PATCH", "DELETE", "POST")
                  and f"/resourcegroups/{name.lower()}" in c["path"].lower()]
        assert writes == []
        assert app_calls(az, mark, TEST_FAILOVER) == [] and app_calls(az, mark, CLEANUP) == []
        (failed,) = [e for e in alerts(w) if e["type"] == A.DRILL_FAILED]
        assert "is not this drill's" in failed["data"]["reason"]
        if taken == "vnet":  # the group is the drill's, what is in it is not: kept, said once
            (kept,) = kept_alerts(w)
            assert row.cleanup == "foreign" and "vnet-drill" in kept["data"]["reason"]
        assert item_of(replica).properties.test_failover_state == "None"
    finally:
        w["host"].close()


class CrashAfterSend:
    """The ledger as a worker dying right after it sent the test failover, before it could note its monitor:
    the first save carrying ``tfoOperation`` raises, once."""

    def __init__(self, table: Any):
        self.table, self.crashed = table, False

    def upsert_entity(self, entity: dict[str, Any], **kwargs: Any) -> Any:
        if not self.crashed and entity.get("PartitionKey") == "drills" and entity.get("tfoOperation"):
            self.crashed = True
            raise ConnectionResetError("test: the worker died before noting the test failover's monitor")
        return self.table.upsert_entity(entity, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)


def test_a_crash_right_after_the_test_failover_was_sent_follows_it_and_sends_none_again(
        az, emu, azurite, tmp_path, monkeypatch, replicated):
    crashes: list[CrashAfterSend] = []

    def crash(table: Any) -> CrashAfterSend:
        crashes.append(CrashAfterSend(table))
        return crashes[-1]

    w, replica = replica_world(az, emu, azurite, tmp_path, monkeypatch, saved=replicated,
                               wiring_class=wiring_wrapping("VMKEEPER_LEDGER_TABLE", crash))
    try:
        before, target_before = groups(az, w["sub"]), in_group(az, w["sub"], replica["target_rg"])
        mark = len(az.calls())
        w["host"].fire_timer("plan_drills")
        assert w["host"].run_until_idle(timeout=120)
        assert any(c.crashed for c in crashes)
        (drill,) = w["wiring"].drills.history()
        assert drill.result == "passed" and drill.cleanup == "removed", drill
        assert len(app_calls(az, mark, TEST_FAILOVER)) == 1 and len(app_calls(az, mark, CLEANUP)) == 1
        assert in_group(az, w["sub"], replica["target_rg"]) == target_before and groups(az, w["sub"]) == before
    finally:
        w["host"].close()


def test_a_target_group_already_holding_a_name_the_test_would_make_gets_no_test_failover(
        az, emu, azurite, tmp_path, monkeypatch, replicated):
    """An operator's NIC in the target group has the name A2A gives the test's NIC: the drill fails before sending
    anything (ASR would collide with it, and the check after the cleanup could not tell it from the test's), the NIC
    is untouched, and no cleanup is sent for a test failover that never was."""
    from azure.mgmt.network.models import Subnet

    w, replica = replica_world(az, emu, azurite, tmp_path, monkeypatch, saved=replicated)
    try:
        sub, target = w["sub"], replica["target_rg"]
        net = az.client(NetworkManagementClient, sub, polling_interval=0)
        ops = vnet("10.7.0.0/16")
        ops.subnets = [Subnet(name="default", address_prefix="10.7.0.0/24")]
        subnet = net.virtual_networks.begin_create_or_update(target, "ops-net", ops).result().subnets[0]
        nic = net.network_interfaces.begin_create_or_update(target, "vm-00000-nic-test", {
            "location": SECOND, "tags": {"owner": "ops"}, "properties": {"ipConfigurations": [{
                "name": "ipconfig1", "properties": {"subnet": {"id": subnet.id}}}]}}).result()
        target_before = in_group(az, sub, target)
        mark = len(az.calls())
        w["host"].fire_timer("plan_drills")
        assert w["host"].run_until_idle(timeout=120)

        (drill,) = w["wiring"].drills.history()
        assert drill.result == "failed" and "already holds" in drill.reason and nic.id.lower() in drill.reason.lower()
        assert drill.cleanup == "removed"  # its own group and VNet: torn down
        assert app_calls(az, mark, TEST_FAILOVER) == [] and app_calls(az, mark, CLEANUP) == []
        assert in_group(az, sub, target) == target_before
        assert net.network_interfaces.get(target, "vm-00000-nic-test").tags == {"owner": "ops"}
        assert said(w) == [A.DRILL_FAILED]
    finally:
        w["host"].close()


def test_a_vm_without_a_replicated_item_fails_its_replica_drill_saying_where_it_looked(
        az, emu, azurite, tmp_path, monkeypatch):
    """VMKEEPER_VAULTS names a vault that replicates nothing of the VM: the drill fails naming the vaults, one alert,
    nothing made (no group, no VNet)."""
    from emulator.recoveryservices.models import seed_vault

    w = drill_world(az, emu, azurite, tmp_path, monkeypatch, point="replica")
    try:
        vault = seed_vault(emu, w["sub"], "rg-dr", "vault-dr", SECOND)
        monkeypatch.setenv("VMKEEPER_VAULTS", json.dumps({SECOND: vault}))
        before = groups(az, w["sub"])
        w["host"].fire_timer("plan_drills")
        assert w["host"].run_until_idle(timeout=60)
        (drill,) = w["wiring"].drills.history()
        assert drill.result == "failed" and "no replicated item" in drill.reason and vault in drill.reason
        assert drill.cleanup == "removed" and said(w) == [A.DRILL_FAILED]
        assert groups(az, w["sub"]) == before
    finally:
        w["host"].close()
