"""A policy's retention block, parsed once into typed rules (shared/retention/engine.py applies them).

Durations: ISO 8601 ("P30D", "PT12H", "P1DT6H", "P2W") or "30d", "12h", "90m", "2w", "45s". Unknown keys
are errors: a typo must not silently mean 0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, timedelta, tzinfo
from typing import Any

COUNTS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
DURATIONS = ("max_age", "orphan_grace", "deferral")
_COUNTS, _DURATIONS = COUNTS, DURATIONS


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    max_age: timedelta | None = None
    orphan_grace: timedelta = timedelta(days=7)
    deferral: timedelta = timedelta(hours=24)
    # The policy's schedule's time zone (not a key of the block: the document copies it from the schedule),
    # so keep_daily's days, and its weeks, months and years, are the ones its slots are named in.
    time_zone: str = "UTC"

    def __post_init__(self) -> None:
        if not isinstance(self.time_zone, str) or not self.time_zone:
            raise ValueError("retention.time_zone: must be an IANA time zone name such as 'Europe/Berlin'")
        self.tzinfo  # noqa: B018  (an unknown zone fails here, not in the middle of a retention pass)
        for name in _COUNTS:
            _check_count(getattr(self, name), f"retention.{name}")
        if self.max_age is not None:
            _check_duration(self.max_age, "retention.max_age", positive=True)
        _check_duration(self.orphan_grace, "retention.orphan_grace")
        _check_duration(self.deferral, "retention.deferral")

    @property
    def tzinfo(self) -> tzinfo:
        """The zone GFS buckets are counted in. UTC needs no tz database (the host may have none)."""
        if self.time_zone.upper() == "UTC":
            return UTC
        import zoneinfo

        try:
            return zoneinfo.ZoneInfo(self.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"retention.time_zone: unknown time zone {self.time_zone!r}") from exc

    @property
    def has_rules(self) -> bool:
        return self.max_age is not None or any(getattr(self, name) for name in _COUNTS)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "retention") -> RetentionPolicy:
        """Parse a config mapping. Durations: ISO 8601 ("P30D", "PT12H", "P1DT6H", "P2W") or "30d",
        "12h", "90m", "2w", "45s". Unknown keys are errors: a typo must not silently mean 0."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: must be a mapping of retention settings")
        known = _COUNTS + _DURATIONS
        for key in data:
            if key not in known:
                raise ValueError(f"{where}.{key}: unknown setting (expected one of {', '.join(known)})")
        kwargs: dict[str, Any] = {}
        for name in _COUNTS:
            if name in data:
                kwargs[name] = _check_count(data[name], f"{where}.{name}")
        if data.get("max_age") is not None:
            kwargs["max_age"] = _parse_duration(data["max_age"], f"{where}.max_age", positive=True)
        for name in ("orphan_grace", "deferral"):
            if name in data:
                kwargs[name] = _parse_duration(data[name], f"{where}.{name}")
        return cls(**kwargs)


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: must be a non-negative integer")
    return value


def _check_duration(value: Any, name: str, *, positive: bool = False) -> timedelta:
    if not isinstance(value, timedelta) or value < timedelta(0) or (positive and not value):
        raise ValueError(f"{name}: must be a {'positive' if positive else 'non-negative'} duration")
    return value


_ISO_DURATION = re.compile(
    r"P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?",
    re.IGNORECASE,
)
_SHORT_DURATION = re.compile(r"(\d+)\s*([wdhms])", re.IGNORECASE)
_SHORT_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def _parse_duration(value: Any, name: str, *, positive: bool = False) -> timedelta:
    if isinstance(value, timedelta):
        return _check_duration(value, name, positive=positive)
    text = value.strip() if isinstance(value, str) else ""
    iso = _ISO_DURATION.fullmatch(text)
    short = _SHORT_DURATION.fullmatch(text)
    parts: dict[str, int] = {}
    if iso and text.upper() not in ("P", "PT") and not text.upper().endswith("T"):
        parts = {unit: int(n) for unit, n in iso.groupdict().items() if n is not None}
    elif short:
        parts = {_SHORT_UNITS[short.group(2).lower()]: int(short.group(1))}
    if not parts:
        raise ValueError(f"{name}: must be a duration such as 'P30D', 'PT12H', '30d' or '12h'")
    return _check_duration(timedelta(**parts), name, positive=positive)
