"""Failed and poisoned jobs as the report shows them (pure): each alert read for its job's kind, step and Azure's
error code, then grouped, one row per (kind, step, code, resource) with a count and the last time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.alerts.errors import code_of
from shared.report.model import Failure, FailureGroup


def from_alert(alert: Mapping[str, Any]) -> Failure:
    """A failure alert (shared/alerts/events.py) as a row: its kind (the job's type, else the alert's area), step and
    Azure's error code (the error's, else the reason's leading code)."""
    data = alert.get("data") or {}
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    reason = str(data.get("reason") or error.get("message") or "")
    area = str(alert.get("type", "")).removeprefix("vmkeeper.").split(".")[0]
    kind = str(data.get("type") or data.get("target_type") and f"{area} {data['target_type']}" or area)
    step = str(data.get("step") or error.get("step") or "")
    code = str(error.get("code") or data.get("code") or code_of(reason))
    return Failure(str(alert.get("time", "")), str(alert.get("type", "")), str(alert.get("subject", "")), reason,
                   kind, step, code)


def group(failures: Iterable[Failure]) -> list[FailureGroup]:
    """One row per (kind, step, code, resource): most often first, then the newest."""
    rows: dict[tuple[str, str, str, str], list[Failure]] = {}
    for f in failures:
        rows.setdefault((f.kind or f.type, f.step, f.code, f.subject.lower()), []).append(f)
    out = []
    for (kind, step, code, _), alike in rows.items():
        newest = max(alike, key=lambda f: f.time)
        out.append(FailureGroup(kind, step, code, newest.subject, len(alike), newest.time, newest.reason))
    return sorted(out, key=lambda g: (-g.count, _desc(g.last), g.resource))


def _desc(text: str) -> str:
    """Sorts ISO instants newest first (as text, the same format: a complement per character)."""
    return "".join(chr(0x10FFFF - ord(c)) for c in text)
