"""A retention pass: list what vmkeeper made (Resource Graph, one call per page across every
subscription in scope), decide with the pure engine (shared/retention/engine.py), and apply: mark,
unmark, delete under the per-subscription budget — or, in a dry run, only record.

Snapshots and collections carry their expiring mark as a tag (operators see it in the portal; a hold
tag stops it), written alone through ARM's Tags API (Merge to set it, Delete to remove it), so tags
anyone else wrote, even since the listing, are never touched. Restore points can't carry tags in
Azure, so their marks live in the ledger table. A snapshot, a copy or a restore point is vmkeeper's
only if its name is the one vmkeeper derives for it (shared/points/owned.py), whatever its tags say;
others are listed as not owned, and join no set. What is in use is pinned (shared/points/pins.py: a copy
in flight, a scheduled job still running, a restore or drill pending or running) and kept with rule
``pinned``: the copies come with the listing; the jobs (the schedule's ledger) and restores (their
table) are read for the sets the engine would mark or delete, and read again right before each set's
delete. Right before a delete, the
artifact is read again too: a hold, someone else's lock or a mark that is gone or changed keeps its
whole set. Every ARM write takes from the budget first; with none left it waits for the next pass.
Every decision is recorded in the ledger, with its rule and reason.

A VM deleted and created again under its name keeps its ARM id, not its ``vmId``: the listing gives each live
VM's current instance (its vmId and creation time) and each restore point's (its source metadata's vmId; a
snapshot says its own in ``vmkeeper-vm-instance``), so each instance's points are a lineage of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import resource_ids
from .. import tags as T
from ..azure.graph import query_all
from ..azure.ledger import Ledger
from ..points import owned as O
from ..points import pins as P
from ..points import reads as pin_reads
from ..points.model import immutability_holds
from ..ports import Arm, Budget, Table
from .engine import (
    COLLECTION,
    RESTORE_POINT,
    SNAPSHOT,
    Artifact,
    Decision,
    Instance,
    RetentionPolicy,
    decide,
    format_instant,
    parse_instant,
)

log = logging.getLogger("vmkeeper.retention")
MARKS = "marks"  # ledger partition holding restore points' expiring marks
COLLECTIONS = "collections"  # ledger partition: a collection's creation time, where ARM gives none
LOCKS_SEGMENT = "/providers/microsoft.authorization/locks/"

SNAPSHOTS_QUERY = (
    "Resources | where type =~ 'microsoft.compute/snapshots' | project id, location, tags, "
    "created = tostring(properties.timeCreated), state = tostring(properties.provisioningState), "
    "completion = properties.completionPercent, copyError = properties.copyCompletionError, "
    "option = tostring(properties.creationData.createOption), "
    "source = tostring(properties.creationData.sourceResourceId), "
    "immutableUntil = tostring(properties.immutabilityPolicy.policyExpirationTime)"
)
COLLECTIONS_QUERY = ("Resources | where type =~ 'microsoft.compute/restorepointcollections' "
                     "| project id, location, tags, resourceGroup, name, subscriptionId")
VMS_QUERY = ("Resources | where type =~ 'microsoft.compute/virtualmachines' "
             "| project id, vmId = tostring(properties.vmId), created = tostring(properties.timeCreated)")


@dataclass
class Listing:
    artifacts: list[Artifact] = field(default_factory=list)
    live_vm_ids: set[str] = field(default_factory=set)
    instances: dict[str, Instance] = field(default_factory=dict)  # each live VM's current instance (its vmId)
    copies: list[P.Copy] = field(default_factory=list)  # second-region copies in flight: they pin their sources


def _copy_in_flight(row: Mapping[str, Any], tags: Mapping[str, str], now: datetime) -> P.Copy | None:
    """A CopyStart snapshot still copying (not Failed, no copy error, under 100 %), with its source."""
    if str(row.get("option") or "").lower() != "copystart" or str(row.get("state") or "").lower() == "failed":
        return None
    if row.get("copyError") or (row.get("completion") or 0) >= 100:
        return None
    source = str(row.get("source") or "") or _value(tags, T.COPY_OF) or ""
    return P.Copy(row["id"], source, _instant(row.get("created"), now)) if source else None


def _instant(value: Any, fallback: datetime) -> datetime:
    return parse_instant(value) or fallback


def _tag(tags: Mapping[str, str] | None, name: str) -> tuple[str, str] | None:
    """(the name as written, its value) of a tag, its name matched case-insensitively as Azure does."""
    return next(((k, v) for k, v in (tags or {}).items() if k.lower() == name), None)


def _value(tags: Mapping[str, str] | None, name: str) -> str | None:
    found = _tag(tags, name)
    return found[1] if found else None


def _lock_scope(lock_id: str) -> str:
    return lock_id.lower().rsplit(LOCKS_SEGMENT, 1)[0]


def _locks_on(resource_id: str, lock_scopes: list[tuple[str, str]]) -> dict[str, bool]:
    """locked: any lock covers it; ours: every lock covering it is vmkeeper's own, on the artifact itself
    (only then may retention remove it, once LOCK_UNTIL has passed — the engine checks the date)."""
    rid = resource_id.lower()
    covering = [(s, n) for s, n in lock_scopes if rid == s or rid.startswith(s + "/")]
    return {"locked": bool(covering),
            "lock_is_ours_and_expired": bool(covering) and all(s == rid and n == T.OWN_LOCK for s, n in covering)}


def _collection_created(rpc: Any, point_times: list[datetime], ledger: Any, now: datetime) -> datetime:
    """The collection's own creation time: ARM's systemData.createdAt; where ARM gives none, the
    time first recorded in the ledger (its oldest restore point then, or the pass that first saw it
    empty), so an empty collection's time never moves from pass to pass."""
    system = getattr(rpc, "system_data", None)
    created = getattr(system, "created_at", None)
    if isinstance(created, datetime):
        return created.astimezone(UTC) if created.tzinfo else created.replace(tzinfo=UTC)
    row = ledger.get(COLLECTIONS, rpc.id)
    recorded = parse_instant((row or {}).get("created"))
    if recorded:
        return recorded
    first = min(point_times, default=now)
    ledger.record(COLLECTIONS, rpc.id, {"created": format_instant(first)})
    return first


def list_artifacts(graph: Any, compute: Any, locks: Any, ledger: Any, subscriptions: list[str], now: datetime,
                   lock_group: str | None = None, vms: Callable[[], list[Mapping[str, Any]]] | None = None) -> Listing:
    """Everything retention judges: snapshots, restore point collections and their restore points. ``lock_group``:
    the locks are read in that resource group only (an identity whose role is the group's: isolated copies);
    ``vms``: the VMs (rows of VMS_QUERY) when they live where ``graph`` does not look (the fleet's, for them)."""
    from azure.core.exceptions import ResourceNotFoundError

    lock_scopes: list[tuple[str, str]] = []  # (scope, lock name)
    for sub in subscriptions:
        listed = (locks(sub).management_locks.list_at_resource_group_level(lock_group) if lock_group
                  else locks(sub).management_locks.list_at_subscription_level())
        for lock in listed:
            lock_scopes.append((_lock_scope(lock.id), lock.name))
    vms = list(vms() if vms is not None else query_all(graph, subscriptions, VMS_QUERY))
    out = Listing(live_vm_ids={row["id"].lower() for row in vms},
                  instances={row["id"].lower(): Instance(str(row["vmId"]), parse_instant(row.get("created")))
                             for row in vms if row.get("vmId")})
    rows = list(query_all(graph, subscriptions, SNAPSHOTS_QUERY))
    owned = O.owned_snapshots(rows)
    for row in rows:
        tags = row.get("tags") or {}
        copying = row.get("option", "").lower() == "copystart"
        good = row.get("state") == "Succeeded" and (not copying or ((row.get("completion") or 0) >= 100 and not row.get("copyError")))
        out.artifacts.append(Artifact(id=row["id"], kind=SNAPSHOT, tags=tags, created=_instant(row.get("created"), now),
                                      region=row["location"], good=good, is_copy=copying,
                                      owned=row["id"].lower() in owned, **_locks_on(row["id"], lock_scopes),
                                      immutable_until=parse_instant(row.get("immutableUntil") or None)))
        copy = _copy_in_flight(row, tags, now)
        if copy is not None:
            out.copies.append(copy)
    for row in query_all(graph, subscriptions, COLLECTIONS_QUERY):
        tags = dict(row.get("tags") or {})
        try:
            rpc = compute(row["subscriptionId"]).restore_point_collections.get(row["resourceGroup"], row["name"],
                                                                                 expand="restorePoints")
        except ResourceNotFoundError:  # Resource Graph lags: deleted since it was indexed, so nothing to judge
            log.info("retention: collection %s is gone since Resource Graph listed it", row["id"])
            continue
        vm_id = _value(tags, T.VM)
        managed = T.is_managed(tags)
        times = []
        for rp in rpc.restore_points or []:
            ours = managed and O.restore_point_is_vmkeepers(rp.name, vm_id)
            rp_tags = {k: v for k, v in tags.items() if k.lower() != T.EXPIRING and (ours or k.lower() != T.MANAGED_BY)}
            mark = ledger.get(MARKS, rp.id) if ours else None
            if mark:
                rp_tags[T.EXPIRING] = mark["expiring"]
            rp_created = rp.time_created or now
            times.append(rp_created)
            source = getattr(rp.source_restore_point, "id", None)
            if source and (rp.provisioning_state or "").lower() not in ("succeeded", "failed"):
                out.copies.append(P.Copy(rp.id, source, rp_created))  # a restore point's copy in flight
            # Its instance: the vmId its source metadata says (a restore point carries no tags; a copy keeps its source's).
            instance = getattr(getattr(rp, "source_metadata", None), "vm_id", None) or ""
            out.artifacts.append(Artifact(id=rp.id, kind=RESTORE_POINT, tags=rp_tags, created=rp_created,
                                          region=row["location"], good=rp.provisioning_state == "Succeeded",
                                          is_copy=rp.source_restore_point is not None, set_id=rp.id,
                                          instance=instance, **_locks_on(rp.id, lock_scopes)))
        out.artifacts.append(Artifact(id=row["id"], kind=COLLECTION, tags=tags,
                                      created=_collection_created(rpc, times, ledger, now), region=row["location"],
                                      good=True, **_locks_on(row["id"], lock_scopes)))
    return out


@dataclass
class Applied:
    marked: int = 0  # marks written (a mark already in place is not written again)
    unmarked: int = 0
    deleted: int = 0
    skipped: int = 0
    kept: int = 0
    fresh_kept: int = 0  # decided delete, kept by the fresh look right before it (held, locked, unmarked...)
    deferred: int = 0  # writes left for the next pass: no budget now
    errors: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list, repr=False)  # the ids deleted (or found gone), lower case


def _parts(resource_id: str) -> tuple[str, str, str]:
    """(subscription, group, name): a restore point's name is its collection's (the engine's set of it)."""
    p = resource_ids.parts(resource_id)
    return p["subscription"], p["resource_group"], p["name"]


def _set_key(art: Artifact) -> tuple:
    """The engine's set: snapshots of one run, region and copy-ness go together; anything else alone."""
    set_id = _value(art.tags, T.SET)
    if art.kind == SNAPSHOT and set_id and set_id.strip():
        return ("set", set_id.strip(), art.region.lower(), art.is_copy)
    return ("one", art.id.lower())


def _error_text(art: Artifact, exc: Exception) -> str:
    return f"{art.id}: {getattr(exc, 'status_code', None) or type(exc).__name__} {getattr(exc, 'message', None) or exc}"


class _Apply:
    """One pass's decisions applied: marks and unmarks first, then deletes set by set."""

    def __init__(self, arm: Any, budget: Any, ledger: Any, run_id: str, write_budget: Any = None,
                 pinned: Callable[[list[Artifact]], P.Pin | None] | None = None, at: datetime | None = None):
        self.arm, self.budget, self.ledger, self.run_id = arm, budget, ledger, run_id
        self.at = at  # the pass's time, as its deletions are said in the ledger (None: when each is noted)
        self.write_budget = write_budget
        self.pinned = pinned  # the pins read again, right before a set's delete
        self.result = Applied()
        self.gone: set[str] = set()  # ids this pass deleted (or found gone), lower case

    # --- the budget: every ARM write takes from it first -----------------------------------------
    def _may_write(self, sub: str) -> bool:
        """A write to ARM's writes bucket: the shared scheduled bucket if one was given (never into its
        debt: promised writes go first), else this budget's own writes bucket."""
        wait = self.write_budget.take(sub) if self.write_budget is not None else self.budget.take(f"writes:{sub}")
        return wait <= 0

    def _may_delete(self, sub: str, n: int) -> bool:
        return self.budget.take(f"deletes:{sub}", n) <= 0

    def _note(self, art: Artifact, d: Decision, **fields: Any) -> None:
        self.ledger.record(self.run_id, art.id, {"action": d.action, "rule": d.rule, "reason": d.reason,
                                                 "dryRun": False, "deleteAfter": _after(d), **fields})

    # --- marks -------------------------------------------------------------------------------------
    def mark(self, art: Artifact, d: Decision) -> None:
        """Mark (d.action == "mark") or unmark (keep/unmark): only vmkeeper's EXPIRING tag is written."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        when = format_instant(d.delete_after) if d.action == "mark" else None
        listed = _tag(art.tags, T.EXPIRING)
        if (listed[1] if listed else None) == when:
            return  # already so: nothing to write
        try:
            if art.kind == RESTORE_POINT:  # the ledger, not ARM
                if when:
                    self.ledger.record(MARKS, art.id, {"expiring": when})
                elif self.ledger.get(MARKS, art.id):
                    self.ledger.delete(MARKS, art.id)
            else:
                sub = _parts(art.id)[0]
                if not self._may_write(sub):
                    self.result.deferred += 1
                    self._note(art, d, outcome="deferred: no budget")
                    return
                self._tags(sub, art.id, "Merge" if when else "Delete", {T.EXPIRING: when} if when else dict([listed]))
        except ResourceNotFoundError:
            return  # gone since the listing: nothing to mark
        except AzureError as exc:
            self._failed(art, d, exc)
            return
        if when:
            self.result.marked += 1
        else:
            self.result.unmarked += 1

    def _tags(self, sub: str, scope: str, operation: str, tags: dict[str, str]) -> None:
        from azure.mgmt.resource.resources.models import Tags, TagsPatchResource

        self.arm.resources(sub).tags.begin_update_at_scope(
            scope, TagsPatchResource(operation=operation, properties=Tags(tags=tags))).result()

    def _failed(self, art: Artifact, d: Decision, exc: Exception) -> None:
        self.result.errors.append(_error_text(art, exc))
        log.warning("retention %s of %s failed: %s", d.action, art.id, exc)

    # --- deletes -----------------------------------------------------------------------------------
    def delete_set(self, members: list[tuple[Artifact, Decision]]) -> None:
        """A fresh look at every member first; any doubt keeps the whole set. Then each member's
        writes (its own expired lock, the delete) take from the budget, and go."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        if self._pinned_now(members):
            return
        looks: list[tuple[Artifact, Decision, tuple[str, str] | None]] = []
        for art, d in members:
            try:
                looks.append((art, d, self._fresh_look(art, d)))
            except ResourceNotFoundError:
                looks.append((art, d, ("gone", "")))
            except AzureError as exc:
                self.result.errors.append(_error_text(art, exc))
                looks.append((art, d, ("fresh_look_failed", f"could not read it again: {exc}")))
        doubt = next(((art, why) for art, _, why in looks if why and why[0] != "gone"), None)
        for art, d, why in looks:
            if why and why[0] == "gone":  # someone else deleted it since the listing: done
                self._gone(art)
                continue
            if doubt:
                rule, reason = why or ("fresh_look_set_member_kept",
                                       f"{resource_ids.last_segment(doubt[0].id)} is kept ({doubt[1][0]})")
                self.ledger.record(self.run_id, art.id, {"action": "keep", "rule": rule, "reason": reason,
                                                         "dryRun": False, "deleteAfter": _after(d)})
                self.result.fresh_kept += 1
                continue
            self._delete(art, d)

    def _pinned_now(self, members: list[tuple[Artifact, Decision]]) -> bool:
        """Whether the set is in use now (a restore or its job since the listing): then it is kept whole;
        so it is if the pins cannot be read (nothing is deleted on doubt)."""
        if self.pinned is None:
            return False
        try:
            pin = self.pinned([art for art, _ in members])
            rule, reason = ("pinned", f"since the listing: {pin.describe()}") if pin else (None, None)
        except Exception as exc:  # noqa: BLE001 (any failure to read what is in use keeps the set)
            self.result.errors.append(f"{members[0][0].id}: could not read its pins: {exc}")
            rule, reason = "fresh_look_failed", f"could not read what is in use: {exc}"
        if rule is None:
            return False
        for art, d in members:
            self.ledger.record(self.run_id, art.id, {"action": "keep", "rule": rule, "reason": reason,
                                                     "dryRun": False, "deleteAfter": _after(d)})
            self.result.fresh_kept += 1
        return True

    def _fresh_look(self, art: Artifact, d: Decision) -> tuple[str, str] | None:
        """(rule, reason) to keep it after all, or None: one GET of the artifact (a restore point: and its
        collection's tags; its mark is a ledger row), and the locks at its scope."""
        sub, rg, name = _parts(art.id)
        compute = self.arm.compute(sub)
        if art.kind == SNAPSHOT:
            snapshot = compute.snapshots.get(rg, name)
            tags = snapshot.tags
            mark = _value(tags, T.EXPIRING)
            policy = snapshot.properties.immutability_policy if snapshot.properties else None
            if immutability_holds(policy, self.at or datetime.now(UTC)):  # set since the listing: the delete must fail
                until = format_instant(policy.policy_expiration_time) if policy.policy_expiration_time else "?"
                return "fresh_look_immutable", f"{policy.type} immutability policy until {until} since the listing"
        elif art.kind == RESTORE_POINT:
            compute.restore_points.get(rg, name, resource_ids.last_segment(art.id))
            tags = compute.restore_point_collections.get(rg, name).tags
            mark = (self.ledger.get(MARKS, art.id) or {}).get("expiring")
        else:
            rpc = compute.restore_point_collections.get(rg, name, expand="restorePoints")
            tags = rpc.tags
            mark = _value(tags, T.EXPIRING)
            left = [p.name for p in rpc.restore_points or [] if p.id.lower() not in self.gone]
            if left:
                return "fresh_look_not_empty", f"restore point(s) {', '.join(sorted(left))} in it since the listing"
        if not T.is_managed({k.lower(): v for k, v in (tags or {}).items()}):
            return "fresh_look_not_owned", f"no {T.MANAGED_BY}: {T.MANAGED_BY_VALUE} tag any more"
        hold = _tag(tags, T.HOLD)
        if hold is not None:
            return "fresh_look_hold", f"{T.HOLD} = {hold[1]!r} since the listing"
        if mark is None or mark != _value(art.tags, T.EXPIRING):
            return "fresh_look_unmarked", f"{T.EXPIRING} is {mark!r} now, was {_value(art.tags, T.EXPIRING)!r}"
        own = art.id.lower()
        for lock in self.arm.locks(sub).management_locks.list_by_scope(art.id):
            if not (d.unlock and lock.name == T.OWN_LOCK and _lock_scope(lock.id) == own):
                return "fresh_look_locked", f"lock {lock.name!r} on {_lock_scope(lock.id)}"
        return None

    def _delete(self, art: Artifact, d: Decision) -> None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        sub, rg, name = _parts(art.id)
        if not self._may_delete(sub, 2 if d.unlock else 1):
            self.result.deferred += 1
            self._note(art, d, outcome="deferred: no budget")
            return
        try:
            if d.unlock:  # our own lock, past its date: only then is it ours to lift
                self.arm.locks(sub).management_locks.delete_by_scope(art.id, T.OWN_LOCK)
            _delete(self.arm.compute(sub), art, rg, name)
        except ResourceNotFoundError:
            pass  # already gone: done
        except AzureError as exc:
            self._failed(art, d, exc)
            return
        self._gone(art)
        self._deleted(art, d)

    def _deleted(self, art: Artifact, d: Decision) -> None:
        """Said in the ledger too (the report reads it when an alert is lost): what, whose, by which rule, when
        (the pass's). The delete is done: a ledger that refuses loses a line, nothing more."""
        try:
            at = self.at or datetime.now(UTC)
            self._note(art, d, outcome="deleted", vmId=str(art.vm_id or _value(art.tags, T.VM) or "").lower(),
                       deletedAt=format_instant(at))
        except Exception:  # noqa: BLE001 (see above)
            log.warning("retention: deleted %s, the ledger did not take its line", art.id, exc_info=True)

    def _gone(self, art: Artifact) -> None:
        self.gone.add(art.id.lower())
        if art.kind == RESTORE_POINT and self.ledger.get(MARKS, art.id):
            self.ledger.delete(MARKS, art.id)
        self.result.deleted += 1


def _job_of(art: Artifact) -> tuple[str, str, datetime, int] | None:
    """The scheduled job that made an artifact: (VM id, job type, slot, disks), from its tags and name."""
    vm = _value(art.tags, T.VM)
    if not vm:
        return None
    if art.kind == SNAPSHOT:
        slot = parse_instant(_value(art.tags, T.SLOT))
        size = str(_value(art.tags, T.SET_SIZE) or "").strip()
        return (vm, P.SNAPSHOT_SET, slot, int(size) if size.isdigit() and size.isascii() else 1) if slot else None
    if art.kind == RESTORE_POINT:
        slot = O.restore_point_slot(resource_ids.last_segment(art.id))
        return (vm, P.RESTORE_POINT, slot, 1) if slot else None
    return None


def _after(d: Decision) -> str:
    return format_instant(d.delete_after) if d.delete_after else ""


def apply(decisions: list[Decision], artifacts: dict[str, Artifact], arm: Any, budget: Any, ledger: Any,
          run_id: str, dry_run: bool, write_budget: Any = None,
          pinned: Callable[[list[Artifact]], P.Pin | None] | None = None, at: datetime | None = None) -> Applied:
    """Record every decision; then (unless a dry run) write marks and unmarks, and delete set by set,
    each set in the order the listing gave (a collection after its restore points), unless ``pinned``
    finds it in use right before."""
    run = _Apply(arm, budget, ledger, run_id, write_budget, pinned, at)
    result = run.result
    deletes: dict[tuple, list[tuple[Artifact, Decision]]] = {}
    # Recorded together before anything is done (batches of 100: one round trip per row made a pass over a
    # large fleet, every foreign snapshot included, a few hundred thousand writes to the table).
    ledger.record_many(run_id, [(d.artifact_id, {"action": d.action, "rule": d.rule, "reason": d.reason,
                                                 "dryRun": dry_run, "deleteAfter": _after(d)}) for d in decisions])
    for d in decisions:
        art = artifacts[d.artifact_id]
        if d.action == "skip":
            result.skipped += 1
        elif d.action == "keep" and d.rule != "unmark":
            result.kept += 1
        elif dry_run:
            continue
        elif d.action == "delete":
            deletes.setdefault(_set_key(art), []).append((art, d))
        else:
            run.mark(art, d)
    for members in deletes.values():
        run.delete_set(members)
    result.gone = sorted(run.gone)
    return result


def _delete(compute: Any, art: Artifact, rg: str, name: str) -> None:
    if art.kind == SNAPSHOT:
        compute.snapshots.begin_delete(rg, name, polling=False)
    elif art.kind == RESTORE_POINT:
        compute.restore_points.begin_delete(rg, name, resource_ids.last_segment(art.id), polling=False)
    else:
        compute.restore_point_collections.begin_delete(rg, name, polling=False)


class Retention:
    """A retention pass on the ports shared/wiring.py gives it."""

    def __init__(self, arm: Arm, ledger: Ledger, budget: Budget, subscriptions: list[str],
                 policy_file: str | None = None, dry_run: bool = False, write_budget: Budget | None = None,
                 alerts: Any = None, restores: Table | None = None, copy_timeout: timedelta = P.COPY_TIMEOUT,
                 lock_group: str | None = None, vms: Callable[[], list[Mapping[str, Any]]] | None = None,
                 copies_elsewhere: Callable[[], list[P.Copy]] | None = None):
        """``budget``: deletes (and, without ``write_budget``, writes, in a bucket of their own);
        ``write_budget``: the scheduled writes' bucket, shared with the workers, for marks and unmarks;
        ``ledger``: the fleet's, the schedule's jobs included; ``restores``: the restores' table (their pins);
        ``copy_timeout``: how long one disk's copy may take (a running job's pin is bounded by it)."""
        self.arm, self.ledger, self.budget, self.write_budget = arm, ledger, budget, write_budget
        self.subscriptions, self.policy_file, self.dry_run = list(subscriptions), policy_file, dry_run
        self.alerts = alerts  # shared/alerts/outbox.py Alerts, or None
        self.restores, self.copy_timeout = restores, copy_timeout
        # Isolated copies (shared/retention/isolated.py): their pass reads locks in its group and the fleet's VMs;
        # the fleet's pass learns of copies in flight from the backup subscription (they pin their sources).
        self.lock_group, self.vms, self.copies_elsewhere = lock_group, vms, copies_elsewhere

    def policies(self) -> dict[str, RetentionPolicy]:
        """Each policy's retention block, as the policy document parsed it."""
        from ..policy.document import load_policy_file

        if self.policy_file is None:
            raise ValueError("retention: no policy document (VMKEEPER_POLICY_FILE)")
        return {name: p.retention for name, p in load_policy_file(self.policy_file).policies.items()}

    def listing(self, now: datetime) -> Listing:
        """What the pass judges, as Resource Graph and the collections' GETs show it now."""
        arm = self.arm
        listing = list_artifacts(arm.resource_graph(), arm.compute, arm.locks, self.ledger, self.subscriptions, now,
                                 self.lock_group, self.vms)
        if self.copies_elsewhere is not None:  # unreadable: the pass fails, nothing is deleted on doubt
            listing.copies.extend(self.copies_elsewhere())
        return listing

    def decide(self, listing: Listing, now: datetime,
               policies: Mapping[str, RetentionPolicy] | None = None) -> list[Decision]:
        """The engine's decisions, pins included: decided once without them; if any set would be marked or
        deleted, the pins on those sets are read and the engine decides again with them."""
        policies = self.policies() if policies is None else policies
        decisions = decide(listing.artifacts, policies, listing.live_vm_ids, now, instances=listing.instances)
        by_id = {a.id: a for a in listing.artifacts}
        doomed = [by_id[d.artifact_id] for d in decisions if d.action in ("mark", "delete")]
        if not doomed:
            return decisions
        pins = self.pins(doomed, now, listing.copies)
        index = P.PinIndex(pins, now)
        if not any(index.find(a.id, _value(a.tags, T.SET)) for a in doomed):
            return decisions  # nothing it would mark or delete is in use: the first decision stands
        return decide(listing.artifacts, policies, listing.live_vm_ids, now, pins=pins, instances=listing.instances)

    def pins(self, artifacts: list[Artifact], now: datetime, copies: list[P.Copy] = ()) -> list[P.Pin]:
        """The pins that may hold ``artifacts``: ``copies`` in flight, the restores pending or running, and
        the scheduled jobs of their slots still running."""
        wanted = [job for job in map(_job_of, artifacts) if job is not None]
        # Read as far back as a job may run: an isolated set copies each disk twice (pins.job_bound), and takes
        # every immutability step.
        longest = P.MARGIN + P.job_lifetime(2 * max((disks for *_, disks in wanted), default=1),
                                            immutable_steps=P.IMMUTABLE_STEPS, copy_timeout=self.copy_timeout)
        jobs = pin_reads.scheduled_jobs(self.ledger, wanted, now - longest) if wanted else []
        return P.pins(now, copies=copies, jobs=jobs, restores=pin_reads.restores_in_use(self.restores),
                      copy_timeout=self.copy_timeout)

    def _pinned(self, now: datetime) -> Callable[[list[Artifact]], P.Pin | None]:
        def pinned(members: list[Artifact]) -> P.Pin | None:
            index = P.PinIndex(self.pins(members, now), now)
            return next((pin for a in members if (pin := index.find(a.id, _value(a.tags, T.SET))) is not None), None)
        return pinned

    def apply(self, decisions: list[Decision], listing: Listing, now: datetime, dry_run: bool | None = None) -> Applied:
        dry_run = self.dry_run if dry_run is None else dry_run
        run_id = "run-" + now.strftime("%Y%m%dT%H%M%S")
        applied = apply(decisions, {a.id: a for a in listing.artifacts}, self.arm, self.budget, self.ledger,
                        run_id, dry_run, self.write_budget, self._pinned(now),
                        at=now.replace(microsecond=0, tzinfo=now.tzinfo or UTC))
        log.info("retention %s: %s", run_id, applied)
        if self.alerts is not None and applied.gone:
            by_id = {d.artifact_id.lower(): d for d in decisions}
            arts = {a.id.lower(): a for a in listing.artifacts}
            for alert in deletion_alerts(run_id, applied.gone, arts, by_id):
                self.alerts.raise_(alert)
        return applied

    def run(self, now: datetime, policies: Mapping[str, RetentionPolicy] | None = None,
            dry_run: bool | None = None) -> tuple[list[Decision], Applied]:
        """A whole pass: list, decide, apply."""
        listing = self.listing(now)
        decisions = self.decide(listing, now, policies)
        return decisions, self.apply(decisions, listing, now, dry_run)


def deletion_alerts(run_id: str, gone: list[str], artifacts: Mapping[str, Artifact],
                    decisions: Mapping[str, Decision]) -> list[Any]:
    """One ``vmkeeper.retention.deleted`` per deleted set (a set goes whole: a snapshot set in one region and
    copy lineage, or a restore point, or a collection), listing its members with rule and reason. Keyed by
    the set, not the pass: two passes at once (one finding gone what the other deleted) raise the same
    event id, which the outbox keeps once."""
    from ..alerts import events as A

    by_set: dict[tuple, tuple[str, list[dict[str, str]]]] = {}
    for art_id in gone:
        art, d = artifacts.get(art_id), decisions.get(art_id)
        vm = str((art.vm_id or _value(art.tags, T.VM) if art else None) or "").lower() or "(no vm)"
        # The subscription too: an isolated copy (createOption Copy, in the backup subscription) has its source
        # set's key, and the outbox would take its alert for the source's, already said.
        key = (*(_set_key(art) if art else ("one", art_id.lower())), _parts(art_id)[0].lower())
        by_set.setdefault(key, (vm, []))[1].append({"id": art.id if art else art_id, "kind": art.kind if art else "",
                                                    "rule": d.rule if d else "", "reason": d.reason if d else ""})
    return [A.Alert(A.RETENTION_DELETED, vm, "deleted|" + "|".join(str(part).lower() for part in key),
                    {"run": run_id, "set": key[1], "deleted": sorted(items, key=lambda item: item["id"].lower())})
            for key, (vm, items) in sorted(by_set.items(), key=lambda kv: tuple(map(str, kv[0])))]
