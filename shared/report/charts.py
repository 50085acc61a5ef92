"""The report's charts as inline SVG, drawn here so the page needs no script or library to show them.
Colours come from the page's stylesheet by class (``f-<state>``, ``f-<kind>``): no style attributes,
which the page's Content-Security-Policy would refuse."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import timedelta
from html import escape

from shared.instants import parse_instant
from shared.report.model import COPY, DayCount
from shared.report.model import POINT_KINDS as KINDS

DAYS = 30  # the window the points chart shows, ending on the report's day

# Chart geometry in SVG user units; the SVG scales to its box (viewBox).
WIDTH, HEIGHT = 760, 250
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 14, 44


def css_class(word: str, known: Iterable[str]) -> str:
    """A word from the data as a class name only when it is one we style; anything else is 'unknown'
    (the data comes from Azure tags and errors, a class attribute is no place for it)."""
    return word if word in known else "unknown"


def state_bar(counts: Sequence[tuple[str, int]], label: str) -> str:
    """One horizontal bar, 100% wide, split by each state's share; a <title> per part is its tooltip."""
    total = sum(max(n, 0) for _, n in counts)
    parts, x = [], 0.0
    for state, n in counts:
        if n <= 0:
            continue
        w = 100 * n / total
        parts.append(
            f'<rect class="f-{state}" x="{x:.3f}" y="0" width="{w:.3f}" height="10">'
            f"<title>{escape(label)}: {n} {escape(state.replace('_', ' '))}</title></rect>"
        )
        x += w
    words = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts) if total else "no VMs"
    return (
        f'<svg class="bar" viewBox="0 0 100 10" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(label)}: {escape(words)}">{"".join(parts)}</svg>'
    )


def day_grid(points: Iterable[DayCount], generated: str) -> tuple[list[str], dict[tuple[str, str], int]]:
    """The chart's days (the 30 ending on the report's day, plus any other day the data names, so
    nothing in the data goes missing) and the count per (day, kind), summed if the data repeats one."""
    counts: dict[tuple[str, str], int] = {}
    for p in points:
        counts[(p.day, p.kind)] = counts.get((p.day, p.kind), 0) + p.count
    days = {day for day, _ in counts}
    when = parse_instant(generated)
    if when is not None:
        last = when.date()
        days |= {(last - timedelta(days=i)).isoformat() for i in range(DAYS)}
    return sorted(days), counts


def nice_step(top: int, ticks: int = 4) -> int:
    """A round step (1, 2 or 5 × 10ⁿ) giving about ``ticks`` gridlines up to ``top``."""
    raw = max(top / ticks, 1)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def points_chart(days: Sequence[str], counts: dict[tuple[str, str], int]) -> str:
    """Recovery points per day, stacked by kind: one <rect data-day data-kind data-count> per
    (day, kind) with points, each with a <title> tooltip; y axis with gridlines, x axis labelled by day."""
    kinds = list(KINDS) + sorted({k for _, k in counts} - set(KINDS))
    totals = [sum(max(counts.get((d, k), 0), 0) for k in kinds) for d in days]
    step = nice_step(max(totals, default=0))
    top = max(step, math.ceil(max(totals, default=0) / step) * step)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    base = TOP + plot_h

    def y_of(v: float) -> float:
        return base - plot_h * v / top

    out = [
        f'<svg id="points-chart" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="points-chart-title"><title id="points-chart-title">Recovery points per day '
        f"by kind, {escape(days[0]) if days else ''} to {escape(days[-1]) if days else ''}</title>"
    ]
    for v in range(0, top + 1, step):  # gridlines and y labels
        y = y_of(v)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{v}</text>')
    out.append(
        f'<text x="12" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {TOP + plot_h / 2:.1f})">points</text>'
    )
    slot = plot_w / max(len(days), 1)
    bar_w = slot * 0.72
    label_every = max(1, math.ceil(len(days) / 10))
    for i, day in enumerate(days):
        x = LEFT + i * slot + (slot - bar_w) / 2
        stacked = 0
        for kind in kinds:
            n = counts.get((day, kind), 0)
            if n <= 0:
                continue
            y_top = y_of(stacked + n)
            out.append(
                f'<rect class="f-{css_class(kind, KINDS + (COPY,))}" x="{x:.2f}" y="{y_top:.2f}" '
                f'width="{bar_w:.2f}" height="{y_of(stacked) - y_top:.2f}" data-day="{escape(day)}" '
                f'data-kind="{escape(kind)}" data-count="{n}">'
                f"<title>{escape(day)} · {escape(kind.replace('_', ' '))}: {n}</title></rect>"
            )
            stacked += n
        if (len(days) - 1 - i) % label_every == 0:  # the newest day always labelled
            cx = LEFT + i * slot + slot / 2
            out.append(f'<text x="{cx:.1f}" y="{base + 16}" text-anchor="middle">{escape(day[5:] or day)}</text>')
    out.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}"/>')
    out.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">day (UTC, month-day)</text></svg>'
    )
    return "".join(out)
