"""Several VMs' scheduled jobs in one queue message: a slot's fan-out as a handful of messages,
not thousands.

Every message costs queue transactions (send, receive, delete) and an invocation, twice per job
(take, then check), whatever the job's size; packed by subscription, a slot of 10,000 VMs is a
few thousand messages instead of 20,000. Each entry keeps its own state (step, attempts, the
budget's promise) and its own outcome, so packing changes nothing about what one VM's job does:

- Done → recorded for that VM; Failed → that VM's entry goes to the poison queue with its reason
  (and the ledger), the others carry on;
- Retry → the entry goes back on the queue with its delay, grouped with the entries that wait as
  long (one message per distinct delay);
- an error (ARM 5xx, a dropped connection) → the entry looks again after 1, 2, 4 … seconds; after
  ``MAX_ERRORS`` such errors it is poisoned with the last one. One VM's trouble never redelivers
  its neighbours.

A batch message: ``{"v": 1, "kind": "scheduled", "batch": [<entry>, ...]}``, where an entry is a
single job message (shared/scheduled.py) without ``v``/``kind``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from . import jobs
from .runner import MAX_DEQUEUE_COUNT

log = logging.getLogger("vmkeeper.batch")
ERROR_DELAY = 1  # seconds before an entry that met an error looks again, doubling each time
MAX_ERRORS = MAX_DEQUEUE_COUNT  # as many tries as the host gives a whole message


def batch_message(kind: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"v": 1, "kind": kind, "batch": [{k: v for k, v in e.items() if k not in ("v", "kind")} for e in entries]}


def run_batch(
    message: dict[str, Any],
    *,
    kind: str,
    step: Callable[[dict[str, Any]], jobs.Outcome],
    queue: Any,
    poison: Any,
    on_done: Callable[[dict[str, Any], jobs.Done], None],
    on_failed: Callable[[dict[str, Any], str], None],
    already_done: Callable[[dict[str, Any]], bool] = lambda entry: False,
) -> str:
    """Run each entry's step and settle its outcome; returns a summary like "done=3 retry=5".
    ``already_done``: asked before poisoning an entry: a duplicate of a job another delivery
    finished is dropped, not poisoned (queues deliver at least once)."""

    def give_up(entry: dict[str, Any], reason: str) -> None:
        if already_done(entry):
            log.info("job %s: duplicate of a finished job, dropped (%s)", entry["job"].get("vm_id"), reason)
            tally["duplicate"] += 1
            return
        on_failed(entry, reason)
        _poison(poison, entry, reason, tally)

    entries = message.get("batch")
    if not isinstance(entries, list) or not entries:
        raise jobs.BadMessage("message.batch: must be a non-empty list of jobs")
    later: dict[int, list[dict[str, Any]]] = defaultdict(list)
    tally: dict[str, int] = defaultdict(int)
    for i, raw in enumerate(entries):
        if not isinstance(raw, dict) or not isinstance(raw.get("job"), dict):
            _poison(poison, raw, f"message.batch[{i}].job: required (an object)", tally)
            continue
        entry = {**raw, "v": 1, "kind": kind}
        try:
            outcome = step(entry)
        except jobs.BadMessage as exc:
            _poison(poison, entry, str(exc).replace("message.", f"message.batch[{i}].", 1), tally)
            continue
        except Exception as exc:  # noqa: BLE001 (transient for this entry alone: look again later)
            reason = f"{type(exc).__name__}: {exc}"
            errors = entry.get("errors", 0) + 1
            if errors >= MAX_ERRORS:
                give_up(entry, reason)
            else:
                log.warning("job %s: %s (try %d of %d)", entry["job"].get("vm_id"), reason, errors, MAX_ERRORS)
                later[jobs.backoff(errors - 1, ERROR_DELAY, 60)].append({**entry, "errors": errors, "last_error": reason[:500]})
                tally["error"] += 1
            continue
        if isinstance(outcome, jobs.Done):
            on_done(entry, outcome)
            tally["done"] += 1
        elif isinstance(outcome, jobs.Retry):
            later[outcome.delay].append({**entry, **outcome.changes})
            tally["retry"] += 1
        else:
            give_up(entry, outcome.reason)
    for delay, group in sorted(later.items()):
        queue.send_message(jobs.encode(batch_message(kind, group)), visibility_timeout=delay)
    return " ".join(f"{k}={v}" for k, v in sorted(tally.items()))


def _poison(poison: Any, entry: Any, reason: str, tally: dict[str, int]) -> None:
    log.error("job to the poison queue: %s", reason)
    poison.send_message(jobs.poison_body(b"", reason, entry if isinstance(entry, dict) else {"entry": entry}))
    tally["poisoned"] += 1
