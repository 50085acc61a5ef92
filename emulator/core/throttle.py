"""ARM's request throttling: token buckets per subscription and operation type.

Defaults are the published numbers (since 2024): reads 250 tokens refilled at 25/s, writes and
deletes 200 at 10/s. Buckets read the emulator's clock, so a sped-up clock refills faster;
sizes and rates are settings so benchmarks can run scaled.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from .clock import Clock

DEFAULT_LIMITS = {
    "reads": (250.0, 25.0),
    "writes": (200.0, 10.0),
    "deletes": (200.0, 10.0),
}


@dataclass
class Bucket:
    capacity: float
    rate: float  # tokens per emulated second
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now


class Throttle:
    def __init__(self, clock: Clock):
        self._clock = clock
        self._lock = threading.Lock()
        self.enabled = True
        self.limits = dict(DEFAULT_LIMITS)
        self._buckets: dict[tuple[str, str], Bucket] = {}

    def configure(self, *, enabled: bool | None = None, limits: dict[str, dict[str, float]] | None = None) -> None:
        with self._lock:
            if enabled is not None:
                self.enabled = bool(enabled)
            for kind, spec in (limits or {}).items():
                if kind not in DEFAULT_LIMITS:
                    raise ValueError(f"throttle.limits: unknown operation type '{kind}' (reads, writes, deletes)")
                capacity = float(spec.get("capacity", self.limits[kind][0]))
                rate = float(spec.get("rate", self.limits[kind][1]))
                if capacity < 1 or rate <= 0:
                    raise ValueError(f"throttle.limits.{kind}: capacity must be >= 1 and rate > 0")
                self.limits[kind] = (capacity, rate)
            self._buckets.clear()

    def settings(self) -> dict:
        return {
            "enabled": self.enabled,
            "limits": {k: {"capacity": c, "rate": r} for k, (c, r) in self.limits.items()},
        }

    def take(self, scope: str, kind: str) -> tuple[bool, int, float]:
        """Take one token. Returns (allowed, remaining, retry_after_emulated_seconds)."""
        if kind not in self.limits:
            return True, -1, 0.0
        now = self._clock.timestamp()
        with self._lock:
            bucket = self._buckets.get((scope, kind))
            if bucket is None:
                capacity, rate = self.limits[kind]
                bucket = self._buckets[(scope, kind)] = Bucket(capacity, rate, capacity, now)
            bucket.refill(now)
            if not self.enabled:
                return True, int(bucket.tokens), 0.0
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return True, int(bucket.tokens), 0.0
            wait = (1 - bucket.tokens) / bucket.rate
            return False, 0, wait

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()


def retry_after_header(clock: Clock, emulated_seconds: float) -> str:
    """Retry-After in whole real seconds, never 0 (azure-core reads 0 as absent)."""
    return str(max(1, math.ceil(clock.real_seconds(emulated_seconds))))
