"""Queue messages: their format (single jobs and batches of jobs), the outcomes a job step
returns, backoff, and what a poisoned message carries.

Pure: no queue client here (shared/queue/runner.py settles outcomes). A step never waits on Azure:
it returns ``Retry(delay)`` and the runner re-enqueues the job with a visibility delay.

A message is ``{"v": 1, "kind": <kind>, ...job fields}`` (one job) or
``{"v": 1, "kind": <kind>, "batch": [<job fields>, ...]}`` (several jobs, each with its own state).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAX_MESSAGE_BYTES = 48 * 1024  # Storage queues take 64 KiB; base64 costs a third


class BadMessage(ValueError):
    """The message can't be processed (not JSON, wrong version, missing field): poison it at once."""


@dataclass(frozen=True)
class Done:
    result: str  # e.g. "protected", "already_protected", "opted_out"
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Retry:
    """Look again after ``delay`` seconds with the message updated by ``changes``."""

    delay: int
    reason: str
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    """Give up: the message goes to the poison queue with this reason."""

    reason: str


Outcome = Done | Retry | Failed


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":"), sort_keys=True).encode()
    if len(body) > MAX_MESSAGE_BYTES:
        raise ValueError(f"job message is {len(body)} bytes, over the queue's limit")
    return body


def decode(body: bytes | str, kind: str, required: tuple[str, ...]) -> dict[str, Any]:
    """Parse and check a job message; BadMessage names what is wrong."""
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadMessage(f"message: not JSON ({exc})") from None
    if not isinstance(message, dict):
        raise BadMessage("message: must be a JSON object")
    if message.get("kind") != kind:
        raise BadMessage(f"message.kind: expected {kind!r} (got {message.get('kind')!r})")
    if message.get("v") != 1:
        raise BadMessage(f"message.v: unsupported version {message.get('v')!r} (expected 1)")
    for name in required:
        if name not in message:
            raise BadMessage(f"message.{name}: required")
    attempt = message.get("attempt", 0)
    if not isinstance(attempt, int) or attempt < 0:
        raise BadMessage("message.attempt: must be a non-negative integer")
    return message


def backoff(attempt: int, first: int, ceiling: int) -> int:
    """Exponential: first, 2×first, 4×first … capped."""
    return max(1, min(ceiling, first * 2 ** min(attempt, 20)))


def poison_body(original: Any, reason: str) -> bytes:
    """What lands in the poison queue: the reason, and the original job or message (as text if it
    could not be parsed)."""
    if isinstance(original, bytes):
        original = original.decode("utf-8", "replace")
    return json.dumps({"reason": reason, "message": original}, sort_keys=True, default=str).encode()

def batch_message(kind: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Several jobs of one kind in one message (each entry a job message without ``v``/``kind``)."""
    return {"v": 1, "kind": kind, "batch": [{k: v for k, v in e.items() if k not in ("v", "kind")} for e in entries]}


_ENVELOPE = len(encode(batch_message("x" * 32, [])))  # {"batch":[],"kind":…,"v":1}, a kind name to spare


def size(entry: dict[str, Any]) -> int:
    """An entry's bytes inside a batch message (its comma included)."""
    return len(json.dumps(entry, separators=(",", ":"), sort_keys=True).encode()) + 1


def chunk(entries: list[dict[str, Any]], max_count: int,
          max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Entries in order, packed into batches of at most ``max_count`` entries and ``max_bytes``
    encoded; and the entries too big for any message on their own (to be poisoned with a reason)."""
    batches: list[list[dict[str, Any]]] = []
    too_big: list[dict[str, Any]] = []
    current: list[dict[str, Any]] = []
    used = _ENVELOPE
    for entry in entries:
        n = size({k: v for k, v in entry.items() if k not in ("v", "kind")})
        if _ENVELOPE + n > max_bytes:
            too_big.append(entry)
            continue
        if current and (len(current) >= max_count or used + n > max_bytes):
            batches.append(current)
            current, used = [], _ENVELOPE
        current.append(entry)
        used += n
    if current:
        batches.append(current)
    return batches, too_big
