"""The report's cost section (issue 24): per policy and per VM, month to date (of it estimated), last 30 days,
and each one's daily trend as an inline SVG line (no script, no style attribute: the page's CSP)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

W, H = 120, 24
MAX_VMS = 100  # the costliest VMs on the page (a trend line each is ~0.5 KB: 10,000 would be 5 MB); vmkeeper cost has all


def sparkline(daily: Mapping[str, float], label: str) -> str:
    """The daily series (oldest → newest) as a polyline scaled to its own highest day; a <title> says the range."""
    days = sorted(daily)
    if not days:
        return "-"
    values = [float(daily[d]) for d in days]
    top = max(values) or 1.0
    step = W / max(1, len(values) - 1)
    points = " ".join(f"{i * step:.1f},{H - 2 - (v / top) * (H - 4):.1f}" for i, v in enumerate(values))
    return (f'<svg class="trend" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
            f'aria-label="{escape(label)}: daily cost {escape(days[0])} to {escape(days[-1])}">'
            f"<title>{escape(label)}: {escape(days[0])} … {escape(days[-1])}, highest {top:.2f} a day</title>"
            f'<polyline points="{points}" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>')


def _money(value: float, currency: str) -> str:
    return escape(f"{value:,.2f} {currency}" if value >= 0.01 or value == 0 else f"<0.01 {currency}")


def _rows(items: Sequence[Mapping[str, Any]], with_policy: bool) -> str:
    out = []
    for r in items:
        name = str(r["name"])
        label = name.rsplit("/", 1)[-1] if name.startswith("/") else name
        cells = [f'<th scope="row" title="{escape(name)}">{escape(label)}</th>']
        if with_policy:
            cells.append(f"<td>{escape(str(r.get('policy', '')))}</td>")
        cells += [f'<td class="num">{_money(r["month_to_date"], r["currency"])}</td>',
                  f'<td class="num">{_money(r["estimate"], r["currency"])}</td>',
                  f'<td class="num">{_money(r["last_30_days"], r["currency"])}</td>',
                  f"<td>{sparkline(r.get('daily') or {}, label)}</td>"]
        out.append(f"<tr>{''.join(cells)}</tr>")
    return "".join(out)


def section(cost: Mapping[str, Any] | None, table: Any, section_: Any, empty: Any) -> str:
    """``table``, ``section_`` and ``empty``: the page's own builders (render.py), so the section looks like the rest."""
    title = "Cost"
    if not cost:
        return section_("cost", title, empty("No cost run yet (the cost timer, VMKEEPER_COST_SCHEDULE)."))
    heads = [("", "Policy"), ("num", "Month to date"), ("num", "of it estimated"), ("num", "Last 30 days"),
             ("", "Trend")]
    policies = table(f"Per policy (run {escape(str(cost['at']))})", heads, [_rows(cost["policies"], False)],
                     "cost-policy-table")
    heads = [("", "VM"), ("", "Policy"), ("num", "Month to date"), ("num", "of it estimated"),
             ("num", "Last 30 days"), ("", "Trend")]
    shown = cost["vms"][:MAX_VMS]  # the costliest first (recorded() sorts them)
    caption = f"Per VM ({len(shown)} costliest of {len(cost['vms'])}: vmkeeper cost lists every VM)" \
        if len(shown) < len(cost["vms"]) else f"Per VM ({len(cost['vms'])})"
    vms = table(caption, heads, [_rows(shown, True)], "cost-vm-table")
    deferred = (cost.get("run") or {}).get("deferred") or {}
    pages = (cost.get("run") or {}).get("pagesRead") or {}
    note = "".join(f'<p class="meta">Subscription {escape(s)}: Cost Management throttled the query'
                   + (f" after {int(pages[s])} page(s), not kept" if s in pages else "")
                   + f"; asked again after {escape(u)}.</p>" for s, u in sorted(deferred.items()))
    for skip in (cost.get("run") or {}).get("budgetsSkipped") or []:
        note += (f'<p class="meta">Policy {escape(str(skip["policy"]))}: its budget ({escape(str(skip["budgetCurrency"]))})'
                 f' was not compared, its cost being in {escape(", ".join(map(str, skip["costCurrencies"])))}.</p>')
    unpriced = (cost.get("run") or {}).get("unpriced") or []
    if unpriced:
        note += (f'<p class="meta">Not estimated (no retail price): points in {escape(", ".join(map(str, unpriced)))}.'
                 "</p>")
    return section_("cost", title, f'{policies}{vms}{note}<p class="meta">Actual cost from Cost Management, plus an '
                    "estimate (retail price × provisioned size) for points newer than its data. Untagged: artifacts "
                    "without a vmkeeper-vm value, and vaults (Azure Backup bills the vault).</p>")
