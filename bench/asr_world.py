"""What the Site Recovery benchmarks share (bench/replication.py, bench/replica_drill.py): the app as deployed —
the local Functions host, Azurite, and the emulator in its own process (devtools/processes.py) — over a seeded
fleet of VMs tagged ``vmkeeper-dr: critical`` in the source region, a Recovery Services vault and the replicas'
group in the target region, and one policy with a ``replication`` block (isolated recovery VNet)."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

SOURCE, TARGET = "westeurope", "northeurope"
VAULT_GROUP, TARGET_GROUP, VAULT_NAME = "rg-dr-vault", "rg-dr", f"vault-{TARGET}"
VAULT_API = "2025-08-01"


def block(sub: str) -> dict[str, Any]:
    """The policy's replication block: to the target region, an isolated recovery VNet vmkeeper makes."""
    return {"target_region": TARGET, "target_resource_group": f"/subscriptions/{sub}/resourceGroups/{TARGET_GROUP}",
            "network": {"isolated": True},
            "cache_storage_accounts": {SOURCE: f"/subscriptions/{sub}/resourceGroups/rg-dr-cache/providers/"
                                               f"Microsoft.Storage/storageAccounts/vmkcache{SOURCE}"},
            "recovery_point_retention_hours": 24, "app_consistent_frequency_hours": 4}


def seconds_between(a: str | float | None, b: str | float | None) -> float | None:
    """b - a in seconds; each an ISO 8601 instant or epoch seconds."""
    if a is None or b is None or a == "" or b == "":
        return None

    def ts(x: str | float) -> float:
        return x if isinstance(x, float | int) else datetime.fromisoformat(x).timestamp()
    return round(ts(b) - ts(a), 3)


def spread(values: list[float]) -> dict[str, float]:
    """mean, max and min of per-VM figures (those measured)."""
    values = [v for v in values if v is not None]
    if not values:
        return {}
    return {"mean": round(sum(values) / len(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


@contextlib.contextmanager
def saved_environ() -> Iterator[None]:
    """App settings are environment variables: a benchmark's are undone afterwards (the next one sets its own)."""
    before = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)


@contextlib.contextmanager
def world(storage: Any, vms: int, policy: dict[str, Any], settings: dict[str, str] | None = None,
          emulator: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """A fresh emulator process with ``vms`` critical VMs (an OS and a data disk each) and the vault; the app's
    settings (fresh queue and table names in ``storage``), the host built and its queues made (not started).
    ``policy``: the one policy (the default) given the subscription id; ``emulator``: its settings to begin with."""
    from azure.mgmt.resource.resources import ResourceManagementClient
    from azure.mgmt.resource.resources.models import GenericResource

    import function_app
    from devtools.functions_host import LocalFunctionsHost
    from devtools.processes import emulator_process
    from emulator.testing import LocalAzure, StaticCredential
    from shared import wiring

    with saved_environ(), emulator_process() as info:
        az = LocalAzure(info["base_url"], info["ca_path"])
        sub = az.seed(subscriptions=1, resource_groups=1, vms=vms, data_disks=[1, 1], regions=[SOURCE],
                      tag_sets=[{"vmkeeper-dr": "critical"}], seed=21)["subscriptions"][0]
        az.settings(throttle={"enabled": False}, **(emulator or {}))
        resources = az.client(ResourceManagementClient, sub)
        for group in (VAULT_GROUP, TARGET_GROUP):
            resources.resource_groups.create_or_update(group, {"location": TARGET})
        vault = f"/subscriptions/{sub}/resourceGroups/{VAULT_GROUP}/providers/Microsoft.RecoveryServices/vaults/{VAULT_NAME}"
        resources.resources.begin_create_or_update_by_id(vault, GenericResource(
            location=TARGET, sku={"name": "RS0", "tier": "Standard"}, properties={}), api_version=VAULT_API).result()
        policy_file = os.path.join(tempfile.mkdtemp(prefix="vmkeeper-bench-"), "policies.json")
        with open(policy_file, "w", encoding="utf-8") as fh:
            json.dump({"version": 1, "default": "dr", "policies": {"dr": policy(sub)}}, fh)
        suffix = uuid.uuid4().hex[:8]
        env = {
            "AzureWebJobsStorage": storage.connection_string, "VMKEEPER_SUBSCRIPTIONS": sub,
            "VMKEEPER_VAULTS": json.dumps({TARGET: vault}), "VMKEEPER_POLICY_FILE": policy_file,
            "VMKEEPER_REPLICATION_QUEUE": f"breplication-{suffix}", "VMKEEPER_REPLICATION_SCHEDULE": "0 */30 * * * *",
            "VMKEEPER_LEDGER_TABLE": f"bledger{suffix}", "VMKEEPER_ALERTS_TABLE": f"balerts{suffix}",
            "VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path,
            **{k: v.format(suffix=suffix) for k, v in (settings or {}).items()},
        }
        os.environ.update(env)
        wired = wiring.use(wiring.Wiring(credential=StaticCredential()))
        host = LocalFunctionsHost(importlib.reload(function_app).app, storage.connection_string, visibility_timeout=1)
        host.ensure_queues()
        try:
            yield {"az": az, "sub": sub, "vault": vault, "host": host, "wiring": wired, "settings": env,
                   "policy_file": policy_file}
        finally:
            host.close()
            wiring.use(None)


def replication_rows(w: dict[str, Any]) -> list[dict[str, Any]]:
    return w["wiring"].replication.ledger.existing_rows("replication")


def poisoned(w: dict[str, Any], queue_setting: str) -> list[str]:
    """The reasons of the jobs in a queue's poison queue."""
    from azure.storage.queue import QueueClient

    from devtools.functions_host import _decode

    queue = QueueClient.from_connection_string(w["settings"]["AzureWebJobsStorage"], w["settings"][queue_setting] + "-poison")
    return [json.loads(_decode(m.content)).get("reason", "?") for m in queue.peek_messages(max_messages=32)]


def failed_invocations(w: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in w["host"].invocations if not i.get("ok")][-20:]


def replicate_all(w: dict[str, Any], vms: int, timeout: float) -> dict[str, float]:
    """Fire the replication sweep and run the host until every VM's row says ``protected``; returns each VM's
    protected time (the row's own ``updated``, epoch seconds)."""
    w["host"].fire_timer("replication_sweep")
    deadline = time.monotonic() + timeout
    while True:
        rows = replication_rows(w)
        done = {r["vmId"]: datetime.fromisoformat(r["updated"]).timestamp() for r in rows if r.get("outcome") == "protected"}
        if len(done) == vms:
            return done
        if time.monotonic() > deadline or any(r.get("outcome") not in ("protected", None) for r in rows):
            others = [(r["vmId"], r.get("outcome"), r.get("detail", "")[:300]) for r in rows if r.get("outcome") != "protected"]
            raise AssertionError(f"{len(done)} of {vms} protected; others: {others[:10]}; poisoned: "
                                 f"{poisoned(w, 'VMKEEPER_REPLICATION_QUEUE')[:5]}; failed: {failed_invocations(w)}")
        time.sleep(0.1)
