"""Instants as vmkeeper writes them, everywhere (tags, names' slot text, ledger rows): ISO 8601 in
UTC with a ``Z``, e.g. ``2026-11-25T06:00:00Z``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def format_instant(when: datetime) -> str:
    """The one written form of an instant; ``parse_instant`` reads it back exactly."""
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ValueError("instant: must be a timezone-aware datetime")
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_instant(value: Any) -> datetime | None:
    """An ISO 8601 instant with a UTC offset, as UTC; None if it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def now_text() -> str:
    return format_instant(datetime.now(UTC))
