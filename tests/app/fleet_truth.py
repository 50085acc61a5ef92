"""Ground truth for the whole-fleet model (tests/app/test_fleet_model.py): what exists in the emulator, read
from its state directly (no ARM call, so no injected fault or throttle can blur the assertion), and what the
app recorded in Azurite (alerts, poison queues, restores), read generically by table and queue name.

Recovery points are told apart here as the issue defines them, independently of the app's own catalogue:
a snapshot set is the snapshots sharing one ``vmkeeper-set`` tag in one region (complete when all
``vmkeeper-set-size`` members are Succeeded and, for a copy, at 100 % without a copy error); a restore point
is one point in a collection vmkeeper tagged (a copy when it has a ``sourceRestorePoint``). Each is of one
instance of its VM (a VM deleted and created again keeps its ARM id, not its vmId): a set's
``vmkeeper-vm-instance`` tag, a restore point's source metadata ``vmId``; a lineage is per VM, instance, kind
and copy. A snapshot's immutability policy (Compute 2026-03-02) is read as its policyExpirationTime.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from emulator.compute.models import immutability_expiry
from shared import tags as T

SNAPSHOT = "microsoft.compute/snapshots"
COLLECTION = "microsoft.compute/restorepointcollections"
RESTORE_POINT = "microsoft.compute/restorepointcollections/restorepoints"
VM = "microsoft.compute/virtualmachines"
LOCK = "microsoft.authorization/locks"


@dataclass(frozen=True)
class Point:
    key: str  # "snapshot-set:{set}:{region}" (as the catalogue names it) or the restore point's id, lower case
    kind: str  # "snapshot_set" | "restore_point"
    vm: str  # the source VM's id, lower case (from vmkeeper's tags)
    copy: bool
    time: str  # the slot (sets) or creation time (restore points)
    complete: bool
    members: tuple[str, ...]  # every resource id it is made of, lower case
    container: str = ""  # a restore point's collection id
    instance: str = ""  # the VM's instance it was made of (its vmId, lower case); "": not said

    @property
    def lineage(self) -> tuple[str, str, str, bool]:
        return (self.vm, self.instance, self.kind, self.copy)


@dataclass
class Truth:
    points: dict[str, Point] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)  # id (lower) → tags (a copy)
    groups: dict[str, dict[str, str] | None] = field(default_factory=dict)  # name (lower) → tags
    locks: set[str] = field(default_factory=set)  # lock ids (lower)
    power: dict[str, str] = field(default_factory=dict)  # VM id (lower) → "running" | "deallocated" | ...
    copying: set[str] = field(default_factory=set)  # sources (lower) of copies in flight: pinned
    point_vms: set[str] = field(default_factory=set)  # VMs (lower) vmkeeper's artifacts say they protect
    instances: dict[str, str] = field(default_factory=dict)  # VM id (lower) → its vmId now (lower)
    # Snapshots (lower) with an immutability policy → its policyExpirationTime (epoch seconds), expired or not.
    immutable: dict[str, float] = field(default_factory=dict)

    def newest_complete(self) -> dict[tuple[str, str, str, bool], Point]:
        out: dict[tuple[str, str, str, bool], Point] = {}
        for p in self.points.values():
            if p.complete and (p.lineage not in out or p.time > out[p.lineage].time):
                out[p.lineage] = p
        return out


def read(emu: Any, sub: str) -> Truth:
    """A consistent snapshot of the emulator's state (under its lock)."""
    with emu.lock:
        store = emu.store
        resources = {k: dict(r.tags or {}) for k, r in store.resources.items()}
        groups = {name: (dict(g.tags) if g.tags is not None else None)
                  for name, g in store.subscription(sub).resource_groups.items()}
        locks = {k for k, r in store.resources.items() if r.type.lower() == LOCK}
        power = {k: str(r.internal.get("power", "running")) for k, r in store.resources.items()
                 if r.type.lower() == VM}
        instances = {k: str(r.properties.get("vmId") or "").lower() for k, r in store.resources.items()
                     if r.type.lower() == VM}
        snaps = [r for r in store.resources.values() if r.type.lower() == SNAPSHOT and T.is_managed(r.tags)]
        collections = {r.key: r for r in store.resources.values()
                       if r.type.lower() == COLLECTION and T.is_managed(r.tags)}
        rps = [r for r in store.resources.values() if r.type.lower() == RESTORE_POINT]
        copying = {str(r.internal["copy"].get("source") or (r.properties.get("sourceRestorePoint") or {}).get("id"))
                   .lower() for r in store.resources.values()
                   if r.type.lower() in (SNAPSHOT, RESTORE_POINT) and r.internal.get("copy")
                   and (float(r.properties.get("completionPercent", 100) or 0) < 100
                        or r.properties.get("provisioningState") == "Creating")
                   and not r.properties.get("copyCompletionError")}
        point_vms = {str((r.tags or {}).get(T.VM, "")).lower() for r in list(snaps) + list(collections.values())}
        immutable = {r.key: immutability_expiry(r.internal["immutability"]) for r in store.resources.values()
                     if r.type.lower() == SNAPSHOT and r.internal.get("immutability")}
        points: dict[str, Point] = {}
        sets: dict[tuple[str, str], list[Any]] = {}
        for s in snaps:
            set_id = (s.tags or {}).get(T.SET)
            if set_id:
                sets.setdefault((set_id, str(s.location).lower()), []).append(s)
        for (set_id, region), members in sets.items():
            tags = members[0].tags or {}
            size = int(tags.get(T.SET_SIZE) or 0)
            copy = any(T.COPY_OF in (m.tags or {}) for m in members)
            done = [m for m in members if m.properties.get("provisioningState") == "Succeeded"
                    and float(m.properties.get("completionPercent", 100) or 0) >= 100
                    and not m.properties.get("copyCompletionError")]
            key = f"snapshot-set:{set_id}:{region}"
            points[key] = Point(key, "snapshot_set", str(tags.get(T.VM, "")).lower(), copy, str(tags.get(T.SLOT, "")),
                                size > 0 and len(done) >= size, tuple(sorted(m.key for m in members)),
                                instance=str(tags.get(T.VM_INSTANCE) or "").lower())
        for rp in rps:
            parent = rp.key.rsplit("/restorepoints/", 1)[0]
            rpc = collections.get(parent)
            if rpc is None:
                continue
            copy = bool(rp.properties.get("sourceRestorePoint"))
            points[rp.key] = Point(rp.key, "restore_point", str((rpc.tags or {}).get(T.VM, "")).lower(), copy,
                                   str(rp.properties.get("timeCreated", "")),
                                   rp.properties.get("provisioningState") == "Succeeded", (rp.key,), parent,
                                   str((rp.properties.get("sourceMetadata") or {}).get("vmId") or "").lower())
    return Truth(points, resources, groups, locks, power, copying, point_vms, instances, immutable)


# --- what the app recorded in Azurite ---------------------------------------------------------------
def alerts(connection: str, table: str) -> list[dict[str, Any]]:
    """Every alert in the outbox: type, subject and the CloudEvent (generic: any type name)."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import TableClient

    client = TableClient.from_connection_string(connection, table)
    try:
        rows = list(client.list_entities())
    except ResourceNotFoundError:
        return []
    return [{"id": r["RowKey"], "type": r.get("type", ""), "subject": str(r.get("subject", "")).lower(),
             "time": r.get("time", ""), "event": r.get("event", "")} for r in rows]


def poisoned(connection: str, queue: str) -> list[dict[str, Any]]:
    """The poison queue's messages (peeked, not taken): {"reason", "message"} each."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.queue import QueueClient

    client = QueueClient.from_connection_string(connection, queue)
    out = []
    try:
        for m in client.peek_messages(max_messages=32):
            raw = m.content
            try:
                raw = base64.b64decode(raw).decode()
            except Exception:  # noqa: BLE001 (not base64: as sent)
                pass
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append({"reason": "", "message": raw})
    except ResourceNotFoundError:
        return []
    return out


def table_rows(connection: str, table: str, query: str | None = None) -> list[dict[str, Any]]:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import TableClient

    client = TableClient.from_connection_string(connection, table)
    try:
        return [dict(r) for r in (client.query_entities(query) if query else client.list_entities())]
    except ResourceNotFoundError:
        return []
