"""What the report says about DR drills, as plain values: when a drill started, each VM's last drill,
and RTO and RPO in words. Pure; rendered by render.py and drill_chart.py."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shared.instants import parse_instant
from shared.report.model import DrillRow

RUNNING, PASSED, FAILED = "running", "passed", "failed"
RESULTS = (PASSED, FAILED, RUNNING)


def vm_name(vm_id: str, names: Mapping[str, str]) -> str:
    """A VM by the name the report knows it by (``names``: lower-case id → name), else its id's last segment."""
    return names.get(vm_id.lower()) or vm_id.rstrip("/").rsplit("/", 1)[-1] or vm_id


def started_at(drill: DrillRow) -> float | None:
    """The drill's start as POSIX seconds; None when ``started`` is not an instant."""
    when = parse_instant(drill.started)
    return when.timestamp() if when is not None else None


def seconds(value: float | None) -> float | None:
    """A duration that can be drawn and said: finite and not negative; anything else None."""
    if value is None or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def last_per_vm(drills: Iterable[DrillRow]) -> list[DrillRow]:
    """Each VM's newest drill (by start time; a start that is no instant counts as oldest, a tie goes to
    the row given first, as the data is newest first), newest first. VM ids compare as ARM's do: any case."""
    newest: dict[str, tuple[float, int, DrillRow]] = {}
    for order, d in enumerate(drills):
        t = started_at(d)
        key = (t if t is not None else -math.inf, -order, d)
        vm = d.vm_id.lower()
        if vm not in newest or key[:2] > newest[vm][:2]:
            newest[vm] = key
    return [d for _, _, d in sorted(newest.values(), key=lambda k: k[:2], reverse=True)]


def duration_words(value: float | None) -> str | None:
    """An RTO as a person says it: '45 s', '6 min 12 s', '1 h 3 min'; None when there is none."""
    s = seconds(value)
    if s is None:
        return None
    whole = round(s)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        m, rest = divmod(whole, 60)
        return f"{m} min {rest} s" if rest else f"{m} min"
    h, m = divmod(round(whole / 60), 60)
    return f"{h} h {m} min" if m else f"{h} h"


def age_words(value: float | None) -> str | None:
    """A point's age (the RPO a drill achieved): '40 s', '42 min', '3.2 h'; None when there is none."""
    s = seconds(value)
    if s is None:
        return None
    if s < 60:
        return f"{round(s)} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    return f"{s / 3600:.1f} h"


@dataclass(frozen=True)
class Tally:
    drills: int
    vms: int
    passed: int
    failed: int
    running: int


def tally(drills: Iterable[DrillRow]) -> Tally:
    rows = list(drills)
    results = [d.result for d in rows]
    return Tally(len(rows), len({d.vm_id.lower() for d in rows}), results.count(PASSED), results.count(FAILED),
                 results.count(RUNNING))
