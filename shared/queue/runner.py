"""Runs the jobs of one queue message and settles each one's outcome: the part every queue worker
shares, and the one place anything goes to the poison queue.

A message holds one job or a batch of jobs (shared/queue/messages.py); a single job is a batch of
one. Each job keeps its own state and its own fate, so one VM's trouble never disturbs another's:

- Done → ``on_done`` (or, given ``on_done_many``, the message's done jobs at once, after every job ran and
  before any goes back on the queue: one round trip of bookkeeping per message, not per job);
- Retry → the job, updated, goes back on the queue with its delay (no function sleeps); a batch's
  jobs that wait as long travel together, one message per distinct delay;
- an error (ARM 5xx, a dropped connection) → the job looks again after 1, 2, 4 … seconds; after
  ``MAX_ERRORS`` such errors in a row it is given up with the last one. The count is of consecutive
  errors: any outcome from the step (progress) clears it, so a long job (a copy, a drill, a restore)
  is not poisoned by isolated errors over its life; how long it may take is each step's own bound,
  in elapsed time;
- Failed, a malformed job, or given up → ``<queue>-poison`` with the reason (and ``on_failed``),
  unless ``already_done`` says another delivery finished it (queues deliver at least once: a
  duplicate is dropped, not poisoned).

Each poisoning is told to ``alert`` once, with its cause: ``failed`` (the job's own outcome: Azure
refused or failed the work) or ``poisoned`` (the message could not be processed: malformed, too
many errors, too big).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from ..ports import Queue
from . import messages
from .messages import BadMessage, Done, Outcome, Retry

log = logging.getLogger("vmkeeper.queue")
MAX_DEQUEUE_COUNT = 5  # host.json extensions.queues.maxDequeueCount (a test keeps them equal)
MAX_ERRORS = MAX_DEQUEUE_COUNT  # as many tries as the host gives a whole message
ERROR_DELAY = 1  # seconds before a job that met an error looks again, doubling each time
FAILED, POISONED = "failed", "poisoned"  # why a job went to the poison queue (``alert``'s cause)


def run(
    body: bytes | str,
    *,
    kind: str,
    step: Callable[[dict[str, Any]], Outcome],
    queue: Queue,
    poison: Queue,
    on_done: Callable[[dict[str, Any], Done], None],
    on_failed: Callable[[dict[str, Any], str], None],
    required: tuple[str, ...] = (),
    already_done: Callable[[dict[str, Any]], bool] = lambda job: False,
    alert: Callable[[str, Any, str], None] = lambda cause, job, reason: None,
    on_done_many: Callable[[list[tuple[dict[str, Any], Done]]], None] | None = None,
) -> str:
    """Run every job of the message; returns a summary such as "done=3 retry=5"."""
    tally: dict[str, int] = defaultdict(int)
    try:
        message = messages.decode(body, kind, ())
    except BadMessage as exc:
        _poison(poison, str(exc), body, tally, alert)
        return _summary(tally)
    batched = "batch" in message
    entries = message["batch"] if batched else [{k: v for k, v in message.items() if k not in ("v", "kind")}]
    if not isinstance(entries, list) or not entries:
        _poison(poison, "message.batch: must be a non-empty list of jobs", message, tally, alert)
        return _summary(tally)

    def give_up(job: dict[str, Any], reason: str, cause: str = POISONED) -> None:
        if already_done(job):
            log.info("job %s: duplicate of a finished job, dropped (%s)", _label(job), reason)
            tally["duplicate"] += 1
            return
        on_failed(job, reason)
        _poison(poison, reason, job, tally, alert, cause)

    later: dict[int, list[dict[str, Any]]] = defaultdict(list)
    finished: list[tuple[dict[str, Any], Done]] = []
    for i, raw in enumerate(entries):
        where = f"message.batch[{i}]" if batched else "message"
        missing = [name for name in required if not isinstance(raw, dict) or name not in raw]
        if not isinstance(raw, dict) or missing:
            _poison(poison, f"{where}.{missing[0] if missing else 'job'}: required", raw, tally, alert)
            continue
        job = {**raw, "v": 1, "kind": kind}
        try:
            outcome = step(job)
        except BadMessage as exc:
            _poison(poison, str(exc).replace("message", where, 1), job, tally, alert)
            continue
        except Exception as exc:  # noqa: BLE001 (transient for this job alone: look again later)
            reason = f"{type(exc).__name__}: {exc}"
            errors = job.get("errors", 0) + 1  # in a row: progress clears it (below)
            if errors >= MAX_ERRORS:
                give_up(job, reason)
            else:
                log.warning("job %s: %s (try %d of %d)", _label(job), reason, errors, MAX_ERRORS)
                later[messages.backoff(errors - 1, ERROR_DELAY, 60)].append({**job, "errors": errors,
                                                                               "last_error": reason[:500]})
                tally["error"] += 1
            continue
        if isinstance(outcome, Done):
            if on_done_many is None:
                on_done(job, outcome)
            else:
                finished.append((job, outcome))
            tally["done"] += 1
        elif isinstance(outcome, Retry):
            moved = {k: v for k, v in job.items() if k not in ("errors", "last_error")}  # progress: errors start again
            later[outcome.delay].append({**moved, **outcome.changes})
            tally["retry"] += 1
        else:
            give_up(job, outcome.reason, FAILED)
    if finished and on_done_many is not None:  # an error here redelivers the message: nothing was sent on yet
        on_done_many(finished)
    for delay, group in sorted(later.items()):
        # A job's state grows as it goes (grants, errors): re-packed by size, never over a message.
        fitted, too_big = messages.chunk(group, max_count=len(group) if batched else 1)
        for job in too_big:
            give_up(job, f"job message is {messages.size(job)} bytes: over the queue's message limit")
        for out in fitted:
            body = messages.batch_message(kind, out) if batched else {**out[0], "v": 1, "kind": kind}
            queue.send_message(messages.encode(body), visibility_timeout=delay)
    return _summary(tally)


def _label(job: dict[str, Any]) -> str:
    inner = job.get("job")
    return str((inner if isinstance(inner, dict) else job).get("vm_id", "?"))


def _summary(tally: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(tally.items()))


def poison(queue: Queue, reason: str, original: Any) -> None:
    """The one way to the poison queue: the original job or message, with the reason."""
    log.error("job to the poison queue: %s", reason)
    queue.send_message(messages.poison_body(original, reason))


def _poison(queue: Queue, reason: str, original: Any, tally: dict[str, int],
            alert: Callable[[str, Any, str], None], cause: str = POISONED) -> None:
    poison(queue, reason, original)
    tally["poisoned"] += 1
    try:
        alert(cause, original, reason)
    except Exception:  # noqa: BLE001 (the message is safely in the poison queue; an alert never undoes that)
        log.exception("alert for a poisoned job failed")
