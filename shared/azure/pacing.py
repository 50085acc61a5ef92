"""Pacing: a write budget per subscription, shared by every worker on every instance.

ARM refills a subscription's write bucket at a fixed rate; going over earns 429s and stalls. Our
bucket mirrors ARM's in an Azure Table entity (optimistic concurrency on the ETag), so the budget
holds across instances. Two ways to ask:

- ``take``: n writes now, or "ask again in N s" (retention's deletes);
- ``reserve``: n writes now, or a promise of n writes at a moment in the future (the bucket goes
  into debt). The worker re-enqueues its job with that visibility delay and, when it returns,
  spends the promise without asking again: no polling of the budget, and jobs go out at the
  refill rate in the order they asked. ``reserve_many`` promises a whole slot's jobs in one
  round trip, so the planner can enqueue each job to become visible at its moment.

ARM's own word wins: a low ``x-ms-ratelimit-remaining-subscription-writes`` shrinks the bucket
and a 429's Retry-After puts it into debt for that long. A subscription with no budget answers
"wait N s" and the caller re-enqueues, it never sleeps, so one throttled subscription never
stalls the others. Within one instance a lock per subscription serialises the round trips and
the last ETag is kept, so a worker normally pays a single conditional write, and observations
that change nothing cost nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..ports import Table
from .tables import ensure_table

RESERVE_SHARE = 0.1  # of the burst: ARM headroom for everything else writing in the subscription
MAX_AHEAD = 600.0  # seconds: promises are not made further out than this


@dataclass(frozen=True)
class Bucket:
    tokens: float  # below zero: writes already promised for later
    stamp: float  # when tokens were last computed (epoch seconds)

    def refilled(self, now: float, rate: float, burst: float) -> Bucket:
        if now <= self.stamp:
            return self
        return Bucket(min(burst, self.tokens + (now - self.stamp) * rate), now)


def take(bucket: Bucket, n: int, now: float, rate: float, burst: float) -> tuple[Bucket, float]:
    """(new bucket, 0) when n tokens are granted now; (bucket, seconds to wait) when not."""
    b = bucket.refilled(now, rate, burst)
    if b.tokens >= n:
        return Bucket(b.tokens - n, b.stamp), 0.0
    return bucket, (n - b.tokens) / rate


def reserve(bucket: Bucket, n: int, now: float, rate: float, burst: float,
            max_ahead: float = MAX_AHEAD) -> tuple[Bucket, float, bool]:
    """Promise n tokens: (new bucket, seconds until they may be spent, True). A promise further out
    than ``max_ahead`` is not made: (bucket, seconds after which to ask again, False)."""
    b = bucket.refilled(now, rate, burst)
    left = b.tokens - n
    wait = max(0.0, -left / rate)
    if wait > max_ahead:
        return bucket, wait - max_ahead, False
    return Bucket(left, b.stamp), wait, True


def reserve_many(bucket: Bucket, counts: list[int], now: float, rate: float, burst: float,
                 max_ahead: float = MAX_AHEAD) -> tuple[Bucket, list[tuple[float, bool]]]:
    """Promises for a run of jobs in order: (new bucket, [(seconds, promised)] per job).

    The run is spread evenly over the time the bucket needs for all of it, T = (writes - tokens)
    / rate, rather than spending the bucket at once and then trickling: it ends at the same
    moment, and the k-th write, at T·k/writes, is never before the bucket allows it
    ((k - tokens) / rate, since T·k/writes - (k - tokens)/rate = tokens·(writes - k)/(rate·writes)
    ≥ 0; a bucket in debt goes by its refill alone). Workers then see a steady flow instead of a
    storm followed by a trickle. Jobs further
    out than ``max_ahead`` are not promised; each is told when to ask again."""
    b = bucket.refilled(now, rate, burst)
    total = sum(counts) or 1
    span = max(0.0, (total - b.tokens) / rate)
    out: list[tuple[float, bool]] = []
    done = promised = 0
    for n in counts:
        done += n
        wait = max(span * done / total, (done - b.tokens) / rate, 0.0)  # the first term rules unless in debt
        if wait > max_ahead:
            out.append((wait - max_ahead, False))
        else:
            out.append((wait, True))
            promised += n
    return (Bucket(b.tokens - promised, b.stamp) if promised else bucket), out


def observe(bucket: Bucket, now: float, rate: float, burst: float, remaining: int | None,
            retry_after: float | None, reserve_tokens: float = 0.0) -> Bucket:
    """Fold in what ARM said: its remaining writes (less our reserve) cap ours; a Retry-After
    means nothing more may go for that long."""
    b = bucket.refilled(now, rate, burst)
    tokens = b.tokens
    if remaining is not None:
        tokens = min(tokens, remaining - reserve_tokens)
    if retry_after:
        tokens = min(tokens, -retry_after * rate)
    return bucket if tokens == b.tokens else Bucket(tokens, b.stamp)


class WriteBudget:
    """The table-backed bucket (shared/ports.py ``Budget``)."""

    def __init__(self, table: Table, rate: float, burst: float, clock: Callable[[], float] = time.time):
        if rate <= 0 or burst < 1:
            raise ValueError("write budget: rate must be > 0 and burst >= 1")
        self.table, self.rate, self.burst, self.clock = table, rate, burst, clock
        self.reserve_tokens = RESERVE_SHARE * burst
        self._ready = False
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._known: dict[str, tuple[Bucket, str]] = {}  # subscription → (bucket, ETag) as last written or read

    def _ensure(self) -> None:
        if not self._ready:
            ensure_table(self.table)
            self._ready = True

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _read(self, key: str, now: float) -> tuple[Bucket, str | None]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = self.table.get_entity("budget", key)
        except ResourceNotFoundError:
            return Bucket(self.burst, now), None
        return Bucket(float(entity["tokens"]), float(entity["stamp"])), entity.metadata["etag"]

    def _update(self, subscription_id: str, change: Callable[[Bucket, float], tuple[Bucket, Any]]) -> Any:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

        self._ensure()
        key = subscription_id.lower()
        with self._lock(key):
            for _ in range(50):  # another instance wrote in between: re-read and try again
                now = self.clock()
                known = self._known.get(key)
                bucket, etag = known if known else self._read(key, now)
                new, result = change(bucket, now)
                if new == bucket and etag is not None:
                    self._known[key] = (bucket, etag)
                    return result
                row = {"PartitionKey": "budget", "RowKey": key, "tokens": float(new.tokens), "stamp": float(new.stamp)}
                try:
                    if etag is None:
                        meta = self.table.create_entity(row)
                    else:
                        meta = self.table.update_entity(row, mode="replace", etag=etag,
                                                        match_condition=MatchConditions.IfNotModified)
                except (ResourceModifiedError, ResourceExistsError):
                    self._known.pop(key, None)
                    continue
                self._known[key] = (new, meta["etag"])
                return result
        raise RuntimeError(f"write budget for {key}: too much contention")

    def take(self, subscription_id: str, n: int = 1) -> float:
        """0 when n writes may go now; otherwise the seconds to wait before asking again."""
        return self._update(subscription_id, lambda b, now: take(b, n, now, self.rate, self.burst))

    def reserve(self, subscription_id: str, n: int = 1) -> tuple[float, bool]:
        """(epoch seconds from which n writes may go, True) — a promise kept in the table; or
        (epoch seconds at which to ask again, False) when the promise would be too far out."""
        def change(b: Bucket, now: float) -> tuple[Bucket, tuple[float, bool]]:
            new, wait, promised = reserve(b, n, now, self.rate, self.burst)
            return new, (now + wait, promised)
        return self._update(subscription_id, change)

    def reserve_many(self, subscription_id: str, counts: list[int]) -> list[tuple[float, bool]]:
        """``reserve`` for many jobs at once (one round trip): [(epoch seconds, promised)] in order."""
        def change(b: Bucket, now: float) -> tuple[Bucket, list[tuple[float, bool]]]:
            new, out = reserve_many(b, counts, now, self.rate, self.burst)
            return new, [(now + wait, promised) for wait, promised in out]
        return self._update(subscription_id, change)

    def observe(self, subscription_id: str, remaining: int | None = None, retry_after: float | None = None) -> None:
        if remaining is None and not retry_after:
            return

        def change(b: Bucket, now: float) -> tuple[Bucket, None]:
            return observe(b, now, self.rate, self.burst, remaining, retry_after, self.reserve_tokens), None

        known = self._known.get(subscription_id.lower())
        if known and change(known[0], self.clock())[0] == known[0]:
            return  # ARM says nothing we don't know (our bucket is at most what we last saw): no round trip
        self._update(subscription_id, change)
