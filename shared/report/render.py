"""The operator's report as one self-contained HTML page: everything inline (style, script, SVG charts),
nothing fetched, every value from the data escaped (names, reasons and ids come from Azure tags and
errors). Pure: the page is a function of ``ReportData`` alone (no clock: the report's own ``generated``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from html import escape

from shared.azure.guards import VaultPosture
from shared.instants import parse_instant
from shared.report import cost_view
from shared.report.assets import CSP, SCRIPT, STYLE
from shared.report.charts import css_class, day_grid, points_chart, state_bar
from shared.report.drill_chart import legend, rto_chart, vm_series
from shared.report.drills import RESULTS, age_words, duration_words, last_per_vm, tally, vm_name
from shared.report.failures import group
from shared.report.model import (
    COPY,
    INITIAL_REPLICATION,
    KIND_STATES,
    KINDS,
    MISSING,
    POINT_KINDS,
    REPLICA,
    STATES,
    Deletion,
    DrillRow,
    FailureGroup,
    KindStatus,
    LeaseRow,
    ReportData,
    RestoreRow,
    SummaryRow,
    VmRow,
)
from shared.report.verdict import Action, actions, verdict
from shared.report.vm_data import encode

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
KIND_TITLES = {
    "vault": "Vault",
    "snapshot_set": "Snapshot set",
    "restore_point": "Restore point",
    "snapshot_copy": "Snapshot set copy",
    "restore_point_copy": "Restore point copy",
    "copy": "Copy",  # either kind's copy: evaluations recorded before they were judged apart (and drills' point)
    "replica": "Replica",
    "isolated_copy": "Isolated copy",
}
KIND_WORDS = {
    "vault": "vault recovery point",
    "snapshot_set": "snapshot set",
    "restore_point": "VM restore point",
    "snapshot_copy": "snapshot set copy in the second region",
    "restore_point_copy": "VM restore point copy in the second region",
    "copy": "copy in the second region",
    "replica": "Site Recovery replica",
    "isolated_copy": "snapshot set copy in the backup subscription (isolated)",
}


def _words(state: str) -> str:
    return state.replace("_", " ")


def _when(text: str | None) -> str:
    """An instant as 'YYYY-MM-DD HH:MM' UTC in a <time>, or the text as given when it is not one."""
    if text is None:
        return '<span class="none">—</span>'
    when = parse_instant(text)
    if when is None:
        return escape(text)
    return f'<time datetime="{escape(text)}">{when:%Y-%m-%d %H:%M} UTC</time>'


def _last_segment(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1] or resource_id


def _named_id(resource_id: str) -> str:
    """A resource by its name, the full id as the tooltip."""
    return f'<span title="{escape(resource_id)}">{escape(_last_segment(resource_id))}</span>'


def _subscription(sub: str) -> str:
    """A subscription id by its first group (unique enough to tell a fleet's apart), the whole as the tooltip;
    anything not shaped like one as given."""
    if _GUID.fullmatch(sub):
        return f'<span title="{escape(sub)}">{escape(sub[:8])}…</span>'
    return escape(sub)


def _hours(h: float) -> str:
    return f"{h:g}" if float(h).is_integer() else f"{h:.1f}"


def _table(
    caption: str, heads: Sequence[tuple[str, str]], rows: Iterable[str], table_id: str = "", foot: str = ""
) -> str:
    """A table in its own horizontal scroller (the page never scrolls sideways); heads are (class, text)."""
    th = "".join(f'<th scope="col" class="{cls}">{text}</th>' if cls else f'<th scope="col">{text}</th>'
                 for cls, text in heads)
    tid = f' id="{table_id}"' if table_id else ""
    tfoot = f"<tfoot>{foot}</tfoot>" if foot else ""
    return (
        f'<div class="scroll"><table{tid}><caption>{caption}</caption><thead><tr>{th}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody>{tfoot}</table></div>"
    )


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}" aria-labelledby="{sid}-h"><h2 id="{sid}-h">{title}</h2>{body}</section>'


def _empty(text: str) -> str:
    return f'<p class="empty">{text}</p>'


# --- header ---------------------------------------------------------------------------------------


def _header(data: ReportData) -> str:
    evaluated = _when(data.evaluated) if data.evaluated is not None else "never evaluated"
    notes = ""
    if data.notes:
        items = "".join(f"<li>{escape(n)}</li>" for n in data.notes)
        notes = f'<div class="notes" role="note"><strong>Not everything could be read:</strong><ul>{items}</ul></div>'
    links = "".join(
        f'<li><a href="#{sid}">{title}</a></li>'
        for sid, title in [
            ("actions", "Needs action"),
            ("summary", "Compliance"),
            ("vms", "VMs"),
            ("points", "Points per day"),
            ("deletions", "Deletions"),
            ("failures", "Failures"),
            ("leases", "In flight"),
            ("restores", "Restores"),
            ("drills", "DR drills"),
            ("cost", "Cost"),
        ]
    )
    line = verdict(data)
    ok = "met" if line.startswith("All ") and ";" not in line else "breached"
    return (
        f'<header><h1>vmkeeper backup report</h1><p id="verdict" class="verdict v-{ok}">{escape(line)}</p>'
        f'<p class="meta" id="generated">Generated {_when(data.generated)}'
        f'</p><p class="meta" id="evaluated">Last compliance evaluation: {evaluated}</p>{notes}'
        f"<nav><ul>{links}</ul></nav></header>"
    )


# --- compliance summary ---------------------------------------------------------------------------


def _counts(row: SummaryRow) -> list[tuple[str, int]]:
    return [(s, getattr(row, s)) for s in STATES]


def _summary_row(cells: str, counts: list[tuple[str, int]], label: str, tag: str = "td") -> str:
    nums = "".join(f'<{tag} class="num">{n}</{tag}>' for _, n in counts)
    total = sum(n for _, n in counts)
    return f'<tr>{cells}{nums}<{tag} class="num">{total}</{tag}><{tag}>{state_bar(counts, label)}</{tag}></tr>'


def _summary(rows: Sequence[SummaryRow], vaults: Sequence[VaultPosture] = ()) -> str:
    if not rows:
        return _section("summary", "Compliance by subscription and policy", _empty("No compliance results yet.")
                        + _vaults(vaults))
    body = [
        _summary_row(
            f'<td class="id">{escape(r.subscription)}</td><td>{escape(r.policy)}</td>',
            _counts(r),
            f"{r.subscription} / {r.policy}",
        )
        for r in rows
    ]
    all_counts = [(s, sum(getattr(r, s) for r in rows)) for s in STATES]
    foot = _summary_row('<td colspan="2">All</td>', all_counts, "All")
    heads = [("", "Subscription"), ("", "Policy")] + [("num", _words(s).capitalize()) for s in STATES]
    heads += [("num", "Total"), ("", "Share")]
    table = _table("VMs by compliance state", heads, body, "summary-table", foot)
    return _section("summary", "Compliance by subscription and policy", table + _vaults(vaults))


def _vaults(vaults: Sequence[VaultPosture]) -> str:
    """Each vault's protection posture: what stops one identity deleting its backups (docs/protected-vaults.md)."""
    if not vaults:
        return ""
    rows = []
    for p in vaults:
        found = "; ".join(p.findings()) or ("not read: " + p.error if p.error else "protected")
        rows.append(f'<tr data-vault="{escape(p.vault_id)}"><td class="id">{escape(p.vault_id)}</td>'
                    f"<td>{escape(p.soft_delete or '—')}</td><td>{escape(p.immutability or '—')}</td>"
                    f'<td class="id">{escape(p.guard or "none")}</td><td>{escape(found)}</td></tr>')
    heads = [("", "Vault"), ("", "Soft delete"), ("", "Immutability"), ("", "Resource Guard (MUA)"), ("", "Finding")]
    return _table("Vaults: what protects their backups", heads, rows, "vault-table")


# --- per-VM table ---------------------------------------------------------------------------------


def _minutes(hours: float) -> str:
    return f"{hours * 60:.0f} min"


def _replica_cell(status: KindStatus, cls: str) -> str:
    """A Site Recovery replica: its RPO against the target in minutes (ASR makes a point every 5), or its initial
    replication's progress; Azure's health and health errors in the tooltip."""
    text, sort, tip = _replica_parts(status)
    health = (status.replication or {}).get("health")
    mark = f'<small class="health">{escape(str(health))}</small> ' if health and health != "Normal" else ""
    return (f'<td class="k k-{cls} c-replica" data-sort="{escape(sort)}" data-health="{escape(str(health or ""))}" '
            f'title="{escape(tip)}">{mark}{escape(text)}</td>')


def _replica_parts(status: KindStatus) -> tuple[str, str, str]:
    """A replica cell's text, sort key and tooltip."""
    detail = status.replication or {}
    target = _minutes(status.rpo_hours)
    if status.state == INITIAL_REPLICATION or (detail.get("since") and status.age_hours is None):
        progress = detail.get("progress")
        text = f"initial {progress} %" if isinstance(progress, int) else "initial replication"
        sort = "-1"  # no point yet and no breach: ahead of every age
    elif status.age_hours is None:
        text, sort = f"none / {target}", "Infinity"
    else:
        text, sort = f"{_minutes(status.age_hours)} / {target}", f"{status.age_hours!r}"
    tip = [f"{_words(status.state)}, RPO target {target}"]
    if detail.get("health"):
        tip.append(f"replication health {detail['health']}")
    if detail.get("protection_state"):
        tip.append(str(detail["protection_state"]))
    tip += [f"{e.get('code')}: {e.get('message')}" for e in detail.get("errors") or [] if isinstance(e, dict)]
    if status.point_id:
        tip.append(f"item {status.point_id}")
    return text, sort, "; ".join(tip)


def _kind_cell(status: KindStatus | None) -> str:
    """The newest point's age against the RPO; '—' when the kind does not apply to the VM."""
    if status is None:
        return '<td class="k k-na" data-sort="">—</td>'
    cls = css_class(status.state, KIND_STATES)
    if status.kind == REPLICA:
        return _replica_cell(status, cls)
    rpo = _hours(status.rpo_hours)
    if status.age_hours is None:
        text, sort = f"none / {rpo} h", "Infinity"  # no point at all: older than any
    else:
        text, sort = f"{status.age_hours:.1f} h / {rpo} h", f"{status.age_hours!r}"
    tip = [f"{_words(status.state)}, RPO {rpo} h"]
    if status.newest:
        tip.append(f"newest {status.newest}")
    if status.point_id:
        tip.append(f"point {status.point_id}")
    words = immutability_words(status)
    tip += [words] if words else []
    policy = status.immutability_policy
    shown = f'<br><small class="immutable">{escape(policy["type"])}</small>' if policy else ""
    return (f'<td class="k k-{cls} c-{status.kind}" data-sort="{escape(sort)}" title="{escape("; ".join(tip))}">'
            f'{escape(text)}{shown}</td>')


def immutability_words(status: KindStatus) -> str:
    """A snapshot kind's immutability in Azure's words: the newest point's immutabilityPolicy and until when, and how
    many of the kind's points hold one ("" for a kind without either)."""
    policy = status.immutability_policy
    if policy is None and not status.immutable_points:
        return ""
    newest = (f"newest point's immutabilityPolicy {policy['type']} until {policy['policyExpirationTime']}" if policy
              else "newest point has no immutabilityPolicy")
    return f"{newest}; {_plural(status.immutable_points, 'immutable point')}"


def _columns(vms: Sequence[VmRow]) -> tuple[str, ...]:
    """The kinds shown: every kind of point; ``replica`` when some VM has or needs a Site Recovery replica; and
    ``copy`` only while an evaluation recorded before copies were judged by kind is the latest."""
    # replica and isolated_copy (docs/isolated-copies.md): only when some VM has or needs one
    shown = tuple(k for k in KINDS if k not in (REPLICA, "isolated_copy") or any(x.kind == k for v in vms for x in v.kinds))
    return shown + ((COPY,) if any(k.kind == COPY for v in vms for k in v.kinds) else ())


def _missing_words(vm: VmRow) -> str:
    """What a VM lacks, named: a fresh snapshot set without a restore point is missing that, not "not protected";
    a kind its policy makes immutable whose newest point lacks its immutabilityPolicy, that."""
    out = ""
    if vm.missing:
        kinds = escape(", ".join(KIND_WORDS.get(k, k) for k in vm.missing))
        out = f'<br><small class="missing">{"" if vm.state == MISSING else "missing "}{kinds}</small>'
    if vm.not_immutable:
        kinds = escape(", ".join(KIND_WORDS.get(k, k) for k in vm.not_immutable))
        out += f'<br><small class="missing">not immutable: {kinds}</small>'
    return out


def _vm_row(vm: VmRow, columns: Sequence[str] = KINDS) -> str:
    by_kind = {k.kind: k for k in vm.kinds}
    rank = STATES.index(vm.state) if vm.state in STATES else len(STATES)
    policy = escape(vm.policy) if vm.policy is not None else '<span class="none">(none)</span>'
    kinds = "".join(_kind_cell(by_kind.get(k)) for k in columns)
    return (
        f'<tr data-state="{escape(vm.state)}"><td title="{escape(vm.vm_id)}">{escape(vm.name)}</td>'
        f'<td class="id">{_subscription(vm.subscription)}</td><td>{escape(vm.resource_group)}</td>'
        f"<td>{escape(vm.region)}</td><td>{policy}</td>"
        f'<td data-sort="{rank}"><span class="badge s-{css_class(vm.state, STATES)}">{escape(_words(vm.state))}'
        f'</span>{_missing_words(vm)}</td><td class="long">{escape(vm.reason)}</td>{kinds}</tr>'
    )


INLINE_ROWS = 1_000  # a bigger fleet's rows are sent as data (shared/report/vm_data.py) and drawn by the script


def _vms(vms: Sequence[VmRow], inline_rows: int = INLINE_ROWS) -> str:
    if not vms:
        return _section("vms", "VMs", _empty("No VMs evaluated yet."))
    n = len(vms)
    columns = _columns(vms)
    by_state = {s: sum(1 for v in vms if v.state == s) for s in STATES}
    buttons = [f'<button type="button" data-filter="all" aria-pressed="true">all ({n})</button>']
    buttons += [
        f'<button type="button" data-filter="{s}" aria-pressed="false">{_words(s)} ({by_state[s]})</button>'
        for s in STATES
    ]
    # Shown by the script: without it the page is the plain table.
    controls = (
        '<div id="vm-controls" class="controls" hidden>'
        f'<div id="filter-state" role="group" aria-label="Show VMs by state">{"".join(buttons)}</div>'
        '<label>Name <input id="filter-name" type="search" placeholder="filter by name" '
        'autocomplete="off" spellcheck="false"></label></div>'
    )
    heads = "".join(
        f'<th scope="col" data-type="{t}">{text}</th>'
        for t, text in [
            ("text", "Name"),
            ("text", "Subscription"),
            ("text", "Resource group"),
            ("text", "Region"),
            ("text", "Policy"),
            ("num", "State"),
            ("text", "Reason"),
        ]
        + [("num", f"{KIND_TITLES[k]}<br><small>{'RPO / target' if k == REPLICA else 'age / RPO'}</small>")
       for k in columns]
    )
    if n <= inline_rows:
        rows, data = "".join(_vm_row(v, columns) for v in vms), ""
    else:  # as data: the script draws the first rows that match (a person reads those; the filter finds the rest)
        rows = (f'<tr><td colspan="{7 + len(columns)}"><noscript>{n} VMs: too many to list without JavaScript; '
                "the ones that need action are listed above.</noscript></td></tr>")
        data = f'<script type="application/json" id="vm-data">{_vm_data(vms, columns)}</script>'
    table = (
        '<div class="scroll vm-scroll"><table id="vm-table"><caption>Newest point of each kind: its age '
        "against the policy's RPO; — where the kind does not apply. Hover a name for its resource id."
        f"</caption><thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table></div>"
    )
    more = '<p id="vm-more" class="meta" hidden></p>'
    return _section("vms", "VMs", f'{controls}<p id="vm-count" aria-live="polite">{n} of {n} VMs</p>{table}{more}{data}')


def _vm_data(vms: Sequence[VmRow], columns: Sequence[str]) -> str:
    return encode(vms, columns, _subscription, _missing_words, _replica_parts, immutability_words)


# --- points per day -------------------------------------------------------------------------------


def _points(data: ReportData) -> str:
    title = "Recovery points per day (last 30 days)"
    days, counts = day_grid(data.points_per_day, data.generated)
    if not any(n > 0 for n in counts.values()):
        return _section("points", title, _empty("No recovery points in the last 30 days."))
    kinds = list(POINT_KINDS) + sorted({k for _, k in counts} - set(POINT_KINDS))
    legend = "".join(
        f'<li><span class="sw b-{css_class(k, POINT_KINDS + (COPY,))}"></span>{escape(KIND_WORDS.get(k, k))}</li>'
        for k in kinds
    )
    rows = [
        f'<tr><th scope="row" class="when">{escape(d)}</th>'
        + "".join(f'<td class="num">{counts.get((d, k), 0)}</td>' for k in kinds)
        + f'<td class="num">{sum(counts.get((d, k), 0) for k in kinds)}</td></tr>'
        for d in days
    ]
    heads = [("", "Day (UTC)")] + [("num", escape(KIND_TITLES.get(k, k))) for k in kinds] + [("num", "Total")]
    fallback = f"<details><summary>The same as a table</summary>{_table('Points per day by kind', heads, rows)}</details>"
    chart = f'<div class="chart-wrap">{points_chart(days, counts)}</div>'
    return _section("points", title, f'{chart}<ul class="legend">{legend}</ul>{fallback}')


# --- deletions, failures, restores ----------------------------------------------------------------


def _deletions(rows: Sequence[Deletion]) -> str:
    title = "Deleted by retention"
    if not rows:
        return _section("deletions", title, _empty("Retention deleted nothing."))
    body = (
        f'<tr><td class="when">{_when(d.time)}</td><td>{_named_id(d.resource_id)}</td><td>{_named_id(d.vm_id)}</td>'
        f'<td>{escape(d.rule)}</td><td class="long">{escape(d.reason)}</td></tr>'
        for d in rows
    )
    heads = [("", "Time"), ("", "Resource"), ("", "VM"), ("", "Rule"), ("", "Reason")]
    return _section("deletions", title, _table(f"{len(rows)} deletions", heads, body, "deletions-table"))


def _failures(rows: Sequence[FailureGroup], total: int) -> str:
    """Failed and poisoned jobs alike as one row: kind, step, Azure's error code, resource, how often, when last."""
    title = "Failed and poisoned jobs"
    if not rows:
        return _section("failures", title, _empty("No failed or poisoned jobs."))
    none = '<span class="none">—</span>'
    body = (
        f'<tr data-code="{escape(g.code)}"><td>{escape(g.kind)}</td><td>{escape(g.step) or none}</td>'
        f'<td class="code">{escape(g.code) or none}</td><td>{_named_id(g.resource)}</td><td class="num">{g.count}</td>'
        f'<td class="when">{_when(g.last)}</td><td class="long">{escape(g.reason)}</td></tr>'
        for g in rows
    )
    heads = [("", "Job kind"), ("", "Step"), ("", "Azure error code"), ("", "Resource"), ("num", "Count"),
             ("", "Last"), ("", "Last reason")]  # fmt: skip
    caption = f"{_plural(total, 'failed job')} in {_plural(len(rows), 'group')}, most often first"
    return _section("failures", title, _table(caption, heads, body, "failures-table"))


MAX_ACTIONS = 50  # the first screen stays short; the rest are in the VM table (its state filter) and below


def _action(a: Action) -> str:
    badge = a.rank if a.rank in STATES else {"drill": "breached", "overdue": "not_protected"}.get(a.rank, "missing")
    label = _words(a.rank) if a.rank in STATES else {"drill": "drill failed", "overdue": "overdue",
                                                      "vault": "unprotected vault"}.get(a.rank, "failed")
    return (
        f'<li data-rank="{escape(a.rank)}" data-vm="{escape(a.name)}"><span class="badge s-{badge}">{escape(label)}'
        f'</span> <strong title="{escape(a.resource_id)}">{escape(a.name)}</strong> {escape(a.what)}'
        f'<br><small>{escape(a.todo)}</small></li>'
    )


def _actions(todo: Sequence[Action]) -> str:
    title = "What needs action"
    if not todo:
        return _section("actions", title, _empty("Nothing: every VM is recoverable within its RPO."))
    more = len(todo) - MAX_ACTIONS
    tail = f'<p class="meta" id="actions-more">and {more} more: filter the VM table by state.</p>' if more > 0 else ""
    items = "".join(_action(a) for a in todo[:MAX_ACTIONS])
    return _section("actions", title, f'<ol id="action-list" class="actions">{items}</ol>{tail}')


def _restores(rows: Sequence[RestoreRow]) -> str:
    title = "Restore history"
    if not rows:
        return _section("restores", title, _empty("No restores requested."))
    body = (
        f'<tr><td class="id">{escape(r.id)}</td><td>{_named_id(r.vm_id)}</td><td>{escape(r.target_type)}</td>'
        f'<td>{escape(r.state)}</td><td class="when">{_when(r.submitted)}</td><td class="when">{_when(r.finished)}</td>'
        f"<td>{escape(r.principal)}</td></tr>"
        for r in rows
    )
    heads = [("", "Id"), ("", "VM"), ("", "Target"), ("", "State"), ("", "Submitted"), ("", "Finished"), ("", "By")]
    return _section("restores", title, _table(f"{len(rows)} restores", heads, body, "restores-table"))


def _leases(rows: Sequence[LeaseRow], generated: str) -> str:
    """What of whose point is readable where, until when: each file recovery (disks on an operator's VM) and export
    (a disk with a read SAS) that is ready or ending; one past its expiry and still not ended is marked overdue."""
    title = "File recoveries and exports in flight"
    if not rows:
        return _section("leases", title, _empty("No file recovery or export in flight."))

    def where(r: LeaseRow) -> str:
        if r.target_type == "files":
            luns = "".join(f"<li>{escape(x)}</li>" for x in r.luns)
            return f"attached to {_named_id(r.attached_to or '')}<ul class=\"luns\">{luns}</ul>"
        return "export disk " + ", ".join(_named_id(d) for d in r.disks)

    def expiry(r: LeaseRow) -> str:
        until, now = parse_instant(r.expires_at), parse_instant(generated)
        late = r.state == "ready" and until is not None and now is not None and until <= now
        return _when(r.expires_at) + (' <span class="badge s-breached">overdue</span>' if late else "")

    body = (
        f'<tr data-restore="{escape(r.id)}"><td class="id">{escape(r.id)}</td><td>{_named_id(r.vm_id)}</td>'
        f'<td class="long" title="{escape(r.point_id)}">{escape(_point_words(r.point_id))}</td>'
        f"<td>{escape(r.target_type)}</td><td>{where(r)}</td><td class=\"when\">{expiry(r)}</td>"
        f"<td>{escape(r.state)}</td><td>{escape(r.principal)}</td></tr>"
        for r in rows
    )
    heads = [("", "Id"), ("", "VM"), ("", "Point"), ("", "Kind"), ("", "Attached to / export disk"), ("", "Expires"),
             ("", "State"), ("", "By")]  # fmt: skip
    return _section("leases", title, _table(f"{len(rows)} in flight", heads, body, "leases-table"))


def _point_words(point_id: str) -> str:
    """A point's catalogue id as people read it: a snapshot set's own id, a restore point's or vault point's name."""
    if point_id.startswith("snapshot-set:"):
        return "snapshot set " + point_id.split(":")[1]
    return point_id.rstrip("/").rsplit("/", 1)[-1]


# --- DR drills ------------------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _drill_row(d: DrillRow, names: dict[str, str]) -> str:
    rto, rpo = duration_words(d.rto_seconds), age_words(d.rpo_seconds)
    none = '<span class="none">—</span>'
    cleanup = escape(d.cleanup) if d.cleanup else '<span class="none">not yet</span>'
    return (
        f'<tr data-drill="{escape(d.id)}" data-result="{escape(d.result)}">'
        f'<td title="{escape(d.vm_id)}">{escape(vm_name(d.vm_id, names))}</td><td class="when">{_when(d.started)}</td>'
        f'<td><span class="badge d-{css_class(d.result, RESULTS)}">{escape(d.result)}</span></td>'
        f'<td class="num">{escape(rto) if rto else none}</td><td class="num">{escape(rpo) if rpo else none}</td>'
        f"<td>{escape(KIND_TITLES.get(d.point_kind, d.point_kind))}</td><td>{cleanup}</td>"
        f'<td class="long">{escape(d.reason)}</td></tr>'
    )


def _drills(data: ReportData) -> str:
    """RTO per VM over time, each VM's last drill, and every drill in a fold."""
    title = "DR drills"
    if not data.drills:
        return _section("drills", title, _empty("No DR drill has run yet."))
    names = {v.vm_id.lower(): v.name for v in data.vms}
    n = tally(data.drills)
    count = (
        f'<p id="drill-count">{_plural(n.drills, "drill")} of {_plural(n.vms, "VM")} in this report: '
        f"{n.passed} passed, {n.failed} failed, {n.running} running.</p>"
    )
    series = vm_series(data.drills, names)
    chart = rto_chart(data.drills, series)
    if chart:
        chart = (
            f'<div class="chart-wrap">{chart}</div>{legend(series)}<p class="meta">A dot per passed drill at its RTO; '
            "drills without one in the top lane: ✕ failed, ○ running. Hover a mark for the drill.</p>"
        )
    heads = [("", "VM"), ("", "Started"), ("", "Result"), ("num", "RTO"), ("num", "RPO achieved"), ("", "Point"),
             ("", "Cleanup"), ("", "Reason")]  # fmt: skip
    last = last_per_vm(data.drills)
    table = _table(f"The last drill of each of {_plural(len(last), 'VM')}, newest first", heads,
                   (_drill_row(d, names) for d in last), "drill-table")  # fmt: skip
    every = _table(f"{_plural(n.drills, 'drill')}, newest first", heads,
                   (_drill_row(d, names) for d in data.drills), "drill-all-table")  # fmt: skip
    fold = f"<details><summary>Every drill as a table</summary>{every}</details>"
    return _section("drills", title, f"{count}{chart}{table}{fold}")


def render(data: ReportData, inline_rows: int = INLINE_ROWS) -> str:
    """The whole page for ``data``; a fleet over ``inline_rows`` VMs has its VM table drawn by the script."""
    groups = group(data.failures)
    todo = actions(data, [(g.resource, g.kind + (f" ({g.step})" if g.step else ""), g.code, g.count) for g in groups])
    main = "".join(
        [
            _actions(todo),
            _summary(data.summary, data.vaults),
            _vms(data.vms, inline_rows),
            _points(data),
            _deletions(data.deletions),
            _failures(groups, len(data.failures)),
            _leases(data.leases, data.generated),
            _restores(data.restores),
            _drills(data),
            cost_view.section(data.cost, _table, _section, _empty),
        ]
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP)}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>vmkeeper report — {escape(data.generated)}</title>"
        f"<style>{STYLE}</style></head><body>{_header(data)}<main>{main}</main>"
        f"<script>{SCRIPT}</script></body></html>"
    )
