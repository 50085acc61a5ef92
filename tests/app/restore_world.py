"""A world to restore from, made by vmkeeper itself: one VM (an OS disk and two data disks) protected on
schedule — a snapshot set and a restore point, each copied to the second region — through the local
Functions host, Azurite and the emulator. The restore tests and the demo's story start here."""

from __future__ import annotations

import importlib
import json
import uuid
from typing import Any

from devtools.functions_host import LocalFunctionsHost
from emulator.testing import StaticCredential
from shared import wiring
from shared.restore.access import OPERATOR, READER, encode_principal

REGION, SECOND = "westeurope", "northeurope"
POLICIES = {"version": 1, "default": "full", "policies": {"full": {
    "schedule": {"every_hours": 1}, "snapshots": {"luns": "all", "include_os_disk": True},
    "restore_point": {"consistency": "CrashConsistent"}, "copy": {"region": SECOND}}}}
OPERATOR_PRINCIPAL = encode_principal("00000000-0000-0000-0000-0000000000aa", [OPERATOR], name="ops@example.com")
READER_PRINCIPAL = encode_principal("00000000-0000-0000-0000-0000000000bb", [READER], name="audit@example.com")


def start(az: Any, azurite: Any, tmp_path: Any, monkeypatch: Any, **extra: str) -> dict[str, Any]:
    import function_app

    summary = az.seed(subscriptions=1, resource_groups=2, vms=1, data_disks=[2, 2], regions=[REGION, SECOND],
                      tag_sets=[{}], seed=11)
    sub = summary["subscriptions"][0]
    policy_file = tmp_path / "policies.json"
    policy_file.write_text(json.dumps(POLICIES))
    suffix = uuid.uuid4().hex[:8]
    settings = {"AzureWebJobsStorage": azurite.connection_string, "VMKEEPER_SUBSCRIPTIONS": sub,
                "VMKEEPER_POLICY_FILE": str(policy_file), "VMKEEPER_JOBS_QUEUE": f"jobs-{suffix}",
                "VMKEEPER_PROTECT_QUEUE": f"protect-{suffix}", "VMKEEPER_RESTORE_QUEUE": f"restores-{suffix}",
                "VMKEEPER_RESTORE_TABLE": f"restores{suffix}", "VMKEEPER_LEDGER_TABLE": f"ledger{suffix}",
                "VMKEEPER_BUDGET_TABLE": f"budget{suffix}", "VMKEEPER_SCHEDULE": "0 0 * * * *",
                "VMKEEPER_RESTORE_SCOPES": f"/subscriptions/{sub}/resourceGroups/rg-restore,"
                                           f"/subscriptions/{sub}/resourceGroups/rg-vm-00,"
                                           f"/subscriptions/{sub}/resourceGroups/rg-vm-01",
                "VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path, **extra}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    wired = wiring.use(wiring.Wiring(credential=StaticCredential()))
    host = LocalFunctionsHost(importlib.reload(function_app).app, azurite.connection_string, visibility_timeout=1)
    host.ensure_queues()
    from azure.mgmt.resource.resources import ResourceManagementClient

    az.client(ResourceManagementClient, sub).resource_groups.create_or_update("rg-restore", {"location": REGION})
    vm_id = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000"
    return {"host": host, "sub": sub, "settings": settings, "wiring": wired, "vm_id": vm_id,
            "subnet": {r: f"/subscriptions/{sub}/resourceGroups/rg-vm-{i:02d}/providers/Microsoft.Network/"
                          f"virtualNetworks/vnet-{r}/subnets/default" for i, r in enumerate((REGION, SECOND))}}


def protect_once(world: dict[str, Any]) -> None:
    """One scheduled slot, run to the end: the set, the restore point and their copies."""
    world["host"].fire_timer("plan_slot")
    assert world["host"].run_until_idle(timeout=120)
