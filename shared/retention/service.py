"""A retention pass: list what vmkeeper made (Resource Graph, one call per page across every
subscription in scope), decide with the pure engine (shared/retention/engine.py), and apply: mark,
unmark, delete under the per-subscription delete budget — or, in a dry run, only record.

Snapshots carry their expiring mark as a tag (operators see it in the portal; a hold tag stops
it). Restore points can't carry tags in Azure, so their marks live in the ledger table.
Every decision is recorded in the ledger, with its rule and reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import resource_ids
from .. import tags as T
from ..azure.graph import query_all
from ..azure.ledger import Ledger
from ..ports import Arm, Budget
from .engine import (
    COLLECTION,
    RESTORE_POINT,
    SNAPSHOT,
    Artifact,
    Decision,
    RetentionPolicy,
    decide,
    format_instant,
    parse_instant,
)

log = logging.getLogger("vmkeeper.retention")
MARKS = "marks"  # ledger partition holding restore points' expiring marks

SNAPSHOTS_QUERY = (
    "Resources | where type =~ 'microsoft.compute/snapshots' | project id, location, tags, "
    "created = tostring(properties.timeCreated), state = tostring(properties.provisioningState), "
    "completion = properties.completionPercent, copyError = properties.copyCompletionError, "
    "option = tostring(properties.creationData.createOption)"
)
COLLECTIONS_QUERY = ("Resources | where type =~ 'microsoft.compute/restorepointcollections' "
                     "| project id, location, tags, resourceGroup, name, subscriptionId")
VMS_QUERY = "Resources | where type =~ 'microsoft.compute/virtualmachines' | project id"


@dataclass
class Listing:
    artifacts: list[Artifact] = field(default_factory=list)
    live_vm_ids: set[str] = field(default_factory=set)


def _instant(value: Any, fallback: datetime) -> datetime:
    return parse_instant(value) or fallback


def _locks_on(resource_id: str, lock_scopes: list[tuple[str, str]]) -> dict[str, bool]:
    """locked: any lock covers it; ours: every lock covering it is vmkeeper's own, on the artifact itself
    (only then may retention remove it, once LOCK_UNTIL has passed — the engine checks the date)."""
    rid = resource_id.lower()
    covering = [(s, n) for s, n in lock_scopes if rid == s or rid.startswith(s + "/")]
    return {"locked": bool(covering),
            "lock_is_ours_and_expired": bool(covering) and all(s == rid and n == T.OWN_LOCK for s, n in covering)}


def list_artifacts(graph: Any, compute: Any, locks: Any, ledger: Any, subscriptions: list[str], now: datetime) -> Listing:
    """Everything retention judges: snapshots, restore point collections and their restore points."""
    lock_scopes: list[tuple[str, str]] = []  # (scope, lock name)
    for sub in subscriptions:
        for lock in locks(sub).management_locks.list_at_subscription_level():
            lock_scopes.append((lock.id.lower().rsplit("/providers/microsoft.authorization/locks/", 1)[0], lock.name))
    out = Listing(live_vm_ids={row["id"].lower() for row in query_all(graph, subscriptions, VMS_QUERY)})
    for row in query_all(graph, subscriptions, SNAPSHOTS_QUERY):
        tags = row.get("tags") or {}
        copying = row.get("option", "").lower() == "copystart"
        good = row.get("state") == "Succeeded" and (not copying or ((row.get("completion") or 0) >= 100 and not row.get("copyError")))
        out.artifacts.append(Artifact(id=row["id"], kind=SNAPSHOT, tags=tags, created=_instant(row.get("created"), now),
                                      region=row["location"], good=good, is_copy=copying,
                                      **_locks_on(row["id"], lock_scopes)))
    for row in query_all(graph, subscriptions, COLLECTIONS_QUERY):
        tags = dict(row.get("tags") or {})
        rpc = compute(row["subscriptionId"]).restore_point_collections.get(row["resourceGroup"], row["name"],
                                                                             expand="restorePoints")
        created = now
        for rp in rpc.restore_points or []:
            mark = ledger.get(MARKS, rp.id) if T.is_managed(tags) else None
            rp_tags = {k: v for k, v in tags.items() if k.lower() != T.EXPIRING}
            if mark:
                rp_tags[T.EXPIRING] = mark["expiring"]
            rp_created = rp.time_created or now
            created = min(created, rp_created)
            out.artifacts.append(Artifact(id=rp.id, kind=RESTORE_POINT, tags=rp_tags, created=rp_created,
                                          region=row["location"], good=rp.provisioning_state == "Succeeded",
                                          is_copy=rp.source_restore_point is not None, set_id=rp.id,
                                          **_locks_on(rp.id, lock_scopes)))
        out.artifacts.append(Artifact(id=row["id"], kind=COLLECTION, tags=tags, created=created, region=row["location"],
                                      good=True, **_locks_on(row["id"], lock_scopes)))
    return out


@dataclass
class Applied:
    marked: int = 0
    unmarked: int = 0
    deleted: int = 0
    skipped: int = 0
    kept: int = 0
    deferred: int = 0  # deletes left for the next pass: no budget now
    errors: list[str] = field(default_factory=list)


def _parts(resource_id: str) -> tuple[str, str, str]:
    """(subscription, group, name): a restore point's name is its collection's (the engine's set of it)."""
    p = resource_ids.parts(resource_id)
    return p["subscription"], p["resource_group"], p["name"]


def apply(decisions: list[Decision], artifacts: dict[str, Artifact], compute: Any, budget: Any, ledger: Any,
          run_id: str, dry_run: bool, locks: Any = None) -> Applied:
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    result = Applied()
    for d in decisions:
        art = artifacts[d.artifact_id]
        ledger.record(run_id, d.artifact_id, {"action": d.action, "rule": d.rule, "reason": d.reason,
                                              "dryRun": dry_run, "deleteAfter": format_instant(d.delete_after) if d.delete_after else ""})
        if d.action == "skip":
            result.skipped += 1
            continue
        if d.action == "keep" and d.rule != "unmark":
            result.kept += 1
            continue
        if dry_run:
            continue
        sub, rg, name = _parts(art.id)
        try:
            if d.action == "mark":
                _set_mark(compute(sub), ledger, art, rg, name, format_instant(d.delete_after))
                result.marked += 1
            elif d.action == "keep":  # unmark
                _set_mark(compute(sub), ledger, art, rg, name, None)
                result.unmarked += 1
            elif d.action == "delete":
                wait = budget.take(f"deletes:{sub}")
                if wait > 0:
                    result.deferred += 1
                    continue
                if d.unlock:  # our own lock, past its date: only then is it ours to lift
                    locks(sub).management_locks.delete_by_scope(art.id, T.OWN_LOCK)
                _delete(compute(sub), art, rg, name)
                if art.kind == RESTORE_POINT and ledger.get(MARKS, art.id):
                    ledger.delete(MARKS, art.id)
                result.deleted += 1
        except ResourceNotFoundError:
            result.deleted += d.action == "delete"  # already gone: done
        except HttpResponseError as exc:
            result.errors.append(f"{art.id}: {exc.status_code} {exc.message}")
            log.warning("retention %s of %s failed: %s", d.action, art.id, exc.message)
    return result


def _set_mark(compute: Any, ledger: Any, art: Artifact, rg: str, name: str, when: str | None) -> None:
    if art.kind == RESTORE_POINT:
        if when:
            ledger.record(MARKS, art.id, {"expiring": when})
        elif ledger.get(MARKS, art.id):
            ledger.delete(MARKS, art.id)
        return
    tags = {k: v for k, v in art.tags.items() if k.lower() != T.EXPIRING}
    if when:
        tags[T.EXPIRING] = when
    if art.kind == SNAPSHOT:
        from azure.mgmt.compute.models import SnapshotUpdate

        compute.snapshots.begin_update(rg, name, SnapshotUpdate(tags=tags), polling=False)
    else:
        from azure.mgmt.compute.models import RestorePointCollectionUpdate

        compute.restore_point_collections.update(rg, name, RestorePointCollectionUpdate(tags=tags))


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
                 policy_file: str | None = None, dry_run: bool = False):
        self.arm, self.ledger, self.budget = arm, ledger, budget
        self.subscriptions, self.policy_file, self.dry_run = list(subscriptions), policy_file, dry_run

    def policies(self) -> dict[str, RetentionPolicy]:
        """Each policy's retention block, as the policy document parsed it."""
        from ..policy.document import load_policy_file

        if self.policy_file is None:
            raise ValueError("retention: no policy document (VMKEEPER_POLICY_FILE)")
        return {name: p.retention for name, p in load_policy_file(self.policy_file).policies.items()}

    def listing(self, now: datetime) -> Listing:
        """What the pass judges, as Resource Graph and the collections' GETs show it now."""
        arm = self.arm
        return list_artifacts(arm.resource_graph(), arm.compute, arm.locks, self.ledger, self.subscriptions, now)

    def decide(self, listing: Listing, now: datetime,
               policies: Mapping[str, RetentionPolicy] | None = None) -> list[Decision]:
        policies = self.policies() if policies is None else policies
        return decide(listing.artifacts, policies, listing.live_vm_ids, now)

    def apply(self, decisions: list[Decision], listing: Listing, now: datetime, dry_run: bool | None = None) -> Applied:
        dry_run = self.dry_run if dry_run is None else dry_run
        run_id = "run-" + now.strftime("%Y%m%dT%H%M%S")
        applied = apply(decisions, {a.id: a for a in listing.artifacts}, self.arm.compute, self.budget, self.ledger,
                        run_id, dry_run, self.arm.locks)
        log.info("retention %s: %s", run_id, applied)
        return applied

    def run(self, now: datetime, policies: Mapping[str, RetentionPolicy] | None = None,
            dry_run: bool | None = None) -> tuple[list[Decision], Applied]:
        """A whole pass: list, decide, apply."""
        listing = self.listing(now)
        decisions = self.decide(listing, now, policies)
        return decisions, self.apply(decisions, listing, now, dry_run)
