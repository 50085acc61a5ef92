"""A world of replicated VMs for the failover tests: three VMs in westeurope tagged ``vmkeeper-dr: critical``,
replicated to a vault in northeurope by the app's own enable path (the policy's ``replication`` block mapping each
source VNet to a recovery VNet; tests/app/replication_world.py), and the app on the local Functions host over
Azurite, with the settings its failovers and recovery plans read. ``replicated`` builds it once (seconds: the
enable path waits on the queue) for a module's tests to start from (``start(saved=...)``)."""

from __future__ import annotations

import importlib
import json
import uuid
from typing import Any

from devtools.functions_host import LocalFunctionsHost
from emulator.testing import StaticCredential
from shared import tags as T
from shared import wiring
from shared.access import FAILOVER, OPERATOR, READER, encode_principal
from shared.replication import names
from tests.app import openapi_check
from tests.app import replication_world as R
from tests.app.replication_world import (  # noqa: F401 (the failover tests' names for the DR side)
    SOURCE,
    SRC_CONTAINER,
    SRC_FABRIC,
    TARGET,
    TARGET_RG,
    TGT_FABRIC,
    VAULT,
)
from tests.app.replication_world import VAULT_RG as RG

IR_SECONDS = 60  # an item's initial replication (again after a reprotect) is over once the clock moved this much
# vm-00000 and vm-00001 boot first, vm-00002 after them (seed: VMs alternate between rg-vm-00 and rg-vm-01).
APP_TAGS = [{T.APP: "billing", T.APP_GROUP: "1", **R.CRITICAL}, {T.APP: "Billing", T.APP_GROUP: "1", **R.CRITICAL},
            {T.APP: "billing", T.APP_GROUP: "2", **R.CRITICAL}]
SOURCE_GROUPS = ("rg-vm-00", "rg-vm-01")
FAILOVER_PRINCIPAL = encode_principal("00000000-0000-0000-0000-0000000000f0", [FAILOVER], name="dr@example.com")
RESTORE_OPERATOR_PRINCIPAL = encode_principal("00000000-0000-0000-0000-0000000000aa", [OPERATOR], name="ops@example.com")
RESTORE_ROLES_PRINCIPAL = encode_principal("00000000-0000-0000-0000-0000000000ab", [OPERATOR, READER])
WRITES = ("PUT", "PATCH", "DELETE", "POST")


def asr(az: Any, sub: str) -> Any:
    return R.site_recovery(az, sub)


def _vnet(network: Any, rg: str, name: str) -> str:
    return network.virtual_networks.begin_create_or_update(rg, name, {
        "location": TARGET, "properties": {"addressSpace": {"addressPrefixes": ["10.9.0.0/16"]}, "subnets": [
            {"name": "default", "properties": {"addressPrefix": "10.9.0.0/24"}}]}}).result().id


def dr_side(az: Any, emu: Any, sub: str) -> dict[str, Any]:
    """The target-region vault, the target group, and in it a recovery VNet (the mappings' target) and a VNet for
    test failovers (plain SDK clients: the arrangement's calls are not the app's)."""
    from azure.mgmt.network import NetworkManagementClient

    vault = R.dr_side(az, emu, sub)
    network = az.client(NetworkManagementClient, sub, polling_interval=0)
    return {"vault": vault, "target_rg": f"/subscriptions/{sub}/resourceGroups/{TARGET_RG}",
            "recovery_vnet": _vnet(network, TARGET_RG, "vnet-recovery"), "test_vnet": _vnet(network, TARGET_RG, "vnet-drill")}


def dr_ids(sub: str) -> dict[str, Any]:
    """What ``dr_side`` made, by id (a saved world's)."""
    group = f"/subscriptions/{sub}/resourceGroups/{TARGET_RG}"
    return {"vault": R.vault_id(sub), "target_rg": group,
            "recovery_vnet": f"{group}/providers/Microsoft.Network/virtualNetworks/vnet-recovery",
            "test_vnet": f"{group}/providers/Microsoft.Network/virtualNetworks/vnet-drill"}


def policies(sub: str, recovery_vnet: str) -> dict[str, Any]:
    """One policy: a daily snapshot (not run here) and the replication block: each source group's VNet mapped to
    the recovery VNet, app-consistent points hourly."""
    mappings = [{"source_vnet": f"/subscriptions/{sub}/resourceGroups/{g}/providers/Microsoft.Network/"
                                f"virtualNetworks/vnet-{SOURCE}", "target_vnet": recovery_vnet, "target_subnet": "default"}
                for g in SOURCE_GROUPS]
    return {"version": 1, "default": "dr", "policies": {"dr": {
        "schedule": {"every_hours": 24}, "snapshots": {"luns": "all", "include_os_disk": True},
        "replication": R.block(sub, {"mappings": mappings}, app_consistent_frequency_hours=1)}}}


def start(az: Any, emu: Any, azurite: Any, tmp_path: Any, monkeypatch: Any, *, wiring_class: type = wiring.Wiring,
          saved: dict[str, Any] | None = None, **extra: str) -> dict[str, Any]:
    """Three tagged VMs replicating, and the app on the local host (its failover settings, an allow-list that admits
    both regions' groups). ``wiring_class``: the app's wiring, or a test's subclass of it (parts that misbehave).
    Without ``saved`` the VMs are replicated here, by the app (then the clock moves on 10 minutes: a few recovery
    points); with ``saved`` (``replicated``), the world starts as that one stood."""
    from azure.mgmt.compute import ComputeManagementClient

    import function_app
    from tests.app.restore_world import fill_tables

    if saved is None:
        summary = az.seed(subscriptions=1, resource_groups=len(SOURCE_GROUPS), vms=3, data_disks=[1, 1],
                          regions=[SOURCE], tag_sets=APP_TAGS, seed=21)
        sub = summary["subscriptions"][0]
        dr = dr_side(az, emu, sub)
    else:
        emu.load_state(saved["state"])
        sub = saved["sub"]
        dr = dr_ids(sub)
    az.settings(siterecovery={"initial_replication_seconds": 1})  # enabling's; a reprotect's takes the item's
    compute = az.client(ComputeManagementClient, sub, polling_interval=0)
    vms = sorted(compute.virtual_machines.list_all(), key=lambda v: v.name)
    policy_file = tmp_path / "policies.json"
    policy_file.write_text(json.dumps(policies(sub, dr["recovery_vnet"])))
    suffix = uuid.uuid4().hex[:8]
    groups = [f"/subscriptions/{sub}/resourceGroups/{g}" for g in (*SOURCE_GROUPS, TARGET_RG)]
    settings = {"AzureWebJobsStorage": azurite.connection_string, "VMKEEPER_SUBSCRIPTIONS": sub,
                "VMKEEPER_POLICY_FILE": str(policy_file), "VMKEEPER_VAULTS": json.dumps({TARGET: dr["vault"]}),
                "VMKEEPER_JOBS_QUEUE": f"jobs-{suffix}", "VMKEEPER_PROTECT_QUEUE": f"protect-{suffix}",
                "VMKEEPER_RESTORE_QUEUE": f"restores-{suffix}", "VMKEEPER_RESTORE_TABLE": f"restores{suffix}",
                "VMKEEPER_LEDGER_TABLE": f"ledger{suffix}", "VMKEEPER_BUDGET_TABLE": f"budget{suffix}",
                "VMKEEPER_DRILL_QUEUE": f"drills-{suffix}", "VMKEEPER_FAILOVER_QUEUE": f"failovers-{suffix}",
                "VMKEEPER_FAILOVER_TABLE": f"failovers{suffix}", "VMKEEPER_ALERTS_TABLE": f"alerts{suffix}",
                "VMKEEPER_RECOVERY_PLAN_SCHEDULE": "0 */15 * * * *", "VMKEEPER_RESTORE_SCOPES": ",".join(groups),
                "VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path, **R.app_settings(suffix),
                **extra}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    wired = wiring.use(wiring_class(credential=StaticCredential()))
    host = LocalFunctionsHost(importlib.reload(function_app).app, azurite.connection_string, visibility_timeout=1)
    host.ensure_queues()
    if saved is None:
        R.enable(host, settings, [vm.id for vm in vms])
        az.advance(10 * 60)  # a few recovery points
    else:
        fill_tables(azurite.connection_string, settings, saved["tables"])
    replicated_items = R.rows(settings)
    dr["items"] = {vm.name: json.loads(replicated_items[vm.id.lower()]["detail"])["item_id"] for vm in vms}
    dr["item_names"] = {vm.name: names.protected_item(vm.id) for vm in vms}
    return {"sub": sub, "vms": vms, "dr": dr, "host": host, "settings": settings, "wiring": wired, "asr": asr(az, sub),
            "compute": compute}


def replicated(local_azure: Any, azurite: Any, tmp_path: Any) -> dict[str, Any]:
    """The world ``start`` makes, replicated, saved for a module's tests (``start(saved=...)``)."""
    from tests.app.restore_world import saved_after

    return saved_after(local_azure, azurite, tmp_path, start)


def api(world: dict[str, Any], method: str, path: str, body: Any = None, *, principal: str | None = FAILOVER_PRINCIPAL,
        headers: dict[str, str] | None = None, raw: bytes | None = None) -> Any:
    """A request through the local host (function key, App Service's principal header), its answer checked against
    the OpenAPI document."""
    h = dict(headers or {})
    if principal:
        h["X-MS-CLIENT-PRINCIPAL"] = principal
    h["x-functions-key"] = world["host"].function_key
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    answer = world["host"].http(method, path, headers=h, body=data)
    openapi_check.check(method, path, answer.status, answer.headers, answer.body, request=data)
    return answer


def app_calls(az: Any, since: int) -> list[dict[str, Any]]:
    """The app's own ARM calls since a mark (its clients' user agent names vmkeeper)."""
    return [c for c in az.calls(since) if "vmkeeper/" in (c.get("userAgent") or "")]


def writes(az: Any, since: int) -> list[dict[str, Any]]:
    """The app's ARM writes since a mark (Resource Graph queries are POSTs that read)."""
    return [c for c in app_calls(az, since) if c["method"] in WRITES and "ResourceGraph" not in (c.get("operation") or "")]


def plan(world: dict[str, Any], name: str = "vmkeeper-app-billing") -> Any:
    return world["asr"].replication_recovery_plans.get(RG, VAULT, name)


def boot_order(world: dict[str, Any], name: str = "vmkeeper-app-billing") -> list[list[str]]:
    """The plan's Boot groups as VM names, in order."""
    names = {v.lower(): k for k, v in world["dr"]["items"].items()}
    return [sorted(names[i.id.lower()] for i in g.replication_protected_items or [])
            for g in plan(world, name).properties.groups if g.group_type == "Boot"]
