"""Runs one queue job step and settles its outcome — the part every queue worker shares.

Done → ``on_done``; Retry → the message, updated, goes back on the queue with a visibility delay
(no function sleeps); Failed, a bad message, or an error on the last delivery → the poison queue
with the reason (and ``on_failed``). An error on an earlier delivery is raised, so the Functions
host redelivers the message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from . import jobs

log = logging.getLogger("vmkeeper.jobs")
MAX_DEQUEUE_COUNT = 5  # host.json extensions.queues.maxDequeueCount (a test keeps them equal)


def run_step(
    body: bytes,
    dequeue_count: int,
    *,
    kind: str,
    required: tuple[str, ...],
    step: Callable[[dict[str, Any]], jobs.Outcome],
    queue: Any,
    poison: Any,
    on_done: Callable[[dict[str, Any], jobs.Done], None],
    on_failed: Callable[[dict[str, Any], str], None],
) -> str:
    try:
        message = jobs.decode(body, kind, required)
    except jobs.BadMessage as exc:
        return _poison(poison, body, str(exc))
    try:
        outcome = step(message)
    except jobs.BadMessage as exc:
        return _poison(poison, body, str(exc), message)
    except Exception as exc:
        if dequeue_count < MAX_DEQUEUE_COUNT:
            raise
        reason = f"{type(exc).__name__}: {exc}"
        on_failed(message, reason)
        return _poison(poison, body, reason, message)
    if isinstance(outcome, jobs.Done):
        on_done(message, outcome)
        return outcome.result
    if isinstance(outcome, jobs.Retry):
        queue.send_message(jobs.encode({**message, **outcome.changes}), visibility_timeout=outcome.delay)
        return "retry"
    on_failed(message, outcome.reason)
    return _poison(poison, body, outcome.reason, message)


def _poison(poison: Any, body: bytes, reason: str, message: dict[str, Any] | None = None) -> str:
    log.error("job to the poison queue: %s", reason)
    poison.send_message(jobs.poison_body(body, reason, message))
    return "poisoned"
