"""RTO per VM over time as inline SVG: x the drill's start, y its RTO in minutes, one series per VM
(a colour and a marker shape, so ~20 VMs stay apart; a thin line joins a VM's passed drills). Drills
without an RTO sit in a lane above the plot: a failed one as a red ✕, a running one as a ring. Every
drill is one element carrying ``data-rto`` (seconds, as given) and ``data-result``, with a <title>
tooltip. Colours come from the stylesheet by class (``v0``…``v9``): no style attributes (the CSP)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from shared.report.charts import nice_step
from shared.report.drills import (
    FAILED,
    PASSED,
    RUNNING,
    age_words,
    duration_words,
    seconds,
    started_at,
    vm_name,
)
from shared.report.model import DrillRow

COLOURS = 10  # classes v0…v9 in the stylesheet
SHAPES = ("circle", "square", "diamond")  # a second and third round of the colours

WIDTH, HEIGHT = 760, 290
LEFT, RIGHT, TOP, BOTTOM = 52, 14, 8, 44
LANE = TOP + 10  # the lane of drills without an RTO
PLOT_TOP = TOP + 30
BASE = HEIGHT - BOTTOM
HOUR, DAY = 3600, 86400
MAX_TICKS = 8


@dataclass(frozen=True)
class Series:
    vm_id: str
    name: str
    colour: int
    shape: str


def vm_series(drills: Sequence[DrillRow], names: Mapping[str, str]) -> list[Series]:
    """One series per VM in the drills (ids in any case are one VM), by name; colour then shape by that order."""
    ids: dict[str, str] = {}
    for d in drills:
        ids.setdefault(d.vm_id.lower(), d.vm_id)
    ordered = sorted(ids.items(), key=lambda kv: (vm_name(kv[1], names).lower(), kv[0]))
    return [
        Series(vm_id, vm_name(vm_id, names), i % COLOURS, SHAPES[(i // COLOURS) % len(SHAPES)])
        for i, (_, vm_id) in enumerate(ordered)
    ]


def marker(shape: str, x: float, y: float, attrs: str = "", inner: str = "") -> str:
    """A series' marker centred on (x, y)."""
    if shape == "square":
        return f'<rect class="pt" x="{x - 3.5:.2f}" y="{y - 3.5:.2f}" width="7" height="7"{attrs}>{inner}</rect>'
    if shape == "diamond":
        return (f'<path class="pt" d="M{x:.2f} {y - 5:.2f}L{x + 5:.2f} {y:.2f}L{x:.2f} {y + 5:.2f}'
                f'L{x - 5:.2f} {y:.2f}Z"{attrs}>{inner}</path>')
    return f'<circle class="pt" cx="{x:.2f}" cy="{y:.2f}" r="4"{attrs}>{inner}</circle>'


def legend(series: Sequence[Series]) -> str:
    """The VMs by name (full id as the tooltip), each with its colour and marker."""
    items = "".join(
        f'<li class="v{s.colour}" title="{escape(s.vm_id)}"><svg class="key" viewBox="-6 -6 12 12" '
        f'aria-hidden="true">{marker(s.shape, 0, 0)}</svg>{escape(s.name)}</li>'
        for s in series
    )
    return f'<ul class="legend" id="drill-legend">{items}</ul>'


# --- time axis ------------------------------------------------------------------------------------


def _instant(t: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(t, UTC)
    except (OverflowError, ValueError, OSError):
        return None


def time_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    """Round instants between lo and hi (POSIX seconds) for the x axis, at most about MAX_TICKS: hours or
    days on UTC midnights, weeks on Mondays, months on their first day, years on 1 January."""
    start, end = _instant(lo), _instant(hi)
    if start is None or end is None or hi <= lo:
        return []
    span = hi - lo
    for hours in (1, 2, 3, 6, 12, 24, 48):
        step = hours * HOUR
        if span / step <= MAX_TICKS:
            fmt = "%m-%d %H:%M" if hours < 24 else "%m-%d"
            first = math.ceil(lo / step) * step
            return [(t, f"{_instant(t):{fmt}}") for t in _steps(first, hi, step)]
    for weeks in (1, 2):
        step = weeks * 7 * DAY
        if span / step <= MAX_TICKS:
            monday = 4 * DAY  # 1970-01-05, the first Monday after the epoch
            first = monday + math.ceil((lo - monday) / step) * step
            return [(t, f"{_instant(t):%m-%d}") for t in _steps(first, hi, step)]
    months_span = span / (30.44 * DAY)
    for months in (1, 2, 3, 6):
        if months_span / months <= MAX_TICKS:
            index = math.ceil((start.year * 12 + start.month - 1) / months) * months  # months since year 0
            out = []
            while len(out) <= MAX_TICKS + 1 and index // 12 <= 9999:
                when = datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
                if when > end:
                    break
                if when >= start:
                    out.append((when.timestamp(), f"{when:%Y-%m}"))
                index += months
            return out
    years = nice_step(math.ceil(span / (365.25 * DAY)), MAX_TICKS)
    year = math.ceil(start.year / years) * years
    out = []
    while year <= min(end.year, 9999) and len(out) <= MAX_TICKS + 1:
        when = datetime(max(year, 1), 1, 1, tzinfo=UTC)
        if when >= start:
            out.append((when.timestamp(), f"{year}"))
        year += years
    return out


def _steps(first: float, hi: float, step: float) -> list[float]:
    out, t = [], first
    while t <= hi and len(out) <= MAX_TICKS + 1:
        out.append(t)
        t += step
    return out


# --- the chart ------------------------------------------------------------------------------------


def _tooltip(d: DrillRow, name: str, t: float) -> str:
    parts = [name, f"{_instant(t):%Y-%m-%d %H:%M} UTC", d.result]
    rto, rpo = duration_words(d.rto_seconds), age_words(d.rpo_seconds)
    if rto:
        parts.append(f"RTO {rto}")
    if rpo:
        parts.append(f"RPO {rpo}")
    if d.point_kind:
        parts.append(d.point_kind.replace("_", " "))
    text = " · ".join(parts)
    return f"{text}: {d.reason}" if d.reason else text


def rto_chart(drills: Sequence[DrillRow], series: Sequence[Series]) -> str:
    """The chart of ``drills`` (those whose start is an instant; '' when none is)."""
    placed = [(t, d) for d in drills if (t := started_at(d)) is not None]
    if not placed:
        return ""
    lo, hi = min(t for t, _ in placed), max(t for t, _ in placed)
    pad = (hi - lo) * 0.03 if hi > lo else DAY
    x0, x1 = lo - pad, hi + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, BASE - PLOT_TOP

    def on_axis(d: DrillRow) -> float | None:
        """Minutes of RTO when the drill is drawn on the y axis (it ended without failing and has one)."""
        s = seconds(d.rto_seconds)
        return s / 60 if s is not None and d.result not in (FAILED, RUNNING) else None

    minutes = [m for _, d in placed if (m := on_axis(d)) is not None]
    step = nice_step(math.ceil(max(minutes, default=10)))
    top = max(step, math.ceil(max(minutes, default=0) / step) * step)

    def x_of(t: float) -> float:
        return LEFT + plot_w * (t - x0) / (x1 - x0)

    def y_of(m: float) -> float:
        return BASE - plot_h * min(m / top, 1.0)

    results = [d.result for _, d in placed]
    title = (f"RTO per VM in minutes by drill start: {len(placed)} drills of {len(series)} VMs, "
             f"{results.count(PASSED)} passed, {results.count(FAILED)} failed, {results.count(RUNNING)} running")
    out = [
        f'<svg id="drill-chart" class="chart drill-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="drill-chart-title"><title id="drill-chart-title">{escape(title)}</title>'
    ]
    for v in range(0, top + 1, step):
        y = y_of(v)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
    out.append(f'<line class="lane" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{LANE}" y2="{LANE}"/>')
    out.append(f'<text x="{LEFT - 6}" y="{LANE + 4}" text-anchor="end">no RTO</text>')
    mid = PLOT_TOP + plot_h / 2
    out.append(f'<text x="12" y="{mid:.1f}" text-anchor="middle" transform="rotate(-90 12 {mid:.1f})">'
               "RTO (min)</text>")
    for t, label in time_ticks(lo, hi):
        x = x_of(t)
        out.append(f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{BASE}" y2="{BASE + 4}"/>')
        out.append(f'<text x="{x:.1f}" y="{BASE + 16}" text-anchor="middle">{escape(label)}</text>')
    out.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{BASE}" y2="{BASE}"/>')
    first, last = _instant(lo), _instant(hi)
    out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">drill start (UTC), '
               f"{first:%Y-%m-%d} to {last:%Y-%m-%d}</text>")

    by_vm: dict[str, list[tuple[float, DrillRow]]] = {}
    for t, d in sorted(placed, key=lambda p: p[0]):
        by_vm.setdefault(d.vm_id.lower(), []).append((t, d))
    for s in series:
        rows = by_vm.get(s.vm_id.lower(), [])
        if not rows:
            continue
        line = [(x_of(t), y_of(m)) for t, d in rows if (m := on_axis(d)) is not None]
        out.append(f'<g class="series v{s.colour}" data-vm="{escape(s.vm_id)}">')
        if len(line) > 1:
            out.append(f'<polyline class="ln" points="{" ".join(f"{x:.2f},{y:.2f}" for x, y in line)}"/>')
        for t, d in rows:
            x = x_of(t)
            attrs = (f' data-drill="{escape(d.id)}" data-result="{escape(d.result)}" data-rto="'
                     f'{"" if d.rto_seconds is None else escape(repr(d.rto_seconds))}" '
                     f'data-started="{escape(d.started)}"')
            tip = f"<title>{escape(_tooltip(d, s.name, t))}</title>"
            m = on_axis(d)
            if m is not None:
                out.append(marker(s.shape, x, y_of(m), attrs, tip))
            elif d.result == FAILED:
                out.append(f'<path class="fail" d="M{x - 4:.2f} {LANE - 4}l8 8m0 -8l-8 8"{attrs}>{tip}</path>')
            else:  # running, or ended without an RTO to draw
                out.append(f'<circle class="ring" cx="{x:.2f}" cy="{LANE}" r="4"{attrs}>{tip}</circle>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)
