"""Pacing: a write budget per subscription, shared by every worker on every instance.

ARM refills a subscription's write bucket at a fixed rate; going over earns 429s and stalls. Each
worker takes tokens from a bucket kept in an Azure Table entity (optimistic concurrency on the
ETag), so the budget holds across instances. ARM's own word wins: a low
``x-ms-ratelimit-remaining-subscription-writes`` shrinks the bucket and a 429's Retry-After blocks
it. A subscription with no budget answers "wait N s" — the caller re-enqueues, it never sleeps —
so one throttled subscription never stalls the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RESERVE = 20  # leave ARM headroom for everything else writing in the subscription


@dataclass(frozen=True)
class Bucket:
    tokens: float
    stamp: float  # when tokens were last computed (epoch seconds)
    blocked_until: float = 0.0

    def refilled(self, now: float, rate: float, burst: float) -> Bucket:
        if now <= self.stamp:
            return self
        return Bucket(min(burst, self.tokens + (now - self.stamp) * rate), now, self.blocked_until)


def take(bucket: Bucket, n: int, now: float, rate: float, burst: float) -> tuple[Bucket, float]:
    """(new bucket, 0) when n tokens are granted; (bucket, seconds to wait) when not."""
    b = bucket.refilled(now, rate, burst)
    if b.blocked_until > now:
        return b, b.blocked_until - now
    if b.tokens >= n:
        return Bucket(b.tokens - n, b.stamp, b.blocked_until), 0.0
    return b, (n - b.tokens) / rate


def observe(bucket: Bucket, now: float, remaining: int | None, retry_after: float | None) -> Bucket:
    """Fold in what ARM said: its remaining writes cap ours; a Retry-After blocks the bucket."""
    tokens, blocked = bucket.tokens, bucket.blocked_until
    if remaining is not None:
        tokens = min(tokens, max(0.0, remaining - RESERVE))
    if retry_after:
        blocked = max(blocked, now + retry_after)
    return Bucket(tokens, max(bucket.stamp, now), blocked)


class WriteBudget:
    """The table-backed bucket. ``table`` is an azure.data.tables TableClient."""

    def __init__(self, table: Any, rate: float, burst: float, clock: Callable[[], float] = time.time):
        if rate <= 0 or burst < 1:
            raise ValueError("write budget: rate must be > 0 and burst >= 1")
        self.table, self.rate, self.burst, self.clock = table, rate, burst, clock
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            from .azure_clients import ensure_table

            ensure_table(self.table)
            self._ready = True

    def _update(self, subscription_id: str, change: Callable[[Bucket, float], tuple[Bucket, Any]]) -> Any:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

        self._ensure()
        key = subscription_id.lower()
        for _ in range(50):  # contention: re-read and try again
            now = self.clock()
            try:
                entity = self.table.get_entity("budget", key)
                bucket = Bucket(float(entity["tokens"]), float(entity["stamp"]), float(entity.get("blocked_until", 0.0)))
                etag = entity.metadata["etag"]
            except ResourceNotFoundError:
                bucket, etag = Bucket(self.burst, now), None
            new, result = change(bucket, now)
            row = {"PartitionKey": "budget", "RowKey": key, "tokens": float(new.tokens), "stamp": float(new.stamp),
                   "blocked_until": float(new.blocked_until)}
            try:
                if etag is None:
                    self.table.create_entity(row)
                else:
                    self.table.update_entity(row, etag=etag, match_condition=MatchConditions.IfNotModified)
                return result
            except (ResourceModifiedError, ResourceExistsError):
                continue
        raise RuntimeError(f"write budget for {key}: too much contention")

    def take(self, subscription_id: str, n: int = 1) -> float:
        """0 when n writes may go now; otherwise the seconds to wait before asking again."""
        return self._update(subscription_id, lambda b, now: take(b, n, now, self.rate, self.burst))

    def observe(self, subscription_id: str, remaining: int | None = None, retry_after: float | None = None) -> None:
        if remaining is None and not retry_after:
            return
        self._update(subscription_id, lambda b, now: (observe(b.refilled(now, self.rate, self.burst), now, remaining,
                                                              retry_after), None))
