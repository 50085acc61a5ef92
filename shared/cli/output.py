"""Output: JSON for machines (only JSON on stdout, stable keys) and rich tables for people. Progress
and notes go to stderr, so stdout stays the answer. Outside a terminal (a pipe, CI, tests) rich draws
no colour and, unless COLUMNS says otherwise, tables get room enough not to cut ids."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

STATE_STYLE = {"breached": "bold red", "not_protected": "bold red", "missing": "bold yellow", "met": "green",
               "not_supported": "bold magenta",
               "opted_out": "dim", "initial_replication": "cyan"}
KIND_TITLES = {"vault": "Vault", "snapshot_set": "Snapshot set", "restore_point": "Restore point",
               "snapshot_copy": "Snapshot set copy", "restore_point_copy": "Restore point copy",
               "copy": "Copy",  # copy: either kind's, in evaluations recorded before they were judged apart
               "replica": "Replica",  # Site Recovery: RPO / target in minutes
               "isolated_copy": "Isolated copy"}  # in the backup subscription (docs/isolated-copies.md)
KIND_WORDS = {**{k: t.lower() for k, t in KIND_TITLES.items()}, "replica": "Site Recovery replica"}
ACTION_STYLE = {"delete": "bold red", "mark": "yellow", "unmark": "cyan"}
RESTORE_STYLE = {"succeeded": "green", "failed": "bold red", "cancelled": "yellow", "running": "cyan",
                 "pending": "cyan"}
DRILL_STYLE = {"passed": "green", "failed": "bold red", "running": "cyan"}
WIDE = 200


@dataclass(frozen=True)
class Col:
    """A table's column and how much it matters: when the terminal is too narrow, the lowest ``keep`` goes first."""

    header: str
    keep: int
    no_wrap: bool = False
    justify: str = "left"


def fit(out: Console, cols: list[Col], rows: list[list[str]], title: str | None = None) -> Table:
    """The table with the columns that fit ``out``'s width whole (words never broken: no column squeezed to a
    character a line); those that matter least are left out, and the title says so."""
    from rich.measure import Measurement

    shown = list(range(len(cols)))

    def build(which: list[int], note: str = "") -> Table:
        table = Table(title=(title or "") + note if title or note else None, title_justify="left")
        for i in which:
            table.add_column(cols[i].header, no_wrap=cols[i].no_wrap, overflow="fold", justify=cols[i].justify)
        for r in rows:
            table.add_row(*[r[i] for i in which])
        return table

    wide = out.options.update(width=10_000, max_width=10_000)

    def least(i: int) -> int:
        """Column i's narrowest width that breaks no word (no_wrap: its longest line), padding included."""
        cells = [Text.from_markup(cols[i].header), *(Text.from_markup(r[i]) for r in rows)]
        sizes = [Measurement.get(out, wide, c) for c in cells]
        return max((m.maximum if cols[i].no_wrap else m.minimum) for m in sizes) + 2

    need = {i: least(i) for i in shown}
    table = build(shown)
    while len(shown) > 1 and sum(need[i] for i in shown) + len(shown) + 1 > out.width:
        shown.remove(min(shown, key=lambda i: cols[i].keep))
        left = [cols[i].header.split("\n")[0] for i in range(len(cols)) if i not in shown]
        table = build(shown, f" (narrow terminal: {', '.join(left)} left out; -o json has all)")
    return table


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    c = Console(file=stream, highlight=False)
    if not c.is_terminal and "COLUMNS" not in os.environ:
        c = Console(file=stream, highlight=False, width=WIDE)
    return c


def emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, default=str))


def query(doc: Any, expression: str | None) -> Any:
    """``--query``: a JMESPath expression over the command's JSON document (what -o json prints)."""
    if expression is None:
        return doc
    import jmespath
    from jmespath.exceptions import JMESPathError

    from .context import CliError

    try:
        return jmespath.search(expression, json.loads(json.dumps(doc, default=str)))
    except JMESPathError as exc:
        raise CliError(f"--query: {expression!r} is not a JMESPath expression the document takes ({exc})",
                       "--query") from None


def emit(doc: Any, fmt: str, expression: str | None = None) -> None:
    """The document (after --query) as -o asks: json, jsonc (coloured in a terminal), yaml, tsv (the Azure CLI's:
    a line per item, its plain values tab-separated), or a table of the query's result."""
    value = query(doc, expression)
    if fmt == "json" or (fmt == "jsonc" and not console().is_terminal):
        emit_json(value)
    elif fmt == "jsonc":
        console().print_json(json.dumps(value, default=str), indent=2)
    elif fmt == "yaml":
        import yaml

        click.echo(yaml.safe_dump(json.loads(json.dumps(value, default=str)), sort_keys=False, allow_unicode=True,
                                  default_flow_style=False), nl=False)
    elif fmt == "tsv":
        for line in tsv_lines(value):
            click.echo(line)
    else:
        result_table(value)


def _plain(value: Any) -> str:
    return "" if value is None else str(value)


def tsv_lines(value: Any) -> list[str]:
    """The Azure CLI's tsv: a list gives a line per item; an object its scalar values in order (nested ones left
    out); a scalar itself."""
    items = value if isinstance(value, list) else [value]
    lines = []
    for item in items:
        if isinstance(item, dict):
            lines.append("\t".join(_plain(v) for v in item.values() if not isinstance(v, dict | list)))
        elif isinstance(item, list):
            lines.append("\t".join(_plain(v) for v in item if not isinstance(v, dict | list)))
        else:
            lines.append(_plain(item))
    return lines


def result_table(value: Any) -> None:
    """-o table with --query: the result's objects as rows, their plain fields as columns (as the Azure CLI)."""
    out = console()
    rows = value if isinstance(value, list) else [value]
    if not rows or value is None:
        return
    if all(isinstance(r, dict) for r in rows):
        names = list(dict.fromkeys(k for r in rows for k, v in r.items() if not isinstance(v, dict | list)))
        table = Table()
        for n in names:
            table.add_column(n.replace("_", " ").capitalize(), overflow="fold")
        for r in rows:
            table.add_row(*[escape(_plain(r.get(n))) for n in names])
    else:
        table = Table()
        table.add_column("Result", overflow="fold")
        for r in rows:
            table.add_row(escape(json.dumps(r, default=str) if isinstance(r, dict | list) else _plain(r)))
    out.print(table)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def seconds(instant: str) -> str:
    """An instant as people read it: to the second (the JSON keeps it whole)."""
    head, dot, _ = instant.partition(".")
    return f"{head}Z" if dot else instant


def styled(text: str, style: str | None) -> str:
    return f"[{style}]{escape(text)}[/]" if style else escape(text)


@contextmanager
def steps(total: int, enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """A progress bar on stderr, one step per call of the callback it yields (``step`` names the read)."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  console=console(stderr=True), transient=True, disable=not enabled) as bar:
        task = bar.add_task("Starting", total=total)
        seen = [0]

        def step(name: str) -> None:
            if seen[0]:
                bar.advance(task)
            seen[0] += 1
            bar.update(task, description=f"Reading {name}")

        yield step
        bar.update(task, completed=total)


# --- status -----------------------------------------------------------------------------------------
def _replica_cell(kind: dict[str, Any]) -> str:
    """RPO / target in minutes, or the initial replication's progress; Azure's health when not Normal."""
    detail = kind.get("replication") or {}
    target = f"{kind['rpo_hours'] * 60:.0f} min"
    if kind["state"] == "initial_replication":
        text = f"initial {detail['progress']} %" if isinstance(detail.get("progress"), int) else "initial replication"
    else:
        age = "none" if kind.get("age_hours") is None else f"{kind['age_hours'] * 60:.0f} min"
        text = f"{age} / {target}"
    if detail.get("health") and detail["health"] != "Normal":
        text = f"{detail['health']}: {text}"
    return styled(text, STATE_STYLE.get(kind["state"]))


def _kind_cell(kind: dict[str, Any] | None) -> str:
    if kind is None:
        return ""
    if kind["kind"] == "replica":
        return _replica_cell(kind)
    rpo = f"{kind['rpo_hours']:g} h"
    age = "none" if kind.get("age_hours") is None else f"{kind['age_hours']:.1f} h"
    policy = kind.get("immutability_policy")  # the newest point's immutabilityPolicy (snapshot kinds)
    held = f", {policy['type']} until {seconds(policy['policyExpirationTime'])}" if policy else ""
    return styled(f"{age} / {rpo}{held}", STATE_STYLE.get(kind["state"]))


def _state_cell(v: dict[str, Any]) -> str:
    """The VM's state; when kinds are missing, which (a fresh snapshot set and no restore point is not
    "not protected": it is missing its restore point)."""
    text = v["state"].replace("_", " ")
    if v.get("missing"):
        kinds = ", ".join(KIND_WORDS.get(k, k) for k in v["missing"])
        text += f": {kinds}" if v["state"] == "missing" else f" (missing {kinds})"
    if v.get("not_immutable"):  # a kind its policy makes immutable whose newest point lacks its immutabilityPolicy
        text += f" (not immutable: {', '.join(KIND_WORDS.get(k, k) for k in v['not_immutable'])})"
    return styled(text, STATE_STYLE.get(v["state"]))


def status(doc: dict[str, Any]) -> None:
    out = console()
    vms = doc["vms"]
    kinds = [k for k in KIND_TITLES if any(x["kind"] == k for v in vms for x in v["kinds"])]
    # What goes first in a narrow terminal: the reason (said again by the state), then the policy, the group, the
    # copies' ages; the VM, its state and its own points' ages stay.
    keep = {"vault": 7, "snapshot_set": 7, "restore_point": 7, "replica": 7, "snapshot_copy": 4,
            "restore_point_copy": 4, "copy": 4}
    cols = [Col("VM", 10, no_wrap=True), Col("Resource group", 5), Col("Policy", 3),
            Col("State", 9, no_wrap=out.width >= 120), *[Col(f"{KIND_TITLES[k]}\n{'RPO / target' if k == 'replica' else 'age / RPO'}",
                                   keep.get(k, 4), no_wrap=True, justify="right") for k in kinds], Col("Reason", 2)]
    rows = []
    for v in vms:
        by_kind = {x["kind"]: x for x in v["kinds"]}
        rows.append([escape(v["name"]), escape(v["resource_group"]), escape(v["policy"] or "(none)"), _state_cell(v),
                     *[_kind_cell(by_kind.get(k)) for k in kinds], escape(v["reason"])])
    if vms:
        out.print(fit(out, cols, rows, f"RPO compliance at {seconds(doc['evaluated'])} ({doc['source']})"))
    counts = doc["counts"]
    total = sum(counts.values())
    summary = ", ".join(styled(f"{n} {s.replace('_', ' ')}", STATE_STYLE[s] if n else None) for s, n in counts.items()
                        if n or s != "not_supported")  # said when there is one (a fleet without Uniform scale sets)
    shown = f" (showing {len(vms)}: {', '.join(doc['filter'])})" if doc["filter"] else ""
    out.print(f"{plural(total, 'VM')}: {summary}{shown}")
    gaps = {s: counts.get(s, 0) for s in ("breached", "not_protected", "missing", "not_supported")}
    if any(gaps.values()):
        words = {"breached": "breached", "not_protected": "not protected", "missing": "missing a kind of point",
                 "not_supported": "not supported (Uniform scale set instances: no kind of point covers them)"}
        out.print(styled(f"Not protected as their policies say: {plural(sum(gaps.values()), 'VM')} ("
                         + ", ".join(f"{n} {words[s]}" for s, n in gaps.items() if n) + "); exit code 2", "bold red"))
    excluded = doc.get("excluded") or []
    if excluded:  # no fleet members: not judged, not counted, but never silently left out
        out.print(f"Excluded (not fleet members): {plural(len(excluded), 'VM')}")
        for e in excluded:
            out.print(f"[dim]  {escape(e['name'])} ({escape(e['resource_group'])}): {escape(e['reason'])}[/]")
    for note in doc["notes"]:
        out.print(f"[dim]Note: {escape(note)}[/]")


# --- plan -------------------------------------------------------------------------------------------
def plan(doc: dict[str, Any]) -> None:
    out = console()
    sched, ret = doc["schedule"], doc["retention"]
    out.print(f"Plan at {seconds(doc['at'])} (a dry run: nothing was written)")
    jobs = Table(title="Scheduled protection: the slot in force", title_justify="left")
    for name in ("VM", "Kind", "Slot", "State", "Creates", "Copies to"):
        jobs.add_column(name, overflow="fold")
    for j in sched["jobs"]:
        if j["kind"] == "snapshot_set":
            creates = [f"snapshot {s['name']} ({'os' if s['lun'] is None else 'lun ' + str(s['lun'])})"
                       for s in j["snapshots"]]
            copies = [s["copy_name"] for s in j["snapshots"] if s["copy_name"]]
        else:
            rp = j["restore_point"]
            creates = [f"restore point {rp['name']} in {rp['collection']} ({rp['consistency']})"]
            copies = [f"{rp['name']} in {rp['copy_collection']}"] if rp["copy_collection"] else []
        state = styled(j["state"], {"new": "bold", "done": "green", "enqueued": "cyan"}[j["state"]])
        copy_text = (escape(j["copy_region"]) + ": " + escape(", ".join(copies))) if copies else "-"
        jobs.add_row(escape(j["vm_name"] or j["vm_id"]), j["kind"], j["slot"], state, escape("\n".join(creates)),
                     copy_text)
    if sched["jobs"]:
        out.print(jobs)
    if sched["skipped"]:
        skipped = Table(title="Skipped", title_justify="left")
        for name in ("VM", "Kind", "Reason"):
            skipped.add_column(name, overflow="fold")
        for k in sched["skipped"]:
            skipped.add_row(escape(k["vm_name"] or k["vm_id"]), k["kind"] or "(whole VM)",
                            styled(k["reason"], "yellow" if k["problem"] else None))
        out.print(skipped)
    states = {s: sum(1 for j in sched["jobs"] if j["state"] == s) for s in ("new", "enqueued", "done")}
    out.print(f"{plural(sched['vms'], 'VM')}: {plural(len(sched['jobs']), 'job')} ({states['new']} new, {states['enqueued']} enqueued, "
              f"{states['done']} done), {len(sched['skipped'])} skipped")
    if ret["changes"]:
        changes = Table(title="Retention: what a pass would change now", title_justify="left")
        for name in ("Artifact", "Kind", "VM", "Action", "Rule", "Reason", "Delete after"):
            changes.add_column(name, overflow="fold")
        for c in ret["changes"]:
            changes.add_row(escape(c["name"]), c["kind"], escape((c["vm_id"] or "").rsplit("/", 1)[-1]),
                            styled(c["action"], ACTION_STYLE[c["action"]]), c["rule"], escape(c["reason"]),
                            c["delete_after"] or "")
        out.print(changes)
    counts = {a: sum(by_rule.values()) for a, by_rule in ret["counts"].items()}
    acts = {a: sum(1 for c in ret["changes"] if c["action"] == a) for a in ("delete", "mark", "unmark")}
    out.print(f"Retention over {ret['artifacts']} artifacts: {acts['delete']} to delete, {acts['mark']} to mark, "
              f"{acts['unmark']} to unmark; {counts.get('keep', 0)} kept, {counts.get('skip', 0)} left alone")


# --- points -----------------------------------------------------------------------------------------
def points(doc: dict[str, Any]) -> None:
    out = console()
    vm = doc["vm"]
    where = f"exists, {vm['size']}" if vm["exists"] and vm.get("size") else "exists" if vm["exists"] else "gone"
    cols = [Col("#", 10, justify="right"), Col("Kind", 9), Col("Time", 8, no_wrap=True), Col("Region", 5),
            Col("Consistency", 2), Col("Complete", 7), Col("Copy", 6), Col("Immutable", 5)]
    rows = []
    for n, p in enumerate(doc["value"], 1):
        complete = styled("yes", "green") if p["complete"] else styled(f"no: {p.get('note') or ''}", "bold red")
        policy = p.get("immutabilityPolicy")  # Azure's: Locked | Unlocked, until its policyExpirationTime
        immutable = f"{policy['type']} until {seconds(policy['policyExpirationTime'])}" if policy else "no"
        rows.append([str(n), p["kind"], seconds(p["time"]), p["region"], p["consistency"], complete,
                     "isolated" if p.get("isolated") else "yes" if p["copy"] else "no", immutable])  # isolated: backup sub
    out.print(fit(out, cols, rows, f"Recovery points of {vm['id'].rsplit('/', 1)[-1]} ({where})"))
    # Ids whole, one to a line and never wrapped: they are what `restore` takes, copied as they are.
    out.print("Ids (POINT_ID for `vmkeeper restore`):")
    for n, p in enumerate(doc["value"], 1):
        out.print(f"{n:>3}  {escape(p['id'])}", soft_wrap=True)
    out.print(f"{plural(len(doc['value']), 'point')}, {sum(1 for p in doc['value'] if p['complete'])} complete")


# --- restore ----------------------------------------------------------------------------------------
def dry_run(doc: dict[str, Any]) -> None:
    out = console()
    p = doc["plan"]
    out.print(f"[green]Valid[/]: a {p['source_kind'].replace('_', ' ')} restored as {p['target_type']} in "
              f"{p['region']} (dry run: nothing was created)")
    out.print("Steps: " + " → ".join(p["steps"]))
    for item in p.get("creates") or []:
        out.print(f"  would create {item['type']} {escape(item['id'])}")


def step_text(record: dict[str, Any]) -> str:
    """Where a restore is: its state, and the step running (``step 2/3 create_vm``) or the steps done."""
    steps = record.get("steps") or []
    state = str(record.get("state"))
    running = next(((i, s["name"]) for i, s in enumerate(steps, 1) if s["state"] == "running"), None)
    if running:
        return f"{state}: step {running[0]}/{len(steps)} {running[1]}"
    done = sum(1 for s in steps if s["state"] == "done")
    return f"{state}: {done}/{len(steps)} steps done" if steps else state


@contextmanager
def restore_progress(enabled: bool = True) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A bar of the restore's percent, named for its step; outside a terminal (CI, a log), a line per change."""
    err = console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  console=err, transient=True, disable=not enabled or not err.is_terminal) as bar:
        task = bar.add_task("Submitted", total=100)
        told = [""]

        def update(record: dict[str, Any]) -> None:
            text = step_text(record)
            bar.update(task, completed=record.get("percent", 0), description=text)
            if enabled and not err.is_terminal and text != told[0]:
                err.print(escape(f"{record.get('id', '')}: {text} ({record.get('percent', 0)} %)"), soft_wrap=True)
            told[0] = text

        yield update


def accepted(doc: dict[str, Any], as_json: bool) -> None:
    """The id at once: whatever happens to this command, the operator can follow, show or cancel the restore."""
    line = (f"Restore {doc['id']} accepted: follow it with `vmkeeper restore wait {doc['id']}` "
            f"(show, cancel: `vmkeeper restore show|cancel {doc['id']}`)")
    if as_json:  # stdout is the answer's alone
        click.echo(line, err=True)
    else:
        console().print(escape(line), soft_wrap=True)


def restore(record: dict[str, Any], location: str | None = None, waited: bool = True) -> None:
    out = console()
    state = record["state"]
    out.print(f"Restore {record['id']}: {styled(state, RESTORE_STYLE.get(state))} ({record.get('percent', 0)} %)")
    request = record.get("request") or {}
    if request.get("vm"):
        target = (request.get("target") or {}).get("type", "")
        out.print(f"  VM {escape(str(request['vm']).rsplit('/', 1)[-1])} → {escape(str(target))}, asked by "
                  f"{escape(str(record.get('principal') or ''))} at {seconds(str(record.get('created_at') or ''))}")
    steps = record.get("steps") or []
    for n, s in enumerate(steps, 1):
        took = f" in {s['seconds']:.1f} s" if isinstance(s.get("seconds"), int | float) else ""
        out.print(f"  {n}/{len(steps)} {s['name']}: {s['state']}{took}")
    for rid in record.get("resources") or []:
        out.print(f"  created {escape(rid)}", soft_wrap=True)
    if record.get("error"):
        e = record["error"]
        out.print(styled(f"Error {e.get('code', '')} in {e.get('step') or 'a step'}: {e.get('message', '')}", "red"))
    if not waited and location:
        out.print(f"Follow it with `vmkeeper restore wait {record['id']}` (or at {escape(location)})", soft_wrap=True)


def restores(doc: dict[str, Any]) -> None:
    """restore list: one row each, newest first; columns that matter least go first when the terminal is narrow."""
    out = console()
    rows = doc.get("value") or []
    if not rows:
        out.print("No restores yet.")
        return
    cols = [Col("Id", 9, no_wrap=True), Col("VM", 8), Col("Target", 4), Col("State", 9), Col("Step", 3),
            Col("Created", 2, no_wrap=True), Col("By", 1)]
    data = []
    for r in rows:
        req = r.get("request") or {}
        data.append([r["id"], escape(str(req.get("vm", "")).rsplit("/", 1)[-1]),
                     str((req.get("target") or {}).get("type", "")), styled(r["state"], RESTORE_STYLE.get(r["state"])),
                     escape(step_text(r).split(": ", 1)[-1] if r["state"] not in ("succeeded",) else "-"),
                     seconds(str(r.get("created_at") or "")), escape(str(r.get("principal") or ""))])
    out.print(fit(out, cols, data, title="Restores, newest first"))
    if doc.get("nextLink"):
        out.print(f"[dim]More: --top (at most 100) shows more; these are the newest {len(rows)}.[/]")


# --- drills ---------------------------------------------------------------------------------------
def duration(secs: float | None) -> str:
    """Seconds as people read them: 42 s, 3.5 min, 2.1 h, 1.5 d; ``-`` when not measured (yet)."""
    if secs is None:
        return "-"
    for limit, unit, size in ((90, "s", 1), (90 * 60, "min", 60), (48 * 3600, "h", 3600)):
        if secs < limit:
            return f"{secs / size:.0f} s" if unit == "s" else f"{secs / size:.1f} {unit}"
    return f"{secs / 86400:.1f} d"


def drills(doc: dict[str, Any]) -> None:
    out = console()
    rows = doc["drills"]
    if not rows:
        vm = doc["filter"]["vm"]
        out.print(f"No DR drill recorded{' for ' + escape(vm) if vm else ''} yet (a policy's drill block; the "
                  "plan_drills timer).")
        return
    title = "Newest DR drill of each VM" if doc["filter"]["last"] else "DR drills, newest first"
    table = Table(title=title, title_justify="left")
    for name in ("Drill", "VM", "Started", "Result", "RTO", "RPO achieved", "Point", "Cleanup", "Reason"):
        table.add_column(name, overflow="fold", no_wrap=name in ("Drill", "Started", "RTO", "RPO achieved"),
                         justify="right" if name in ("RTO", "RPO achieved") else "left")
    for d in rows:
        cleanup = (d["cleanup"] or "-") + (f": group {d['group']}" if d.get("group") else "")
        table.add_row(d["id"], escape(d["vm_name"]), seconds(d["started"]),
                      styled(d["result"], DRILL_STYLE.get(d["result"])), duration(d["rto_seconds"]),
                      duration(d["rpo_seconds"]), d["point_kind"].replace("_", " "), escape(cleanup), escape(d["reason"]))
    out.print(table)
    counts = doc["counts"]
    summary = ", ".join(styled(f"{n} {s}", DRILL_STYLE[s] if n else None) for s, n in counts.items())
    vms = len({d["vm_id"] for d in rows})
    out.print(f"{plural(len(rows), 'drill')} of {plural(vms, 'VM')}: {summary}")
    if doc["newest_failed"]:
        names = ", ".join(v.rsplit("/", 1)[-1] for v in doc["newest_failed"])
        out.print(styled(f"Newest drill failed: {names}", "bold red"))


def failures(doc: dict[str, Any]) -> None:
    out = console()
    rows = doc["failed"]
    if not rows:
        out.print(f"Nothing failed in the last {plural(doc['days'], 'day')}.")
        return
    cols = [Col("Time", 3, no_wrap=True), Col("Kind", 9), Col("Step", 6), Col("Resource", 8), Col("Error", 7),
            Col("Message", 5), Col("What to do", 4)]
    data = [[seconds(r["time"] or ""), escape(r["kind"]), escape(r["step"] or "-"),
             escape((r["resource"] or "").rsplit("/", 1)[-1]), styled(r["code"] or "-", "red"), escape(r["message"]),
             escape(r["todo"])] for r in rows]
    out.print(fit(out, cols, data, f"Failed in the last {plural(doc['days'], 'day')}, newest first"))
    out.print(f"{plural(len(rows), 'failure')}; -o json has each one's whole resource id and message")


def money(value: float, currency: str) -> str:
    return f"{value:,.2f} {currency}" if value >= 0.01 or value == 0 else f"<0.01 {currency}"


def trend(daily: dict[str, float], days: int = 14) -> str:
    """The last ``days`` days as a sparkline (blocks from the series' own least to most)."""
    values = [v for _, v in sorted(daily.items())][-days:]
    if not values:
        return "-"
    low, high = min(values), max(values)
    blocks = "▁▂▃▄▅▆▇█"
    return "".join(blocks[0 if high == low else int((v - low) / (high - low) * (len(blocks) - 1))] for v in values)


def cost(doc: dict[str, Any]) -> None:
    out = console()
    cols = [Col("Policy", 9), Col("Month to date", 8, justify="right"), Col("of it estimated", 5, justify="right"),
            Col("Last 30 days", 7, justify="right"), Col("Trend (14 days)", 3, no_wrap=True)]
    rows = [[escape(p["name"]), money(p["month_to_date"], p["currency"]), money(p["estimate"], p["currency"]),
             money(p["last_30_days"], p["currency"]), trend(p["daily"])] for p in doc["policies"]]
    out.print(fit(out, cols, rows, f"Cost per policy (run {doc['at']})"))
    cols = [Col("VM", 9), Col("Policy", 6), Col("Month to date", 8, justify="right"),
            Col("of it estimated", 4, justify="right"), Col("Last 30 days", 7, justify="right"),
            Col("Trend (14 days)", 3, no_wrap=True)]
    rows = [[escape(v["name"].rsplit("/", 1)[-1]), escape(v["policy"]), money(v["month_to_date"], v["currency"]),
             money(v["estimate"], v["currency"]), money(v["last_30_days"], v["currency"]), trend(v["daily"])]
            for v in doc["vms"]]
    out.print(fit(out, cols, rows, "Cost per VM"))
    deferred = doc["run"].get("deferred") or {}
    for sub, until in sorted(deferred.items()):
        after = doc["run"].get("pagesRead", {}).get(sub)
        out.print(styled(f"subscription {sub}: Cost Management throttled the query"
                         f"{f' after {after} page(s), not kept' if after else ''}; asked again after {until}", "yellow"))
    for skip in doc["run"].get("budgetsSkipped") or []:
        out.print(styled(f"policy {escape(str(skip['policy']))}: budget ({skip['budgetCurrency']}) not compared, its cost "
                         f"is in {', '.join(map(str, skip['costCurrencies']))}", "yellow"))
    if doc["run"].get("unpriced"):
        out.print(styled(f"not estimated (no retail price): points in {escape(', '.join(doc['run']['unpriced']))}",
                         "yellow"))
    out.print("untagged: artifacts without a vmkeeper-vm value and the vaults (Azure Backup bills the vault); "
              "-o json has the whole ids and daily series")


def report_written(path: str, data: dict[str, Any]) -> None:
    evaluated = f"compliance evaluated {data['evaluated']}" if data.get("evaluated") else "compliance not evaluated yet"
    console().print(f"Report written to {escape(path)} ({plural(len(data.get('vms') or []), 'VM')}; {evaluated})")


def error(message: str) -> None:
    console(stderr=True).print(styled(message, "red"))
