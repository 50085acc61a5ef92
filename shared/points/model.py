"""The inventory of recovery points, pure: what vmkeeper keeps of a VM, in three kinds, each with its
completeness, built from rows and bodies already read (shared/points/inventory.py reads them), so it works
as well for a VM that no longer exists. Used alike by the restore catalogue, compliance and drills
(retention judges the same artifacts by its own rules, and is pinned by shared/points/pins.py).

- ``snapshot_set``: the incremental snapshots of one run of one slot (tag ``vmkeeper-set``), one set
  per region (the second region's copies are a set of their own); complete only when every disk of
  the set (``vmkeeper-set-size``) is there, Succeeded and, for a copy, 100 % copied. Only snapshots
  vmkeeper named are members (shared/points/owned.py: the reads leave the others out).
- ``restore_point``: a VM restore point in vmkeeper's collection, or in that collection's copy in
  the second region; complete when Succeeded (a copy: every disk restore point replicated).
- ``vault``: an Azure Backup recovery point of the VM's protected item, in its region's vault.

Compliance judges five kinds of point (``kind_of``): vault points, snapshot sets and restore points, and the
second-region copies of each of the last two, each on its own; and a sixth kind that is no point, ``replica``:
the VM's Site Recovery replicated item (shared/points/replicas.py), read in the same pass of the fleet.

A point retention has marked for deletion (the ``vmkeeper-expiring`` tag on a set's snapshots; a restore
point's mark, which lives in retention's ledger, when the caller passes the marks) is still offered, and
its note says when it is due to go: a restore accepted before then pins it (shared/points/pins.py; retention
reads the pins again right before each delete), so the restore reads it whole and it goes only once the
restore has ended. Hiding it would take a point from an operator exactly when it may be the one they need.

Each point has an ``id`` the restore API takes back (``recovery_point`` in a request): the ARM id of a
restore point or a vault recovery point, and ``snapshot-set:{set}:{region}`` for a snapshot set (it
has no ARM resource of its own).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from .. import tags as T
from ..instants import format_instant, parse_instant
from .replicas import ReplicatedItem

SNAPSHOT_SET = "snapshot_set"
RESTORE_POINT = "restore_point"
VAULT = "vault"
KINDS = (SNAPSHOT_SET, RESTORE_POINT, VAULT)  # a point's kind (a copy is a point of its source's kind)
# The kinds compliance judges, in Azure's words: a vault recovery point, a snapshot set, a VM restore point,
# and the copies of each of the last two in the policy's second region (judged apart: one kind's copies say
# nothing of the other's). shared/report/model.py shows them.
SNAPSHOT_COPY, RESTORE_POINT_COPY = "snapshot_copy", "restore_point_copy"
REPLICA = "replica"  # the VM's Site Recovery replicated item: its health and RPO (shared/points/replicas.py)
ISOLATED_COPY = "isolated_copy"  # a snapshot set's isolated copy in the backup subscription (docs/isolated-copies.md)
JUDGED_KINDS = (VAULT, SNAPSHOT_SET, RESTORE_POINT, SNAPSHOT_COPY, RESTORE_POINT_COPY, REPLICA, ISOLATED_COPY)
COPY = "copy"  # compliance rows recorded before copies were judged by kind: either kind's copy (read, never written)
# A set's catalogue id; ``:isolated`` names its isolated copy in the backup subscription (docs/isolated-copies.md).
SET_ID = re.compile(r"^snapshot-set:([0-9a-f]{16}):([a-z0-9]{1,40})(:isolated)?$")
ISOLATED = "isolated"


@dataclass(frozen=True)
class RestoreDisk:
    lun: int | None  # None: the OS disk
    name: str  # the source disk's name (or the snapshot's)
    source_id: str  # what a disk is made from: a snapshot or a disk restore point id ("" for a vault point)
    size_gb: int | None = None
    os_type: str | None = None
    sku: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"lun": self.lun, "name": self.name, "source_id": self.source_id or None, "size_gb": self.size_gb,
                "os_type": self.os_type}


@dataclass(frozen=True)
class Immutability:
    """A snapshot set's immutability policy, in Azure's words (Compute 2026-03-02 ``properties.immutabilityPolicy``):
    ``type`` Locked only when every member's is, ``policyExpirationTime`` its members' earliest (the whole set is
    immutable only until then). A set with a member without a policy has none (``RecoveryPoint.immutability``: None)."""

    type: str  # Locked | Unlocked
    until: datetime  # policyExpirationTime

    def holds(self, now: datetime) -> bool:
        """Whether the policy is in force at ``now`` (Azure refuses the set's delete until it expires)."""
        return now < self.until

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "policyExpirationTime": format_instant(self.until)}


@dataclass(frozen=True)
class RecoveryPoint:
    id: str
    kind: str
    time: datetime
    region: str
    consistency: str
    complete: bool
    copy: bool = False
    disks: tuple[RestoreDisk, ...] = ()
    resource_id: str = ""  # the restore point or vault recovery point; "" for a snapshot set
    vm_size: str | None = None
    note: str = ""  # why it is not complete; and when it is due to be deleted, if it is marked
    extra: Mapping[str, str] = field(default_factory=dict)  # vault: vault id, container and item names
    instance: str = ""  # the VM instance it was made of (its vmId, lower case); "": not known (made before it was said)
    immutability: Immutability | None = None  # a snapshot set's immutabilityPolicy (None: none on some member)
    isolated: str = ""  # an isolated copy: the backup subscription's group that holds it ("": in production)

    @property
    def os_disk(self) -> RestoreDisk | None:
        return next((d for d in self.disks if d.lun is None), None)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "time": format_instant(self.time), "region": self.region,
                "consistency": self.consistency, "complete": self.complete, "copy": self.copy,
                "disks": [d.to_json() for d in self.disks], "resource_id": self.resource_id or None,
                "vm_size": self.vm_size, "note": self.note or None,
                "immutabilityPolicy": self.immutability.to_json() if self.immutability else None,
                **({"isolated": {"resource_group": self.isolated}} if self.isolated else {})}


def region_of(location: Any) -> str:
    return str(location or "").replace(" ", "").lower()


def snapshot_set_id(set_id: str, region: str) -> str:
    return f"snapshot-set:{set_id}:{region}"


def isolated_set_id(set_id: str, region: str) -> str:
    return f"{snapshot_set_id(set_id, region)}:{ISOLATED}"


def expiring_note(when: datetime) -> str:
    """What a point marked for deletion says of it."""
    return (f"marked for deletion after {format_instant(when)}: a restore accepted before then pins it, "
            "and it is deleted only once that restore has ended")


def _expiring(tags: Mapping[str, Any] | None) -> datetime | None:
    """The EXPIRING mark on a snapshot (tag names are case-insensitive in Azure)."""
    return next((parse_instant(v) for k, v in (tags or {}).items() if str(k).lower() == T.EXPIRING), None)


def immutability_holds(policy: Any, now: datetime) -> bool:
    """Whether a snapshot's immutabilityPolicy (the SDK's, from a GET) still binds: Azure's ``isPolicyExpired`` when
    it says, else its ``policyExpirationTime``; with neither, it holds (a delete or a shortening must not be tried
    on doubt)."""
    if policy is None:
        return False
    if policy.is_policy_expired is not None:
        return not policy.is_policy_expired
    until = policy.policy_expiration_time
    return until is None or until > now


def _immutability(members: Iterable[Mapping[str, Any]]) -> Immutability | None:
    """The set's immutability: each member's ``immutableType`` and ``immutableUntil`` (Resource Graph's projection
    of ``properties.immutabilityPolicy``); None when some member has none."""
    found = []
    for m in members:
        until = parse_instant(str(m.get("immutableUntil") or "") or None)
        kind = str(m.get("immutableType") or "")
        if until is None or kind not in ("Locked", "Unlocked"):
            return None
        found.append((kind, until))
    if not found:
        return None
    return Immutability("Locked" if all(k == "Locked" for k, _ in found) else "Unlocked", min(u for _, u in found))


def _lun(text: Any) -> int | None:
    return int(text) if isinstance(text, str) and text.isdigit() else None


def snapshot_sets(rows: Iterable[Mapping[str, Any]]) -> list[RecoveryPoint]:
    """Snapshot sets from Resource Graph rows of vmkeeper's snapshots of one VM (``id``, ``name``,
    ``location``, ``tags``, ``state``, ``completion``, ``size``, ``osType``, ``option``; ``immutableType`` and
    ``immutableUntil``: its immutabilityPolicy's type and policyExpirationTime, when it has one)."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    rows = list(rows)
    # A copy made before copies carried their LUN takes its source's (COPY_OF holds the source's id).
    luns = {str(r.get("id", "")).lower()[-256:]: (r.get("tags") or {}).get(T.LUN) for r in rows}
    rows = [r if T.LUN in (r.get("tags") or {}) or T.COPY_OF not in (r.get("tags") or {}) else
            {**r, "tags": {**r["tags"], T.LUN: luns.get(str(r["tags"][T.COPY_OF]).lower())}} for r in rows]
    for row in rows:
        tags = row.get("tags") or {}
        set_id = str(tags.get(T.SET, "")).lower()
        if not T.is_managed(tags) or not re.fullmatch(r"[0-9a-f]{16}", set_id):
            continue
        groups[(set_id, region_of(row.get("location")))].append(row)
    out = []
    for (set_id, region), members in groups.items():
        tags = members[0].get("tags") or {}
        when = parse_instant(tags.get(T.SLOT))
        if when is None:
            continue
        size = _lun(str(tags.get(T.SET_SIZE, "")))
        disks, problems = [], []
        for row in sorted(members, key=lambda r: (_lun((r.get("tags") or {}).get(T.LUN)) is not None,
                                                  _lun((r.get("tags") or {}).get(T.LUN)) or 0)):
            rtags = row.get("tags") or {}
            state = str(row.get("state") or "").lower()
            completion = row.get("completion")
            if state != "succeeded":
                problems.append(f"{row.get('name')} is {state or 'unknown'}")
            elif completion is not None and not (isinstance(completion, int | float) and completion >= 100):
                problems.append(f"{row.get('name')} is {completion}% copied")
            lun_tag = str(rtags.get(T.LUN, ""))
            if lun_tag != "None" and _lun(lun_tag) is None:
                problems.append(f"{row.get('name')} has no readable {T.LUN} tag ({lun_tag!r})")
            # No sku: the snapshot's own (Standard_LRS) says nothing of the disk it was taken of.
            disks.append(RestoreDisk(_lun(rtags.get(T.LUN)), str(row.get("name") or ""), str(row.get("id") or ""),
                                     row["size"] if isinstance(row.get("size"), int) else None,
                                     row.get("osType") or None))
        luns = [d.lun for d in disks]
        if len(set(luns)) != len(luns):
            problems.append("two members claim the same disk")
        if size is None:
            problems.append(f"no {T.SET_SIZE} tag")
        elif len(disks) != size:
            problems.append(f"{len(disks)} of {size} disks")
        expiring = max((t for t in (_expiring(m.get("tags")) for m in members) if t), default=None)
        notes = problems + ([expiring_note(expiring)] if expiring else [])
        instances = {str((m.get("tags") or {}).get(T.VM_INSTANCE) or "").strip().lower() for m in members}
        out.append(RecoveryPoint(snapshot_set_id(set_id, region), SNAPSHOT_SET, when, region, "CrashConsistent",
                                 not problems, any(T.COPY_OF in (m.get("tags") or {}) for m in members),
                                 tuple(disks), note="; ".join(notes),
                                 instance=instances.pop() if len(instances) == 1 else "",
                                 immutability=_immutability(members)))
    return out


def isolated_sets(rows: Iterable[Mapping[str, Any]], group_id: str) -> list[RecoveryPoint]:
    """A VM's isolated copies in the backup group ``group_id`` (rows as ``snapshot_sets`` takes them): one point per
    set, its own id (``…:isolated``), its disks made from the copies, its immutability the copies' (as any set's)."""
    out = []
    for point in snapshot_sets(rows):
        set_id = SET_ID.fullmatch(point.id).group(1)
        out.append(replace(point, id=isolated_set_id(set_id, point.region), copy=False, isolated=group_id))
    return out


def restore_points(collections: Iterable[tuple[Mapping[str, Any], Iterable[Mapping[str, Any]]]],
                   marks: Mapping[str, str] | None = None) -> list[RecoveryPoint]:
    """Restore points from (collection body, its points' bodies with ``$expand=instanceView``), in ARM's
    REST shape. A collection whose source is another collection is a cross-region copy. ``marks``:
    retention's marks on restore points (lower-case id -> instant; its ledger's ``marks`` partition)."""
    marks = {k.lower(): v for k, v in (marks or {}).items()}
    out = []
    for collection, points in collections:
        region = region_of(collection.get("location"))
        source = str(((collection.get("properties") or {}).get("source") or {}).get("id") or "")
        is_copy = "/restorepointcollections/" in source.lower()
        for point in points:
            props = point.get("properties") or {}
            when = parse_instant(props.get("timeCreated"))
            if when is None:
                continue
            meta = props.get("sourceMetadata") or {}
            storage = meta.get("storageProfile") or {}
            disks = []
            for spec, lun in ([(storage.get("osDisk"), None)] if storage.get("osDisk") else []) + [
                    (d, d.get("lun")) for d in storage.get("dataDisks") or []]:
                drp = (spec.get("diskRestorePoint") or {}).get("id") or ""
                disks.append(RestoreDisk(lun, str(spec.get("name") or ""), drp, spec.get("diskSizeGB"), spec.get("osType"),
                                         (spec.get("managedDisk") or {}).get("storageAccountType")))
            state = str(props.get("provisioningState") or "").lower()
            problems = [] if state == "succeeded" else [f"provisioning {state or 'unknown'}"]
            for drp in ((props.get("instanceView") or {}).get("diskRestorePoints") or []):
                status = ((drp.get("replicationStatus") or {}).get("status") or {}).get("code", "")
                if status and not status.lower().endswith("succeeded"):
                    problems.append(f"{str(drp.get('id', '')).rsplit('/', 1)[-1]} {status.split('/')[-1]}")
            expiring = parse_instant(marks.get(str(point.get("id") or "").lower()))
            notes = problems + ([expiring_note(expiring)] if expiring else [])
            out.append(RecoveryPoint(str(point.get("id") or ""), RESTORE_POINT, when, region,
                                     str(props.get("consistencyMode") or "CrashConsistent"), not problems, is_copy,
                                     tuple(disks), resource_id=str(point.get("id") or ""),
                                     vm_size=(meta.get("hardwareProfile") or {}).get("vmSize"),
                                     note="; ".join(notes), instance=str(meta.get("vmId") or "").strip().lower()))
    return out


def vault_points(vault_id: str, region: str, points: Iterable[Mapping[str, Any]]) -> list[RecoveryPoint]:
    """Azure Backup recovery points (IaasVMRecoveryPoint bodies) of one protected item."""
    out = []
    for point in points:
        props = point.get("properties") or {}
        when = parse_instant(props.get("recoveryPointTime"))
        if when is None:
            continue
        included = (props.get("recoveryPointDiskConfiguration") or {}).get("includedDiskList") or []
        disks = tuple(RestoreDisk(None if d.get("lun") in (None, -1) else d.get("lun"), str(d.get("name") or ""), "",
                                  os_type=props.get("osType") if d.get("lun") in (None, -1) else None)
                      for d in included)
        consistency = {"AppConsistent": "ApplicationConsistent"}.get(props.get("recoveryPointType"),
                                                                    props.get("recoveryPointType") or "CrashConsistent")
        out.append(RecoveryPoint(str(point.get("id") or ""), VAULT, when, region, consistency, True, False, disks,
                                 resource_id=str(point.get("id") or ""), vm_size=props.get("virtualMachineSize"),
                                 extra={"vault_id": vault_id}))
    return out


def merge(*kinds: Iterable[RecoveryPoint]) -> list[RecoveryPoint]:
    """Every point, newest first; ties in a stable order (kind, then id)."""
    points = [p for kind in kinds for p in kind]
    return sorted(points, key=lambda p: (-p.time.timestamp(), KINDS.index(p.kind), p.id))


def of_instance(points: Iterable[RecoveryPoint], instance: str | None) -> list[RecoveryPoint]:
    """The points of one instance of a VM (its vmId): a VM deleted and created again under the same name keeps
    its ARM id, and its points are not the new one's. A point that does not say its instance (made before
    vmkeeper said it; a vault point) counts for any; so does every point when the VM's instance is not known."""
    want = (instance or "").strip().lower()
    return [p for p in points if not want or not p.instance or p.instance == want]


def kind_of(point: RecoveryPoint) -> str:
    """The kind compliance judges a point as (a copy: its source kind's copy; an isolated copy: its own)."""
    if point.isolated:
        return ISOLATED_COPY
    if point.kind == VAULT:
        return VAULT
    if point.kind == SNAPSHOT_SET:
        return SNAPSHOT_COPY if point.copy else SNAPSHOT_SET
    return RESTORE_POINT_COPY if point.copy else RESTORE_POINT


@dataclass
class FleetPoints:
    """The fleet's VMs and their recovery points, as shared/points/inventory.py reads them."""

    vms: list[dict[str, Any]] = field(default_factory=list)  # Resource Graph rows
    # Machines no kind of point covers (a Uniform scale set's instances), rows like the VMs' with ``scaleSet``
    unsupported: list[dict[str, Any]] = field(default_factory=list)
    points: dict[str, list[RecoveryPoint]] = field(default_factory=lambda: defaultdict(list))  # by VM id, lower case
    # Site Recovery's replicated items, by the VM they replicate (lower case); no recovery points (shared/points/replicas.py)
    replicas: dict[str, list[ReplicatedItem]] = field(default_factory=lambda: defaultdict(list))
    # Items whose other VM a VM is (a failed-over item's source; after a reprotect, its failback target), by that VM
    standby: dict[str, list[ReplicatedItem]] = field(default_factory=lambda: defaultdict(list))
    problems: list[str] = field(default_factory=list)  # what could not be read (said in the report)
    # VMs listed that are no fleet members (shared/membership.py), each with why: not judged, but shown
    excluded: list[tuple[dict[str, Any], str]] = field(default_factory=list)
