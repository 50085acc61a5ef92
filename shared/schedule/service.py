"""Scheduled protection as a service: the timer plans and fans jobs out over the queue; the queue
worker runs each job step (shared/schedule/steps.py) under the shared write budget.

- ``plan_and_enqueue``: inventory through Resource Graph (every subscription in scope, paged),
  the pure planner, then the fan-out. A job the ledger already records as done for its slot is
  not enqueued again, and every name is deterministic: re-running a slot creates nothing new.
  Each job's first writes are promised by its subscription's budget (one round trip per
  subscription, spread evenly over the time the budget needs); jobs are packed a few VMs to a
  message (shared/queue/messages.py), each message visible when its jobs' promises fall due.
- ``handle_message``: per job (shared/queue/runner.py), Done → ledger; Retry → re-enqueued with a
  visibility delay; Failed, a bad message, or too many errors → the poison queue with the reason
  (and the ledger). A single-job message (the format before batches) is still understood."""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from typing import Any

from ..alerts.events import for_poisoning
from ..azure.graph import query_all
from ..azure.ledger import Ledger
from ..membership import members, outside_or_none
from ..ports import Arm, Budget, Queue
from ..queue import messages as jobs
from ..queue import runner
from ..settings import FleetSettings
from .steps import KIND, LOOK_CEILING, ScheduledWorker, create_writes, new_message

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
        if job.immutability is not None:  # its horizon: the set's expiry (shared/schedule/steps.py immutability_days)
            spec = job.immutability
            body["immutability"] = {"days": spec.days, "locked": spec.locked, "kinds": list(spec.kinds)}
            body["expires"] = job.expires.isoformat() if job.expires else None
        if job.isolated:  # copied into the backup subscription once complete (shared/schedule/isolated.py)
            body["isolated"] = True
    else:
        body.update(rpc_name=job.restore_point_collection_name, rp_name=job.restore_point_name,
                    consistency=job.consistency, exclude_disk_ids=list(job.excluded_disk_ids))
    return new_message(body)


ALREADY_DONE = "already_done"
RUNS = "runs"  # the ledger's partition of planning runs: one row per timer firing, with its counts


def enqueued_partition(slot: str) -> str:
    """When each job of a slot was handed to the queue (a partition of its own: a worker's "done"
    is never overwritten by the planner)."""
    return f"enqueued@{slot}"


def jobs_partition(slot: str) -> str:
    """Job outcomes are kept per slot: "already done?" for a whole slot is one partition query."""
    return f"jobs@{slot}"


ENQUEUE_THREADS = 8  # a slot's messages go out in parallel: one Storage round trip each
BATCH_VMS = 8  # VMs' jobs per queue message


class Schedule:
    """The planner's timer and the job queue's worker, on the ports shared/wiring.py gives them."""

    def __init__(self, settings: FleetSettings, arm: Arm, queue: Queue, poison: Queue, ledger: Ledger, budget: Budget,
                 alerts: Any = None, isolated: Any = None):
        self.settings, self.arm, self.queue, self.poison = settings, arm, queue, poison
        self.alerts = alerts  # shared/alerts/outbox.py Alerts, or None
        self.ledger, self.budget = ledger, budget
        # isolated: shared/schedule/isolated.py IsolatedTarget (the backup subscription, the second identity's clients)
        self.worker = ScheduledWorker(arm, budget, copy_timeout=settings.copy_timeout_hours * 3600.0, isolated=isolated)

    def plan_and_enqueue(self, now: datetime) -> dict[str, int]:
        from concurrent.futures import ThreadPoolExecutor

        from ..policy.document import load_policy_file
        from .planner import VmRecord, overdue_after, plan

        s, ledger, queue, budget = self.settings, self.ledger, self.queue, self.budget
        policies = load_policy_file(s.policy_file)
        graph, subscriptions = self.arm.resource_graph(), list(s.subscriptions)
        with ThreadPoolExecutor(2) as side:  # the two Resource Graph queries and Site Recovery's items side by side
            history = side.submit(taken_history, graph, subscriptions)
            outside = side.submit(outside_or_none, self.arm, s.vaults, "scheduled slot")
            inventory = [VmRecord.from_resource_graph(row)  # a test failover's VM is no fleet member (shared/membership.py)
                         for row in members(query_all(graph, subscriptions, VMS_QUERY), outside.result()[0])]
            result = plan(inventory, policies, now, history.result())
        counts = {"vms": len(inventory), "jobs": len(result.jobs), "enqueued": 0, "already_done": 0,
                  "already_enqueued": 0, "resent": 0, "skipped": len(result.skipped)}
        for skip in result.skipped:
            (log.warning if skip.problem else log.info)("VM %s skipped: %s", skip.vm_id, skip.reason)
        messages = [job_message(job) for job in result.jobs]
        done: set[str] = set()
        sent: dict[str, float] = {}
        slots = sorted({m["job"]["slot"] for m in messages})
        for slot in slots:
            done.update(row["item"] for row in ledger.rows(jobs_partition(slot), "outcome eq 'done'", select=["item"]))
            sent.update((row["item"], float(row["at"])) for row in ledger.rows(enqueued_partition(slot), select=["item", "at"]))
        # A job already out is sent again only once overdue: past the longest it may take (a set's
        # copies, one disk after another), its message must have been lost. Every firing re-sending
        # unfinished jobs (with new write promises) snowballed slots longer than the planning interval.
        bounds = {"step_timeout": timedelta(seconds=self.worker.check_timeout),
                  "copy_timeout": timedelta(seconds=self.worker.copy_timeout), "look": timedelta(seconds=LOOK_CEILING)}
        todo = []
        for job, m in zip(result.jobs, messages, strict=True):
            key = job_key(m["job"])
            if key in done:
                counts["already_done"] += 1
            elif key in sent and now.timestamp() - sent[key] < overdue_after(job, **bounds).total_seconds():
                counts["already_enqueued"] += 1
            else:
                if key in sent:
                    m["resent"] = True  # the worker drops it if the first one finished after all
                    counts["resent"] += 1
                todo.append(m)
        _promise(budget, todo)
        batches, too_big = _pack(todo)
        for m in too_big:  # one VM's job can't fail the run, nor go out: poisoned with the reason
            reason = f"job message is {jobs.size(m)} bytes: over the queue's message limit ({jobs.MAX_MESSAGE_BYTES})"
            ledger.record(jobs_partition(m["job"]["slot"]), job_key(m["job"]), {"outcome": "failed", "reason": reason})
            runner.poison(self.poison, reason, m)
            self._alert(runner.POISONED, m, reason)

        def send(batch: list[dict[str, Any]]) -> int:
            # Visible in the second its last job's promise falls due (counted from when it is sent):
            # the worker waits out the fraction (steps.INLINE_WAIT).
            delay = max(0, math.floor(max(_due(m) for m in batch) - budget.clock()))
            queue.send_message(jobs.encode(jobs.batch_message(KIND, batch)), visibility_timeout=delay)
            return delay

        with ThreadPoolExecutor(ENQUEUE_THREADS) as pool:
            delays = list(pool.map(send, batches))
        for slot in slots:  # recorded once handed on: a run that died before this sends them again
            ledger.record_many(enqueued_partition(slot), [(job_key(m["job"]), {"at": now.timestamp(), **_copies(m["job"])})
                                                          for b in batches for m in b if m["job"]["slot"] == slot])
        counts["enqueued"], counts["messages"] = len(todo) - len(too_big), len(batches)
        counts["poisoned"] = len(too_big)
        counts["last_due_seconds"] = max(delays, default=0)
        # Recorded after the fan-out: the budget's promises start counting when they are made.
        ledger.record_many("skips", [(f"{skip.vm_id}|{now.date()}", {"reason": skip.reason}) for skip in result.skipped])
        ledger.record(RUNS, f"schedule@{now.isoformat()}", counts)
        log.info("planned %s", counts)
        return counts

    def handle_message(self, body: bytes) -> str:
        ledger = self.ledger

        def done(message: dict[str, Any], outcome: jobs.Done) -> None:
            done_many([(message, outcome)])

        def done_many(finished: list[tuple[dict[str, Any], jobs.Done]]) -> None:
            """A message's done jobs: one table batch per slot (bookkeeping kept off the jobs' way)."""
            by_slot: dict[str, list[tuple[str, dict[str, Any]]]] = {}
            for message, outcome in finished:
                if outcome.result == ALREADY_DONE:
                    continue
                job = message["job"]
                by_slot.setdefault(job["slot"], []).append((job_key(job), {
                    "outcome": "done", "result": outcome.result, **{k: str(v) for k, v in outcome.detail.items()}}))
            for slot, rows in by_slot.items():
                ledger.record_many(jobs_partition(slot), rows)

        def failed(message: dict[str, Any], reason: str) -> None:
            job = message["job"]
            ledger.record(jobs_partition(str(job.get("slot", "?"))), job_key(job), {"outcome": "failed", "reason": reason})

        def finished(message: dict[str, Any]) -> bool:
            job = message["job"]
            row = ledger.get(jobs_partition(str(job.get("slot", "?"))), job_key(job))
            return bool(row) and row.get("outcome") == "done"

        def step(message: dict[str, Any]) -> jobs.Outcome:
            if message.get("resent") and message.get("step", "create") == "create" and finished(message):
                return jobs.Done(ALREADY_DONE)  # a re-sent job whose first message finished after all
            return self.worker.handle(message)

        return runner.run(body, kind=KIND, required=("job",), step=step, queue=self.queue,
                          poison=self.poison, on_done=done, on_failed=failed, already_done=finished,
                          on_done_many=done_many,
                          alert=self._alert)

    def _alert(self, cause: str, job: Any, reason: str) -> None:
        if self.alerts is not None:
            self.alerts.raise_(for_poisoning(cause, job, reason, self.settings.jobs_queue))


def _copies(job: dict[str, Any]) -> dict[str, int]:
    """An isolated set's enqueue says how many copies it makes (its pin's bound: shared/points/pins.py job_bound)."""
    if not job.get("isolated"):
        return {}
    disks = len(job.get("snapshots") or [])
    return {"copies": disks * (2 if job.get("copy_region") else 1)}


def _due(message: dict[str, Any]) -> float:
    return (message.get("grant") or {}).get("at") or message.get("ask_at", 0.0)


def _pack(messages: list[dict[str, Any]]) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Jobs of one subscription, in the order they fall due, BATCH_VMS to a message and never over
    the queue's message size; messages ordered by when they fall due. (Jobs too far out for a
    promise come back together when they may ask, and each asks for its own.) Also the jobs too
    big for a message on their own."""
    from collections import defaultdict

    by_sub: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in sorted(messages, key=_due):
        by_sub[m["job"]["subscription_id"].lower()].append(m)
    batches: list[list[dict[str, Any]]] = []
    too_big: list[dict[str, Any]] = []
    for group in by_sub.values():
        fitted, oversized = jobs.chunk(group, BATCH_VMS)
        batches += fitted
        too_big += oversized
    return sorted(batches, key=lambda b: max(_due(m) for m in b)), too_big


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
