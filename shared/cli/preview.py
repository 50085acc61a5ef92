"""``vmkeeper plan``: what the timer's next run would create and what retention would mark or delete, at
an instant, read from Azure and the ledger as they are and written nowhere (a dry run of both).

The schedule side is the timer's own reads (shared/schedule/service.py: the inventory and the snapshot
counts from Resource Graph) and the pure planner; each job is told apart as new, already handed to the
queue, or already done, from the ledger rows the timer and workers keep. The retention side is the pass's
own listing and the pure engine's decisions (shared/retention/), never ``apply``. The ledger is read
through a view that cannot write: a table not there yet reads as empty instead of being created.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from .. import resource_ids
from .. import tags as T
from ..azure.ledger import row_key
from ..instants import format_instant
from ..names import copy_name

NEW, ENQUEUED, DONE = "new", "enqueued", "done"
# What retention would change; "keep" and "skip" are only counted (rule ``unmark`` is a keep that writes).
CHANGES = ("mark", "delete")


class ReadOnlyLedger:
    """The ledger's reads (``get``, ``rows``) without its writes. What a listing would record (a
    collection's first-seen time) is kept in memory for this run only."""

    def __init__(self, table: Any):
        self.table = table
        self._kept: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, partition: str, key: str) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        if (partition, row_key(key)) in self._kept:
            return dict(self._kept[(partition, row_key(key))])
        try:
            return dict(self.table.get_entity(partition, row_key(key)))
        except ResourceNotFoundError:  # no such row, or no such table yet
            return None

    def rows(self, partition: str, where: str = "", select: list[str] | None = None) -> list[dict[str, Any]]:
        from azure.core.exceptions import ResourceNotFoundError

        query = f"PartitionKey eq '{partition}'" + (f" and {where}" if where else "")
        try:
            return [dict(e) for e in self.table.query_entities(query, select=select)]
        except ResourceNotFoundError:
            return []

    def record(self, partition: str, key: str, fields: dict[str, Any]) -> None:
        self._kept[(partition, row_key(key))] = {"item": key, **fields}


def schedule_preview(wiring: Any, at: datetime, progress: Callable[[str], None] = lambda step: None) -> dict[str, Any]:
    from ..azure.graph import query_all
    from ..membership import members, outside_or_none
    from ..policy.document import load_policy_file
    from ..schedule.planner import VmRecord, plan
    from ..schedule.service import VMS_QUERY, enqueued_partition, job_key, jobs_partition, taken_history

    s = wiring.fleet_settings
    policies = load_policy_file(s.policy_file)
    graph, subscriptions = wiring.arm.resource_graph(), list(s.subscriptions)
    progress("inventory")
    with ThreadPoolExecutor(2) as side:  # the Resource Graph queries and Site Recovery's items, as the timer reads them
        history = side.submit(taken_history, graph, subscriptions)
        outside = side.submit(outside_or_none, wiring.arm, s.vaults, "plan")
        inventory = [VmRecord.from_resource_graph(row)
                     for row in members(query_all(graph, subscriptions, VMS_QUERY), outside.result()[0])]
        result = plan(inventory, policies, at, history.result())
    progress("ledger")
    ledger = ReadOnlyLedger(wiring.storage.table(s.ledger_table))
    done: set[str] = set()
    sent: set[str] = set()
    for slot in sorted({job.slot.isoformat() for job in result.jobs}):
        done.update(r["item"] for r in ledger.rows(jobs_partition(slot), "outcome eq 'done'", select=["item"]))
        sent.update(r["item"] for r in ledger.rows(enqueued_partition(slot), select=["item"]))
    names = {vm.key: vm.name for vm in inventory}
    jobs = []
    for job in result.jobs:
        key = job_key({"vm_id": job.vm_id, "type": job.kind, "slot": job.slot.isoformat()})
        jobs.append(_job(job, names.get(job.vm_id, ""), DONE if key in done else ENQUEUED if key in sent else NEW))
    skipped = [{"vm_id": k.vm_id, "vm_name": names.get(k.vm_id, ""), "kind": k.kind, "reason": k.reason,
                "problem": k.problem} for k in result.skipped]
    return {"vms": len({vm.key for vm in inventory}), "jobs": jobs, "skipped": skipped}


def _job(job: Any, vm_name: str, state: str) -> dict[str, Any]:
    region = job.copy_region
    point = None
    if job.kind == "restore_point":
        point = {"collection": job.restore_point_collection_name, "name": job.restore_point_name,
                 "consistency": job.consistency, "excluded_disk_ids": list(job.excluded_disk_ids),
                 "copy_collection": copy_name(job.restore_point_collection_name, region) if region else None}
    return {"vm_id": job.vm_id, "vm_name": vm_name, "kind": job.kind, "policy": job.policy,
            "slot": format_instant(job.slot), "set_id": job.set_id, "state": state,
            "resource_group": job.resource_group, "region": job.location, "copy_region": region,
            "expires": format_instant(job.expires) if job.expires else None, "lock_days": job.lock_days,
            "snapshots": [{"disk_id": t.disk_id, "lun": t.lun, "name": t.snapshot_name,
                           "copy_name": copy_name(t.snapshot_name, region) if region else None} for t in job.snapshots],
            "restore_point": point}


def retention_preview(wiring: Any, at: datetime, progress: Callable[[str], None] = lambda step: None) -> dict[str, Any]:
    from ..retention.engine import plan_summary
    from ..retention.service import list_artifacts

    s, arm = wiring.fleet_settings, wiring.arm
    progress("artifacts")
    listing = list_artifacts(arm.resource_graph(), arm.compute, arm.locks, ReadOnlyLedger(wiring.storage.table(
        s.ledger_table)), list(s.subscriptions), at)
    decisions = wiring.retention.decide(listing, at)
    arts = {a.id: a for a in listing.artifacts}
    changes = []
    for d in decisions:
        if d.action not in CHANGES and d.rule != "unmark":
            continue
        art = arts[d.artifact_id]
        vm = art.vm_id or next((v for k, v in (art.tags or {}).items() if k.lower() == T.VM), None)
        changes.append({"id": d.artifact_id, "name": resource_ids.last_segment(d.artifact_id), "kind": art.kind,
                        "vm_id": str(vm or "").lower() or None, "region": art.region,
                        "action": "unmark" if d.rule == "unmark" else d.action, "rule": d.rule, "reason": d.reason,
                        "delete_after": format_instant(d.delete_after) if d.delete_after else None,
                        "unlock": d.unlock})
    order = {"delete": 0, "mark": 1, "unmark": 2}
    changes.sort(key=lambda c: (order[c["action"]], c["vm_id"] or "", c["id"].lower()))
    return {"artifacts": len(listing.artifacts), "counts": plan_summary(decisions), "changes": changes}


def preview(wiring: Any, at: datetime, progress: Callable[[str], None] = lambda step: None) -> dict[str, Any]:
    return {"at": format_instant(at), "dry_run": True, "schedule": schedule_preview(wiring, at, progress),
            "retention": retention_preview(wiring, at, progress)}
