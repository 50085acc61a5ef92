"""The emulator's clock: real time, optionally sped up, and movable forward by the admin API.

Every time-dependent rule (long-running operations, token buckets, snapshot rate limits, backup
schedules, retention) reads this clock, so a test or benchmark can compress hours into seconds.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class Clock:
    def __init__(self, speed: float = 1.0, start: float | None = None):
        self._lock = threading.Lock()
        self._speed = float(speed)
        self._origin_real = time.monotonic()
        self._origin_emulated = time.time() if start is None else float(start)

    def timestamp(self) -> float:
        """Emulated seconds since the Unix epoch."""
        with self._lock:
            return self._origin_emulated + (time.monotonic() - self._origin_real) * self._speed

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    @property
    def speed(self) -> float:
        return self._speed

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        with self._lock:
            self._rebase()
            self._speed = float(speed)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._rebase()
            self._origin_emulated += seconds

    def real_seconds(self, emulated_seconds: float) -> float:
        """How long a span of emulated time takes in real time (for Retry-After)."""
        return emulated_seconds / self._speed

    def _rebase(self) -> None:
        now_real = time.monotonic()
        self._origin_emulated += (now_real - self._origin_real) * self._speed
        self._origin_real = now_real


def iso(ts: float) -> str:
    """ARM's timestamp format: ISO 8601 with seven fractional digits and an offset."""
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0+00:00"
