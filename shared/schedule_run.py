"""Scheduled protection as a service: the timer plans and fans jobs out over the queue; the queue
worker runs each job step (shared/scheduled.py) under the shared write budget.

- ``plan_and_enqueue``: inventory through Resource Graph (every subscription in scope, paged),
  the pure planner, then the fan-out. A job the ledger already records as done for its slot is
  not enqueued again, and every name is deterministic: re-running a slot creates nothing new.
  Each job's first writes are promised by its subscription's budget (one round trip per
  subscription, spread evenly over the time the budget needs); jobs are packed a few VMs to a
  message (shared/batch.py), each message visible when its jobs' promises fall due.
- ``handle_message``: per job, Done → ledger; Retry → re-enqueued with a visibility delay;
  Failed, a bad message, or too many errors → the poison queue with the reason (and the ledger).
  A single-job message (the format before batches) is still understood."""

from __future__ import annotations

import logging
import math
from datetime import datetime
from functools import lru_cache
from typing import Any

from . import azure_clients, jobs
from .batch import batch_message, run_batch
from .runner import run_step
from .scheduled import KIND, ScheduledWorker, create_writes, new_message

log = logging.getLogger("vmkeeper.schedule")
VMS_QUERY = ("Resources | where type =~ 'microsoft.compute/virtualmachines' "
             "| project id, name, subscriptionId, resourceGroup, location, tags, properties")


# Every incremental snapshot counts toward Azure's 500 per disk, whoever made it: one row per disk.
SNAPSHOT_COUNTS_QUERY = (
    "Resources | where type =~ 'microsoft.compute/snapshots' and properties.incremental == true "
    "| extend disk = tolower(tostring(properties.creationData.sourceResourceId)) | where isnotempty(disk) "
    "| summarize snapshots = count() by disk"
)


def taken_history(graph: Any, subscriptions: list[str]) -> Any:
    """What the planner must know of earlier runs, from Resource Graph in one paged query: each
    disk's count of incremental snapshots (the 500 limit). Not listed, by design: the snapshots
    of the last five minutes (Azure's 7 per 5 minutes is met within a plan by the planner, and
    against anyone else by the worker, which re-queues a job Azure refuses for it), and restore
    points, which Resource Graph doesn't index (policies can't ask for them more often than the
    minimum intervals, and Azure's one-at-a-time rule is met by the worker the same way)."""
    from .planner import History
    from .retention_run import query_all

    counts = {row["disk"]: int(row["snapshots"]) for row in query_all(graph, subscriptions, SNAPSHOT_COUNTS_QUERY)}
    return History(snapshot_counts_by_disk=counts)


def job_key(job: dict[str, Any]) -> str:
    """A job's identity: its VM, kind and slot (what makes a re-run of the slot a no-op)."""
    return f"{str(job.get('vm_id', '?')).lower()}|{job.get('type', '?')}|{job.get('slot', '?')}"


def job_message(job: Any) -> dict[str, Any]:
    """The planner's Job as the worker's message body (fields read directly: a deep ``asdict``
    of every job costs a slot of thousands of VMs a noticeable part of a second)."""
    body: dict[str, Any] = {
        "type": job.kind, "vm_id": job.vm_id.lower(), "subscription_id": job.subscription_id,
        "resource_group": job.resource_group, "location": job.location, "policy": job.policy,
        "slot": job.slot.isoformat(), "set_id": job.set_id, "tags": dict(job.tags), "copy_region": job.copy_region,
        "lock_days": job.lock_days,
    }
    if job.kind == "snapshot_set":
        body["snapshots"] = [{"disk_id": t.disk_id, "name": t.snapshot_name, "lun": t.lun} for t in job.snapshots]
    else:
        body.update(rpc_name=job.restore_point_collection_name, rp_name=job.restore_point_name,
                    consistency=job.consistency, exclude_disk_ids=list(job.excluded_disk_ids))
    return new_message(body)


RUNS = "runs"  # the ledger's partition of planning runs: one row per timer firing, with its counts


def jobs_partition(slot: str) -> str:
    """Job outcomes are kept per slot: "already done?" for a whole slot is one partition query."""
    return f"jobs@{slot}"


def _ledger(s: Any) -> Any:
    from .ledger import Ledger

    return Ledger(azure_clients.table(s.ledger_table))


ENQUEUE_THREADS = 8  # a slot's messages go out in parallel: one Storage round trip each
BATCH_VMS = 8  # VMs' jobs per queue message (shared/batch.py)


def plan_and_enqueue(now: datetime) -> dict[str, int]:
    from concurrent.futures import ThreadPoolExecutor

    from .planner import VmRecord, plan
    from .policy import load_policy_file
    from .retention_run import query_all
    from .settings import FleetSettings

    s = FleetSettings.from_env()
    policies = load_policy_file(s.policy_file)
    graph, subscriptions = azure_clients.resource_graph(), list(s.subscriptions)
    with ThreadPoolExecutor(1) as side:  # the two Resource Graph queries side by side
        history = side.submit(taken_history, graph, subscriptions)
        inventory = [VmRecord.from_resource_graph(row) for row in query_all(graph, subscriptions, VMS_QUERY)]
        result = plan(inventory, policies, now, history.result())
    ledger, queue = _ledger(s), azure_clients.queue(s.jobs_queue)
    counts = {"vms": len(inventory), "jobs": len(result.jobs), "enqueued": 0, "already_done": 0, "skipped": len(result.skipped)}
    for skip in result.skipped:
        (log.warning if skip.problem else log.info)("VM %s skipped: %s", skip.vm_id, skip.reason)
    messages = [job_message(job) for job in result.jobs]
    done: set[str] = set()
    for slot in sorted({m["job"]["slot"] for m in messages}):
        done.update(row["item"] for row in ledger.rows(jobs_partition(slot), "outcome eq 'done'", select=["item"]))
    todo = [m for m in messages if job_key(m["job"]) not in done]
    counts["already_done"] = len(messages) - len(todo)
    budget = _budget(s)
    _promise(budget, todo)
    batches = _pack(todo)

    def send(batch: list[dict[str, Any]]) -> int:
        # Visible in the second its last job's promise falls due (counted from when it is sent):
        # the worker waits out the fraction (scheduled.INLINE_WAIT).
        delay = max(0, math.floor(max(_due(m) for m in batch) - budget.clock()))
        queue.send_message(jobs.encode(batch_message(KIND, batch)), visibility_timeout=delay)
        return delay

    with ThreadPoolExecutor(ENQUEUE_THREADS) as pool:
        delays = list(pool.map(send, batches))
    counts["enqueued"], counts["messages"] = len(todo), len(batches)
    counts["last_due_seconds"] = max(delays, default=0)
    # Recorded after the fan-out: the budget's promises start counting when they are made.
    ledger.record_many("skips", [(f"{skip.vm_id}|{now.date()}", {"reason": skip.reason}) for skip in result.skipped])
    ledger.record(RUNS, f"schedule@{now.isoformat()}", counts)
    log.info("planned %s", counts)
    return counts


def _due(message: dict[str, Any]) -> float:
    return (message.get("grant") or {}).get("at") or message.get("ask_at", 0.0)


def _pack(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Jobs of one subscription, in the order they fall due, BATCH_VMS to a message; messages
    ordered by when they fall due. (Jobs too far out for a promise come back together when they
    may ask, and each asks for its own.)"""
    from collections import defaultdict

    by_sub: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in sorted(messages, key=_due):
        by_sub[m["job"]["subscription_id"].lower()].append(m)
    batches = [group[i:i + BATCH_VMS] for group in by_sub.values() for i in range(0, len(group), BATCH_VMS)]
    return sorted(batches, key=lambda b: max(_due(m) for m in b))


def _promise(budget: Any, messages: list[dict[str, Any]]) -> None:
    """Each job's first writes are promised by its subscription's budget (one round trip per
    subscription); the job will be enqueued to become visible at that moment, holding the promise:
    workers neither poll the budget nor wait. A job too far out is told when to ask again."""
    from collections import defaultdict

    by_sub: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in messages:
        by_sub[m["job"]["subscription_id"].lower()].append(m)
    for sub, group in by_sub.items():
        promises = budget.reserve_many(sub, [create_writes(m["job"]) for m in group])
        for m, (at, promised) in zip(group, promises, strict=True):
            if promised:
                m["grant"] = {"step": "create", "index": 0, "at": at}
            else:
                m["ask_at"] = at


@lru_cache(maxsize=8)
def _budget(s: Any) -> Any:
    """One budget (its lock and ETag) per settings, shared by the planner and every message."""
    from .pacing import WriteBudget

    return WriteBudget(azure_clients.table(s.budget_table), rate=s.write_rate, burst=s.write_burst)


@lru_cache(maxsize=8)
def _worker(s: Any) -> tuple[Any, Any]:
    """One ledger and one worker per settings, for every message."""
    from types import SimpleNamespace

    clients = SimpleNamespace(compute=azure_clients.paced_compute, locks=azure_clients.locks)
    return _ledger(s), ScheduledWorker(clients, _budget(s))


def handle_message(body: bytes, dequeue_count: int) -> str:
    from .settings import FleetSettings

    s = FleetSettings.from_env()
    ledger, worker = _worker(s)

    def done(message: dict[str, Any], outcome: jobs.Done) -> None:
        job = message["job"]
        ledger.record(jobs_partition(job["slot"]), job_key(job), {"outcome": "done", "result": outcome.result,
                                                                   **{k: str(v) for k, v in outcome.detail.items()}})

    def failed(message: dict[str, Any], reason: str) -> None:
        job = message["job"]
        ledger.record(jobs_partition(str(job.get("slot", "?"))), job_key(job), {"outcome": "failed", "reason": reason})

    def finished(message: dict[str, Any]) -> bool:
        job = message["job"]
        row = ledger.get(jobs_partition(str(job.get("slot", "?"))), job_key(job))
        return bool(row) and row.get("outcome") == "done"

    queue, poison = azure_clients.queue(s.jobs_queue), azure_clients.queue(f"{s.jobs_queue}-poison")
    try:
        message = jobs.decode(body, KIND, ())
    except jobs.BadMessage:
        message = None  # run_step poisons it with the reason
    if message is not None and "batch" in message:
        try:
            return run_batch(message, kind=KIND, step=worker.handle, queue=queue, poison=poison, on_done=done,
                             on_failed=failed, already_done=finished)
        except jobs.BadMessage as exc:
            poison.send_message(jobs.poison_body(body, str(exc), message))
            return "poisoned"
    return run_step(body, dequeue_count, kind=KIND, required=("job",), step=worker.handle, queue=queue, poison=poison,
                    on_done=done, on_failed=failed)
