"""``vmkeeper``: the operator's command line (click). Commands are thin: options in, a service of the
``Wiring`` (or the restore HTTP API) called, the answer rendered by shared/cli/output.py.

Exit codes: 0 ok; 1 an error (bad input, a setting, Azure, the API; the message names the option or
setting); 2 only from ``status``, when any VM vmkeeper should protect is breached, missing a kind of
point or not protected; 3 only from ``drills``, when any VM's newest DR drill failed (a CI pipeline can
gate on either).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from .. import __version__
from .api_client import OPTIONS as API_OPTIONS
from .context import (
    EXIT_BREACHED,
    EXIT_DRILL_FAILED,
    EXIT_ERROR,
    FORMATS,
    CliError,
    current,
    output_format,
    parse_time,
    start,
    translate,
)

STATES = ("breached", "not_protected", "missing", "not_supported", "met", "opted_out")  # shared/report/model.py STATES (not imported: cold)
UNPROTECTED = ("breached", "not_protected", "missing", "not_supported")  # shared/report/model.py UNPROTECTED: what `status` fails on
TARGET_TYPES = ("disks", "vm", "os_disk", "original_location")  # shared/restore/request.py TARGET_TYPES but:
LEASED_TARGETS = ("files", "export")  # these, which `vmkeeper files` and `vmkeeper export` make

EPILOG = """\b
Exit codes: 0 ok; 1 error (the message names the option or setting);
2 `status` found a VM breached, missing a kind of point or not protected;
3 `drills` found a VM whose newest DR drill failed.
\b
Settings: the app's own (VMKEEPER_SUBSCRIPTIONS, VMKEEPER_POLICY_FILE,
AzureWebJobsStorage, ...) from --settings FILE (its "Values") or the
environment. Azure: your `az login` (`make up`'s local stack:
VMKEEPER_CLI_CREDENTIAL=local-static, loopback endpoints only).
"""


class VmkeeperGroup(click.Group):
    """Exit codes as documented: a usage error is 1 like any other (click's own 2 is ``status``'s
    breach here), errors met in the world are told as such, and with --json the error is JSON too."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            err = translate(exc)
            if err is None:
                raise
            raise err from exc

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(argv, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            fmt = output_format(argv)
            if fmt in ("json", "jsonc", "yaml"):  # a machine reads the error as it reads the answer
                from .output import emit

                doc = exc.to_json() if isinstance(exc, CliError) else {"error": {
                    "message": exc.format_message(), "field": _param_of(exc)}}
                emit(doc, fmt)
            exc.show()
            sys.exit(exc.exit_code if isinstance(exc, CliError) else EXIT_ERROR)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(EXIT_ERROR)
        sys.exit(rv if isinstance(rv, int) else 0)


def _param_of(exc: click.ClickException) -> str | None:
    param = getattr(exc, "param", None)
    if param is None:
        return None
    return param.opts[0] if getattr(param, "opts", None) and param.param_type_name == "option" else param.human_readable_name


def _set(attr: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is None or value is False:
            return
        run = current(ctx)
        if attr == "settings":
            run.use_settings(value)
        elif attr == "json":
            run.output = "json"
        else:
            setattr(run, attr, value.lower() if attr == "output" else value)
    return callback


def global_options(f: Callable | None = None, *, output: bool = True) -> Callable:
    """The options every command takes before or after its name, as the Azure CLI's: -o/--output, --query,
    --subscription, --settings, and --json (= -o json, kept from before -o)."""
    def wrap(f: Callable) -> Callable:
        opts = [click.option("--json", "as_json", is_flag=True, expose_value=False, callback=_set("json"),
                             help="Machine-readable JSON on stdout (stable keys), nothing else there (= -o json)."),
                click.option("--query", metavar="JMESPATH", expose_value=False, callback=_set("query"),
                             help="A JMESPath query over the JSON the command would print (e.g. \"vms[?state=='met'].name\")."),
                click.option("--subscription", metavar="ID", expose_value=False, callback=_set("subscription"),
                             help="The subscription a VM given by -g/-n is in (default: the only one in "
                             "VMKEEPER_SUBSCRIPTIONS)."),
                click.option("--settings", metavar="FILE", expose_value=False, callback=_set("settings"),
                             help='A local.settings.json-style file: its "Values" are the app settings to use '
                             "(default: the environment).")]
        if output:
            opts.insert(0, click.option("-o", "--output", type=click.Choice(FORMATS, case_sensitive=False),
                                        expose_value=False, callback=_set("output"),
                                        help="Output format (default: table, for people)."))
        for opt in reversed(opts):
            f = opt(f)
        return f
    return wrap(f) if f is not None else wrap


json_option = global_options  # the commands' own copy of the global options


@click.group(cls=VmkeeperGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"],
                                                                  "max_content_width": 110})
@global_options
@click.version_option(__version__, prog_name="vmkeeper")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """vmkeeper: automatic backup for Azure VMs, from the operator's side."""
    start(ctx)


# --- a VM, as the Azure CLI names one ----------------------------------------------------------------
def _vm(value: str, field: str = "VM_ID") -> Any:
    from ..access import BadId, parse_id

    try:
        return parse_id(value, "vm")
    except BadId as exc:
        raise CliError(f"{field}: {exc}", field) from None


def vm_options(f: Callable | None = None, *, ids: bool = True) -> Callable:
    """A VM as the Azure CLI names one: -g/--resource-group and -n/--name (in --subscription), or --ids (its id)."""
    def wrap(f: Callable) -> Callable:
        opts = [click.option("-g", "--resource-group", "resource_group", metavar="NAME",
                             help="The VM's resource group (with -n)."),
                click.option("-n", "--name", "name", metavar="NAME", help="The VM's name (with -g).")]
        if ids:
            opts.append(click.option("--ids", "ids", metavar="ID", help="The VM's resource id (as VM_ID)."))
        for opt in reversed(opts):
            f = opt(f)
        return f
    return wrap(f) if f is not None else wrap


def subscription_for(what: str) -> str:
    """--subscription, else the only subscription VMKEEPER_SUBSCRIPTIONS names; else an error naming --subscription."""
    from ..access import BadId, parse_id

    run = current()
    given = (run.subscription or "").strip()
    if given:
        try:
            return parse_id(f"/subscriptions/{given}/resourceGroups/x", "resource_group").subscription
        except BadId:
            raise CliError(f"--subscription: {given!r} is not a subscription id (a GUID)", "--subscription") from None
    subs = [x.strip() for x in (run.setting("VMKEEPER_SUBSCRIPTIONS") or "").split(",") if x.strip()]
    if len(subs) == 1:
        return subs[0].lower()
    listed = f"VMKEEPER_SUBSCRIPTIONS names {len(subs)}: {', '.join(subs)}" if subs else "VMKEEPER_SUBSCRIPTIONS is not set"
    raise CliError(f"--subscription: required to find {what} ({listed})", "--subscription")


def resolve_vm(vm_id: str | None, group: str | None, name: str | None, ids: str | None = None,
               field: str = "VM_ID", required: bool = True) -> Any:
    """The VM meant: VM_ID (or --ids), or -g/-n in --subscription; exactly one way. None when not given and not
    ``required``."""
    given = [x for x in (vm_id, ids) if x is not None]
    if len(given) > 1 or (given and (group is not None or name is not None)):
        raise CliError(f"{field} / --ids / -g -n: give the VM one way (its id, or -g and -n)", field)
    if given:
        return _vm(given[0], field if vm_id is not None else "--ids")
    if name is None:
        if group is not None:
            raise CliError("-n/--name: required with -g/--resource-group (the VM's name)", "--name")
        if required:
            raise CliError(f"{field}: required (the VM's id, or -g/--resource-group and -n/--name)", field)
        return None
    if group is None:
        raise CliError("-g/--resource-group: required with -n/--name (the VM's resource group)", "--resource-group")
    sub = subscription_for(f"VM {group}/{name}")
    from ..access import BadId, parse_id

    try:
        return parse_id(f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{name}",
                        "vm")
    except BadId:
        raise CliError(f"-g/-n: {group!r}/{name!r} is not a resource group and VM name", "--name") from None


def named_by(vm_id: str | None, ids: str | None, field: str = "VM_ID") -> str:
    """The option the operator named the VM with (an error about that VM names it)."""
    return field if vm_id is not None else "--ids" if ids is not None else "--name"


def no_such_vm(vm: Any, field: str) -> CliError:
    return CliError(f"{field}: no VM {vm.name} in resource group {vm.group} of subscription {vm.subscription} "
                    "(mistyped? `vmkeeper status` lists the fleet)", field, vm=vm.id)


def split_group(group: str | None) -> tuple[str | None, str | None]:
    """restore's and export's -g: a name is the VM's resource group; a whole resource group id is, as before -g
    named the VM, the target's (--target-resource-group)."""
    if group is not None and group.strip().lower().startswith("/subscriptions/"):
        return None, group
    return group, None


# --- status -------------------------------------------------------------------------------------------
@cli.command(epilog="\b\nExit codes: 0 every VM met or opted out; 1 error; 2 at least one VM of the fleet is\n"
             "breached, missing a kind of point, not protected or not supported (a Uniform scale\n"
             "set's instance; opt its set out to accept it) whatever --state shows, so a pipeline\n"
             "step can fail on it.")
@click.option("--recorded", is_flag=True, help="Show the last recorded evaluation (the compliance timer's) "
              "instead of evaluating now.")
@click.option("--state", "states", multiple=True, type=click.Choice(STATES, case_sensitive=False),
              help="Show only VMs in this state (repeatable).")
@vm_options(ids=False)
@json_option
@click.pass_context
def status(ctx: click.Context, recorded: bool, states: tuple[str, ...], resource_group: str | None,
           name: str | None) -> None:
    """RPO compliance of every VM: each kind of point's age against its RPO, and the kinds missing. Reads only."""
    from dataclasses import asdict

    from . import output

    run = current()
    w = run.wiring()
    if recorded:
        evaluation = w.compliance.recorded()
        if evaluation is None:
            raise CliError("--recorded: no evaluation is recorded yet (the compliance timer has not run); "
                           "leave out --recorded to evaluate now", "--recorded")
    else:
        with output.steps(6, enabled=not run.as_json) as progress:
            evaluation = w.compliance.evaluate(datetime.now(UTC), progress)
            progress("judging")
    from ..instants import format_instant

    def picked(v: Any) -> bool:
        return ((resource_group is None or v.resource_group.lower() == resource_group.lower())
                and (name is None or v.name.lower() == name.lower()))

    if (resource_group or name) and not any(picked(v) for v in [*evaluation.vms, *evaluation.excluded]):
        field, what = ("--name", f"VM {name}") if name else ("--resource-group", "VM")
        where = f" in resource group {resource_group}" if resource_group else ""
        raise CliError(f"{field}: no {what}{where} in the fleet (VMKEEPER_SUBSCRIPTIONS); mistyped? `vmkeeper "
                       "status` lists them", field)
    wanted = {s.lower() for s in states}
    doc = {"source": "recorded" if recorded else "live", "evaluated": format_instant(evaluation.at),
           "counts": evaluation.counts(), "filter": sorted(wanted),
           "summary": [asdict(s) for s in evaluation.summary()],
           "vms": [asdict(v) for v in evaluation.vms if (not wanted or v.state in wanted) and picked(v)],
           "notes": list(evaluation.notes), "excluded": [asdict(e) for e in evaluation.excluded]}
    current().emit(doc, output.status)
    if any(doc["counts"].get(s) for s in UNPROTECTED):
        ctx.exit(EXIT_BREACHED)


# --- plan ---------------------------------------------------------------------------------------------
@cli.command()
@click.option("--at", "at", metavar="TIME", help="Plan this instant instead of now (ISO 8601 with a UTC offset, "
              "e.g. 2026-11-25T06:00:00Z).")
@json_option
def plan(at: str | None) -> None:
    """What the timer's next run would create (per VM: snapshots, restore points, copies, by name; skips
    with reasons) and what retention would mark or delete now (rule and reason). A dry run: writes nothing."""
    from . import output
    from .preview import preview

    when = parse_time(at) if at is not None else datetime.now(UTC)
    run = current()
    with output.steps(4, enabled=not run.as_json) as progress:
        doc = preview(run.wiring(), when, progress)
    current().emit(doc, output.plan)


# --- points -------------------------------------------------------------------------------------------
@cli.command()
@click.argument("vm_id", required=False)
@vm_options
@json_option
def points(vm_id: str | None, resource_group: str | None, name: str | None, ids: str | None) -> None:
    """The recovery point catalogue of VM_ID (its ARM id; or -g/-n, --ids): kind, time, region, complete, copy,
    and the id a restore takes. Works for a VM that no longer exists."""
    from . import output

    vm = resolve_vm(vm_id, resource_group, name, ids)
    run = current()
    restores = run.wiring().restores
    if not restores.in_fleet(vm):
        raise CliError(f"VM_ID: subscription {vm.subscription} is not in VMKEEPER_SUBSCRIPTIONS", "VM_ID")
    doc = restores.catalogue(vm)
    if not doc["vm"]["exists"] and not doc["value"]:  # a VM gone keeps its points; one never there has none
        raise no_such_vm(vm, named_by(vm_id, ids))
    run.emit(doc, output.points)


# --- drills -------------------------------------------------------------------------------------------
@cli.command(epilog="\b\nExit codes: 0 no VM's newest drill failed; 1 error; 3 the newest drill of at least one\n"
             "VM failed (of the VMs asked about: all, or --vm's), so a pipeline step can fail on it.\n"
             "An older failure followed by a passed drill is history, not a failure now.")
@click.option("--vm", "vm_id", metavar="VM_ID", help="Only this VM's drills (its ARM id; or -g/-n, --ids).")
@vm_options
@click.option("--last", is_flag=True, help="Only each VM's newest drill.")
@json_option
@click.pass_context
def drills(ctx: click.Context, vm_id: str | None, resource_group: str | None, name: str | None, ids: str | None,
           last: bool) -> None:
    """DR drill history, newest first: per drill the VM, when it asked for its restore, the result, RTO
    (restore requested → VM running with its agent Ready), the RPO achieved (the drilled point's age),
    the kind of point, whether its isolated group was removed, and why it failed. From what vmkeeper
    recorded: reads no ARM (but the VM itself, for --vm with no drill recorded: a mistyped VM is an error)."""
    from dataclasses import asdict

    from . import output

    run = current()
    vm = resolve_vm(vm_id, resource_group, name, ids, field="--vm", required=False)
    w = run.wiring()
    if vm is not None and vm.subscription.lower() not in {s.lower() for s in w.drill_settings.subscriptions}:
        raise CliError(f"--vm: subscription {vm.subscription} is not in VMKEEPER_SUBSCRIPTIONS", "--vm")
    rows = [asdict(d) for d in w.drills.history() if vm is None or d.vm_id.lower() == vm.id.lower()]
    if vm is not None and not rows and w.restores.reader.source_vm(vm) is None:
        raise no_such_vm(vm, named_by(vm_id, ids, "--vm"))
    newest: dict[str, dict[str, Any]] = {}
    for r in rows:  # newest first: a VM's first row is its newest drill
        newest.setdefault(r["vm_id"].lower(), r)
    shown = list(newest.values()) if last else rows
    doc = {"filter": {"vm": vm.id if vm else None, "last": last},
           "counts": {s: sum(1 for r in shown if r["result"] == s) for s in ("passed", "failed", "running")},
           "newest_failed": sorted(v for v, r in newest.items() if r["result"] == "failed"),
           "drills": [{**r, "vm_name": r["vm_id"].rsplit("/", 1)[-1], "group": _drill_group(r)} for r in shown]}
    current().emit(doc, output.drills)
    if doc["newest_failed"]:
        ctx.exit(EXIT_DRILL_FAILED)


def _drill_group(row: dict[str, Any]) -> str | None:
    """The drill's isolated resource group while it may still be there (kept for a look, being removed, or its
    removal refused); None once removed or never made."""
    from ..drill.planner import group_name

    return group_name(row["id"]) if row["cleanup"] in ("kept", "removing", "refused") else None


# --- jobs ---------------------------------------------------------------------------------------------
@cli.command(epilog="\b\nFrom what vmkeeper recorded (alerts outbox, restores table): reads no ARM.\n"
             "Exit codes: 0 listed (failures found or not); 1 error.")
@click.option("--failed", is_flag=True, required=True, help="The jobs, restores and drills that failed.")
@click.option("--days", type=click.IntRange(1, 30), default=7, show_default=True, help="How far back.")
@json_option
def jobs(failed: bool, days: int) -> None:
    """What failed lately: kind, step, resource, Azure's error code and message, and what to do."""
    from . import output
    from .failures import gather

    run = current()
    rows = gather(run.wiring(), datetime.now(UTC), days)
    run.emit({"days": days, "failed": rows}, output.failures)


# --- cost ---------------------------------------------------------------------------------------------
@cli.command(epilog="\b\nExit codes: 0 shown; 1 error (no cost run recorded yet).")
@click.option("--policy", "policy_name", metavar="NAME", help="Only this policy and its VMs.")
@json_option
def cost(policy_name: str | None) -> None:
    """What vmkeeper's points cost, per VM and per policy: month to date (actual + the estimate for points newer
    than the cost data), last 30 days, and the daily series (-o json). From the cost timer's last run; reads only."""
    from . import output

    run = current()
    recorded = run.wiring().cost.recorded()
    if recorded is None:
        raise CliError("no cost run is recorded yet (the cost timer, VMKEEPER_COST_SCHEDULE, has not run)")
    if policy_name:
        wanted = policy_name.lower()
        if not any(p["name"] == wanted for p in recorded["policies"]):
            known = ", ".join(p["name"] for p in recorded["policies"]) or "none"
            raise CliError(f"--policy: no cost recorded for policy {policy_name!r} (recorded: {known})", "--policy")
        recorded = {**recorded, "policies": [p for p in recorded["policies"] if p["name"] == wanted],
                    "vms": [v for v in recorded["vms"] if v["policy"] == wanted]}
    run.emit({**recorded, "filter": {"policy": policy_name.lower() if policy_name else None}}, output.cost)


# --- report -------------------------------------------------------------------------------------------
def _report_output(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """report's -o: a format like every command's, or (as before -o was the format) the page's file."""
    if value is None:
        return None
    if value.lower() in FORMATS:
        current(ctx).output = value.lower()
        return None
    return value


@cli.command(epilog="\b\n-o FILE (a value that is no format) is --file FILE, as before -o/--output was the format.")
@click.option("--file", "path", metavar="FILE", help="Where to write the page (default: vmkeeper-report.html; with "
              "-o json/yaml/..., only if given).")
@click.option("-o", "--output", "legacy_path", metavar="FORMAT|FILE", callback=_report_output,
              help=f"Output format ({'|'.join(FORMATS)}; default: table, for people).")
@global_options(output=False)
def report(path: str | None, legacy_path: str | None) -> None:
    """The report page (compliance, points per day, deletions, failures, restores) as one HTML file, from
    what vmkeeper recorded; with -o json (yaml, ...), its data instead."""
    from pathlib import Path

    from . import output

    run = current()
    option = "--file" if path or not legacy_path else "--output"
    path = path or legacy_path
    reports, now = run.wiring().reports, datetime.now(UTC)
    doc = reports.data(now).to_json()
    if run.as_json:
        output.emit(doc, run.output, run.query)
    target = path or (None if run.as_json else "vmkeeper-report.html")
    if target is None:
        return
    page = reports.html(now)
    try:
        Path(target).write_text(page, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{option}: cannot write {target!r} ({exc.strerror or exc})", option) from None
    if not run.as_json:
        output.report_written(str(Path(target).resolve()), doc)


# --- files, export: a point's disks readable for a while --------------------------------------------------
def api_options(f: Callable) -> Callable:
    """How a command reaches the app's HTTP API (as `vmkeeper restore`)."""
    for opt in reversed((
            click.option("--api", metavar="URL", help="The app's URL (default: VMKEEPER_API_URL)."),
            click.option("--key", metavar="KEY", help="The function key (default: VMKEEPER_API_KEY)."),
            click.option("--scope", metavar="SCOPE", help="Get an Easy Auth bearer token for this scope (default: "
                         "VMKEEPER_API_SCOPE)."),
            click.option("--principal", metavar="BASE64", help="Local Functions host only: an X-MS-CLIENT-PRINCIPAL "
                         "value (default: VMKEEPER_API_PRINCIPAL)."),
            click.option("--ca-bundle", metavar="FILE", help="CA bundle to verify the API's TLS certificate (default: "
                         "VMKEEPER_API_CA_BUNDLE, else the system's)."))):
        f = opt(f)
    return f


def follow_options(f: Callable) -> Callable:
    for opt in reversed((
            click.option("--no-wait", is_flag=True, help="Return once accepted; do not follow it."),
            click.option("--wait", "wait", type=click.FloatRange(min=1), default=3600, show_default=True,
                         metavar="SECONDS", help="How long to follow it."),
            click.option("--poll-interval", type=click.FloatRange(min=0.05), metavar="SECONDS",
                         help="Seconds between looks (default: the API's Retry-After)."))):
        f = opt(f)
    return f


def api_client(api: str | None, key: str | None, scope: str | None, principal: str | None, ca_bundle: str | None,
               options: dict[str, str] | None = None) -> Any:
    import os

    from .api_client import RestoreClient

    run = current()
    url = api or run.setting("VMKEEPER_API_URL")
    if not url:
        raise CliError("--api: required (or VMKEEPER_API_URL): the app's URL", "--api")
    bundle = ca_bundle or run.setting("VMKEEPER_API_CA_BUNDLE")
    if bundle and not os.path.isfile(bundle):
        raise CliError(f"--ca-bundle: no such file {bundle!r}", "--ca-bundle")
    scope = scope or run.setting("VMKEEPER_API_SCOPE")
    token = (lambda: run.credential().get_token(scope).token) if scope else None
    return RestoreClient(url, key=key or run.setting("VMKEEPER_API_KEY"), token=token,
                         principal=principal or run.setting("VMKEEPER_API_PRINCIPAL"), ca_bundle=bundle, options=options)


def _point(value: str) -> str:
    from ..restore.request import point_kind

    try:
        point_kind(value)
    except ValueError as exc:
        raise CliError(f"--point: {exc}", "--point") from None
    return value


def _make_leased(body: dict[str, Any], question: str, dry_run: bool, yes: bool, no_wait: bool, wait: float,
                 poll_interval: float | None, idempotency_key: str | None, client: Any) -> dict[str, Any] | None:
    """Shared by files and export: the plan shown (the API's dry run), confirmed, sent, its id told at once, then
    followed to ready. None when nothing more is to be done (a dry run, --no-wait)."""
    from . import files as FL
    from . import output

    run = current()
    _, shown, _ = client.create({**body, "dry_run": True})
    if dry_run:
        current().emit(shown, FL.plan)
        return None
    if not run.as_json:
        FL.plan(shown, dry_run=False)
    FL.confirm(question, yes)
    _, doc, location = client.create(body, idempotency_key)
    FL.accepted(doc, run.as_json)
    if no_wait or location is None:
        run.emit(doc, lambda d: FL.ended(d, location, waited=False))
        return None
    with output.restore_progress(enabled=not run.as_json) as update:
        record = client.follow(location, update, interval=poll_interval, wait=wait)
    if record["state"] != "ready" and not run.as_json:  # with --json, the error carries the record
        output.restore(record)
    FL.check_ready(record)
    return record


class DefaultCommandGroup(click.Group):
    """A group whose arguments, unless they start with a subcommand's name (or help), go to its hidden ``default``
    command: ``vmkeeper files VM_ID ...`` is ``files attach``, ``vmkeeper restore VM_ID POINT_ID ...`` is
    ``restore create``, beside ``files done ID`` or ``restore show ID``."""

    default = ""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default, *args]
        return super().parse_args(ctx, args)


class FilesGroup(DefaultCommandGroup):
    default = "attach"  # ``vmkeeper files VM_ID ...`` makes a file recovery; ``vmkeeper files done ID`` ends one


@cli.group(cls=FilesGroup, epilog="\b\nvmkeeper files VM_ID --point POINT_ID --attach-to VM2_ID [--luns 0,1] [--os-disk]\n"
           "    [--hours N] [--dry-run] [--yes]: a point's disks made and attached, read-only, to VM2 (in the\n"
           "    point's region, at free LUNs; its own disks untouched) until done or N hours (default 12, at most 72).\n"
           "vmkeeper files done ID: the disks detached and deleted now (a file recovery or an export).\n"
           "\b\nAuthentication as for `vmkeeper restore` (app role Restore.Operator).")
def files() -> None:
    """File-level recovery: a recovery point's disks attached to a VM of yours for a while, to copy files off them."""


@files.command("attach", hidden=True, epilog="\b\nExit codes: 0 ready (or valid, with --dry-run; accepted, with "
               "--no-wait); 1 refused,\nnot confirmed, failed or not ready after --wait seconds.")
@click.argument("vm_id", required=False)
@vm_options
@click.option("--point", "point_id", required=True, metavar="POINT_ID", help="The point (an id from `vmkeeper points`).")
@click.option("--attach-to", required=True, metavar="VM_ID", help="Your VM the disks are attached to (its id; a bare "
              "name: a VM in the source VM's resource group).")
@click.option("--luns", metavar="LIST", help="The point's data disks to attach, e.g. 0,1 (default: every data disk).")
@click.option("--os-disk", is_flag=True, help="Attach the point's OS disk too (as a data disk).")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), metavar="N",
              help="How long the disks stay (default 12, at most 72).")
@click.option("--dry-run", is_flag=True, help="Show what would be made, then stop.")
@click.option("--yes", is_flag=True, help="Answer the confirmation (a pipeline).")
@click.option("--idempotency-key", metavar="KEY", help="Makes a repeated command the same recovery.")
@follow_options
@api_options
@json_option
def files_attach(vm_id: str | None, resource_group: str | None, name: str | None, ids: str | None, point_id: str, attach_to: str, luns: str | None, os_disk: bool, hours: float | None,
                 dry_run: bool, yes: bool, idempotency_key: str | None, no_wait: bool, wait: float,
                 poll_interval: float | None, api: str | None, key: str | None, scope: str | None,
                 principal: str | None, ca_bundle: str | None) -> None:
    """VM_ID's disks from --point attached to --attach-to until done or expiry."""
    from . import files as FL

    vm = resolve_vm(vm_id, resource_group, name, ids)
    if "/" not in attach_to:  # a name: beside the source VM
        attach_to = f"/subscriptions/{vm.subscription}/resourceGroups/{vm.group}/providers/Microsoft.Compute/" \
                    f"virtualMachines/{attach_to}"
    target = _vm(attach_to, "--attach-to")
    body = FL.files_body(vm.id, _point(point_id), target.id, FL.luns(luns), os_disk, hours)
    client = api_client(api, key, scope, principal, ca_bundle, FL.OPTIONS)
    record = _make_leased(body, f"Attach these disks to VM {target.name}?", dry_run, yes, no_wait, wait, poll_interval,
                          idempotency_key, client)
    if record is not None:
        current().emit(record, FL.ready)


@files.command("done", epilog="\b\nExit codes: 0 ended (or ending, with --no-wait); 1 not found, refused, or still "
               "ending\nafter --wait seconds (an end step that fails is retried by vmkeeper; it alerts).")
@click.argument("restore_id", metavar="ID")
@follow_options
@api_options
@json_option
def files_done(restore_id: str, no_wait: bool, wait: float, poll_interval: float | None, api: str | None,
               key: str | None, scope: str | None, principal: str | None, ca_bundle: str | None) -> None:
    """End file recovery (or export) ID now: its disks detached, their access revoked, deleted; followed to the end."""
    from . import files as FL
    from . import output

    run = current()
    client = api_client(api, key, scope, principal, ca_bundle, FL.OPTIONS)
    _, doc, location = client.end(restore_id)
    if no_wait or location is None or doc.get("state") not in ("ending", "running", "pending"):
        run.emit(doc, lambda d: FL.ended(d, location, waited=location is None))
        return
    with output.restore_progress(enabled=not run.as_json) as update:
        record = client.follow(location, update, interval=poll_interval, wait=wait)
    ok = record["state"] in ("succeeded", "cancelled")
    if ok or not run.as_json:  # with --json, an error carries the record
        current().emit(record, FL.ended)
    if not ok:
        raise CliError(f"restore {record['id']} {record['state']}: {(record.get('error') or {}).get('message') or ''}",
                       "ID", restore=record)


@cli.command(epilog="\b\nThe SAS is taken once, when the export is ready, and printed: vmkeeper keeps no copy.\n"
             "End the export with `vmkeeper files done ID` (else it ends at its expiry).\n"
             "\b\nExit codes: 0 ready and its SAS shown (or valid, with --dry-run); 1 refused, not confirmed,\n"
             "failed or not ready after --wait seconds.")
@click.argument("vm_id", required=False)
@vm_options
@click.option("--point", "point_id", required=True, metavar="POINT_ID", help="The point (an id from `vmkeeper points`).")
@click.option("--target-resource-group", metavar="ID", help="The resource group the disk is made in (its id; a "
              "resource group id given to -g/--resource-group is this, as before -g named the VM).")
@click.option("--lun", type=click.IntRange(0, 63), help="The point's data disk at this LUN.")
@click.option("--os-disk", is_flag=True, help="The point's OS disk.")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), metavar="N",
              help="How long the SAS works (default 1, at most 24).")
@click.option("--dry-run", is_flag=True, help="Show what would be made, then stop.")
@click.option("--yes", is_flag=True, help="Answer the confirmation (a pipeline).")
@click.option("--idempotency-key", metavar="KEY", help="Makes a repeated command the same export.")
@follow_options
@api_options
@json_option
def export(vm_id: str | None, resource_group: str | None, name: str | None, ids: str | None, point_id: str,
           target_resource_group: str | None, lun: int | None, os_disk: bool, hours: float | None,
           dry_run: bool, yes: bool, idempotency_key: str | None, no_wait: bool, wait: float,
           poll_interval: float | None, api: str | None, key: str | None, scope: str | None, principal: str | None,
           ca_bundle: str | None) -> None:
    """One disk of VM_ID's --point exported: made in --resource-group, its read SAS handed to you once."""
    from ..access import BadId, parse_id
    from . import files as FL

    vm_group, legacy_target = split_group(resource_group)
    if legacy_target and target_resource_group:
        raise CliError("--target-resource-group: given twice (and as -g/--resource-group's id)", "--target-resource-group")
    vm = resolve_vm(vm_id, vm_group, name, ids)
    option = "--target-resource-group" if target_resource_group or not legacy_target else "--resource-group"
    if not (target_resource_group or legacy_target):
        raise CliError("--target-resource-group: required (the resource group id the disk is made in)", option)
    try:
        group = parse_id(target_resource_group or legacy_target, "resource_group")
    except BadId as exc:
        raise CliError(f"{option}: {exc}", option) from None
    body = FL.export_body(vm.id, _point(point_id), group.id, lun, os_disk, hours)
    client = api_client(api, key, scope, principal, ca_bundle, FL.OPTIONS)
    what = "its OS disk" if os_disk else f"its disk at LUN {lun}"
    record = _make_leased(body, f"Export {what} with a read SAS?", dry_run, yes, no_wait, wait, poll_interval,
                          idempotency_key, client)
    if record is None:
        return
    taken = client.take_access(record["id"])
    current().emit({"restore": record, "access": taken}, lambda d: FL.export_ready(d["restore"], d["access"]))


# --- restore ------------------------------------------------------------------------------------------
AUTH_EPILOG = ("\b\nAuthentication: the function key (--key / VMKEEPER_API_KEY), and behind App Service\n"
               "authentication a token for the app's scope from your az login (--scope / VMKEEPER_API_SCOPE,\n"
               "e.g. api://<app-id>/.default) carrying the Restore.Operator app role. The local Functions\n"
               "host has no App Service authentication: there pass --principal (X-MS-CLIENT-PRINCIPAL, base64),\n"
               "which Azure ignores from a client.\n")


class RestoreGroup(DefaultCommandGroup):
    default = "create"  # ``vmkeeper restore VM_ID POINT_ID ...`` (or ``-g G -n N POINT_ID``) makes a restore


@cli.group(cls=RestoreGroup, epilog="\b\nvmkeeper restore VM_ID POINT_ID --target-type TYPE ... (or -g GROUP -n NAME "
           "POINT_ID): a restore\n    made through the restore HTTP API; its id told at once, then followed to the "
           "end.\n    Ctrl-C stops following, not the restore: `vmkeeper restore wait ID` follows it again.\n"
           "vmkeeper restore show ID | list | wait ID | cancel ID.\n" + AUTH_EPILOG)
def restore() -> None:
    """Restores through the restore HTTP API: make one, show, list, wait for or cancel them."""


@restore.command("create", hidden=True, epilog=AUTH_EPILOG + "\b\nExit codes: 0 succeeded (or valid, with --dry-run; "
                 "accepted, with --no-wait); 1 refused,\nfailed, cancelled or still running after --wait seconds; 130 "
                 "Ctrl-C stopped following (the\nrestore goes on; the command to follow it is printed).")
@click.argument("args", nargs=-1, metavar="[VM_ID] POINT_ID")
@vm_options
@click.option("--point", "point_opt", metavar="POINT_ID", help="The point (an id from `vmkeeper points`), instead of "
              "the argument.")
@click.option("--target-type", required=True, type=click.Choice(TARGET_TYPES),
              help="disks: new disks; vm: a new VM; os_disk: swap an existing VM's OS disk; original_location: "
              "Azure Backup's in-place restore.")
@click.option("--target-resource-group", metavar="ID", help="Target resource group id (disks, vm). A resource "
              "group id given to -g/--resource-group is this, as before -g named the VM.")
@click.option("--subnet", metavar="ID", help="Subnet id for the new VM's NIC (vm).")
@click.option("--vm-name", metavar="NAME", help="The new VM's name (vm).")
@click.option("--vm-size", metavar="SIZE", help="The new VM's size (vm; default: the source's).")
@click.option("--target-vm", metavar="ID", help="The VM whose OS disk is swapped (os_disk).")
@click.option("--staging-storage-account", metavar="ID", help="Staging storage account id (Azure Backup points).")
@click.option("--dry-run", is_flag=True, help="Validate and plan only: the API creates nothing.")
@click.option("--idempotency-key", metavar="KEY", help="Makes a repeated command the same restore (default: a new key).")
@follow_options
@api_options
@json_option
def restore_create(args: tuple[str, ...], resource_group: str | None, name: str | None, ids: str | None,
                   point_opt: str | None, target_type: str, target_resource_group: str | None, subnet: str | None,
                   vm_name: str | None, vm_size: str | None, target_vm: str | None,
                   staging_storage_account: str | None, dry_run: bool, idempotency_key: str | None, no_wait: bool,
                   wait: float, poll_interval: float | None, api: str | None, key: str | None, scope: str | None,
                   principal: str | None, ca_bundle: str | None) -> None:
    """Restore a VM from POINT_ID (an id from `vmkeeper points`) through the restore HTTP API, then follow it to
    the end with a progress bar of its steps."""
    from ..restore.request import point_kind
    from . import output

    run = current()
    group, legacy_target = split_group(resource_group)
    if legacy_target and target_resource_group:
        raise CliError("--target-resource-group: given twice (and as -g/--resource-group's id)", "--target-resource-group")
    target_group = target_resource_group or legacy_target
    rest = list(args)
    if point_opt is None and rest:
        point_opt = rest.pop()
    if len(rest) > 1:
        raise CliError(f"VM_ID: one VM, one point (got {len(args)} arguments)", "VM_ID")
    vm = resolve_vm(rest[0] if rest else None, group, name, ids)
    if point_opt is None:
        raise CliError("POINT_ID: required (an id from `vmkeeper points`)", "POINT_ID")
    try:
        point_kind(point_opt)
    except ValueError as exc:
        raise CliError(f"POINT_ID: {exc}", "POINT_ID") from None
    client = api_client(api, key, scope, principal, ca_bundle)
    target = {k: v for k, v in {"type": target_type, "resource_group": target_group, "subnet": subnet,
                                "vm_name": vm_name, "vm_size": vm_size, "vm": target_vm,
                                "staging_storage_account": staging_storage_account}.items() if v is not None}
    body = {"vm": vm.id, "recovery_point": point_opt, "target": target, "dry_run": dry_run}
    status_code, doc, location = client.create(body, idempotency_key)
    if dry_run:
        run.emit(doc, output.dry_run)
        return
    output.accepted(doc, run.as_json)
    if no_wait or location is None:
        run.emit(doc, lambda d: output.restore(d, location, waited=False))
        return
    record = follow(client, doc["id"], location, poll_interval, wait)
    if record["state"] == "succeeded" or not run.as_json:  # for machines, an error's document carries the record
        run.emit(record, output.restore)
    if record["state"] != "succeeded":
        error = record.get("error") or {}
        raise CliError(f"restore {record['id']} {record['state']}: {error.get('message') or 'see its steps'}",
                       "restore", restore=record)


class StoppedFollowing(CliError):
    """Ctrl-C while following: the restore goes on in the app; exit code 130, as an interrupted command's."""

    exit_code = 130


def follow(client: Any, restore_id: str, location: str, poll_interval: float | None, wait: float) -> dict[str, Any]:
    """The restore followed to its end (or ready) with its steps shown; Ctrl-C stops following only, and says the id
    and how to follow it again."""
    from . import output

    run = current()
    try:
        with output.restore_progress(enabled=not run.as_json) as update:
            return client.follow(location, update, interval=poll_interval, wait=wait)
    except KeyboardInterrupt:
        raise StoppedFollowing(f"Stopped following restore {restore_id}; the restore goes on. Follow it with "
                               f"`vmkeeper restore wait {restore_id}` (or show, or cancel it)", "restore",
                               restore={"id": restore_id, "follow": f"vmkeeper restore wait {restore_id}"}) from None


def _restore_id(value: str) -> str:
    import re

    if not re.fullmatch(r"[0-9a-f]{16}", value.strip().lower()):
        raise CliError(f"ID: {value!r} is not a restore id (16 hex digits, as `vmkeeper restore list` shows)", "ID")
    return value.strip().lower()


ID_OPTIONS = {**API_OPTIONS, "id": "ID", "state": "ID", "top": "--top"}


@restore.command("show", epilog="\b\nExit codes: 0 shown; 1 not found or refused.")
@click.argument("restore_id", metavar="ID")
@api_options
@json_option
def restore_show(restore_id: str, api: str | None, key: str | None, scope: str | None, principal: str | None,
                 ca_bundle: str | None) -> None:
    """Restore ID as it stands: its state, each step, what it created, its error."""
    from . import output

    client = api_client(api, key, scope, principal, ca_bundle, ID_OPTIONS)
    record, _ = client.get(client.location_of(_restore_id(restore_id)))
    current().emit(record, output.restore)


@restore.command("list", epilog="\b\nExit codes: 0 listed; 1 refused.")
@click.option("--top", type=click.IntRange(1, 100), default=20, show_default=True, help="How many, newest first.")
@api_options
@json_option
def restore_list(top: int, api: str | None, key: str | None, scope: str | None, principal: str | None,
                 ca_bundle: str | None) -> None:
    """The newest restores (file recoveries and exports too): id, VM, target, state, when, who."""
    from . import output

    client = api_client(api, key, scope, principal, ca_bundle, ID_OPTIONS)
    current().emit(client.recent(top), output.restores)


@restore.command("wait", epilog="\b\nExit codes: 0 succeeded (or ready); 1 not found, failed, cancelled or still "
                 "running\nafter --wait seconds; 130 Ctrl-C stopped following (the restore goes on).")
@click.argument("restore_id", metavar="ID")
@click.option("--wait", "wait", type=click.FloatRange(min=1), default=3600, show_default=True, metavar="SECONDS",
              help="How long to follow it.")
@click.option("--poll-interval", type=click.FloatRange(min=0.05), metavar="SECONDS",
              help="Seconds between looks (default: the API's Retry-After).")
@api_options
@json_option
def restore_wait(restore_id: str, wait: float, poll_interval: float | None, api: str | None, key: str | None,
                 scope: str | None, principal: str | None, ca_bundle: str | None) -> None:
    """Follow restore ID to its end (or, a file recovery or export, to ready) with a progress bar of its steps."""
    from . import output

    client = api_client(api, key, scope, principal, ca_bundle, ID_OPTIONS)
    rid = _restore_id(restore_id)
    record = follow(client, rid, client.location_of(rid), poll_interval, wait)
    ok = record["state"] in ("succeeded", "ready")
    if ok or not current().as_json:  # for machines, an error's document carries the record
        current().emit(record, output.restore)
    if not ok:
        error = record.get("error") or {}
        raise CliError(f"restore {rid} {record['state']}: {error.get('message') or 'see its steps'}", "ID",
                       restore=record)


@restore.command("cancel", epilog="\b\nA restore's done steps are undone by the app; a file recovery or an export "
                 "is ended\n(as `vmkeeper files done ID`).\n\b\nExit codes: 0 cancelled (or ending); 1 not found, "
                 "or it can no longer be cancelled.")
@click.argument("restore_id", metavar="ID")
@api_options
@json_option
def restore_cancel(restore_id: str, api: str | None, key: str | None, scope: str | None, principal: str | None,
                   ca_bundle: str | None) -> None:
    """Cancel restore ID (DELETE /api/restores/ID)."""
    from . import output

    client = api_client(api, key, scope, principal, ca_bundle, ID_OPTIONS)
    _, record, location = client.end(_restore_id(restore_id))
    current().emit(record, lambda d: output.restore(d, location, waited=False))


# --- failover -----------------------------------------------------------------------------------------
FAILOVER_ACTIONS = ("test_failover", "test_failover_cleanup", "planned_failover", "unplanned_failover", "commit",
                    "reprotect", "failback")  # shared/cli/failover.py ACTIONS


@cli.command(epilog="\b\nThe order (boot groups and their VMs) is always shown first, from the API's dry run, and\n"
             "nothing is sent before the action's confirmation: unplanned_failover asks you to type the\n"
             "application's (or VM's) name; planned_failover, failback, commit and reprotect ask yes or no;\n"
             "--yes answers for you. Authentication as for `vmkeeper restore`, with the app role\n"
             "Failover.Operator (no Restore role grants it).\n"
             "\b\nExit codes: 0 succeeded (or shown, with --dry-run; accepted, with --no-wait); 1 refused,\n"
             "not confirmed, failed or still running after --wait seconds.")
@click.argument("action", type=click.Choice(FAILOVER_ACTIONS))
@click.option("--plan", "plan_", metavar="APP", help="An application's recovery plan (its VMs' vmkeeper-app tag).")
@click.option("--vm", "vm_id", metavar="VM_ID", help="One replicated VM (its ARM id; or -g/-n, --ids).")
@vm_options
@click.option("--network", metavar="ID", help="test_failover: the isolated VNet the test VMs join.")
@click.option("--recovery-point", type=click.Choice(("latest", "latest_processed", "latest_app_consistent")),
              help="test_failover, unplanned_failover: which point (default: latest).")
@click.option("--shut-down-source", is_flag=True, help="unplanned_failover: shut the source VMs down first.")
@click.option("--comment", metavar="TEXT", help="test_failover_cleanup: a note kept with the test in Azure.")
@click.option("--dry-run", is_flag=True, help="Show the order and what would be sent, then stop.")
@click.option("--yes", is_flag=True, help="Answer the confirmation (a pipeline).")
@click.option("--no-wait", is_flag=True, help="Return once accepted; do not follow the failover.")
@click.option("--wait", "wait", type=click.FloatRange(min=1), default=7200, show_default=True, metavar="SECONDS",
              help="How long to follow the failover.")
@click.option("--poll-interval", type=click.FloatRange(min=0.05), metavar="SECONDS",
              help="Seconds between looks (default: the API's Retry-After).")
@click.option("--idempotency-key", metavar="KEY", help="Makes a repeated command the same failover (default: a new key).")
@click.option("--api", metavar="URL", help="The app's URL (default: VMKEEPER_API_URL).")
@click.option("--key", metavar="KEY", help="The function key (default: VMKEEPER_API_KEY).")
@click.option("--scope", metavar="SCOPE", help="Get an Easy Auth bearer token for this scope (default: VMKEEPER_API_SCOPE).")
@click.option("--principal", metavar="BASE64", help="Local Functions host only: an X-MS-CLIENT-PRINCIPAL value "
              "(default: VMKEEPER_API_PRINCIPAL).")
@click.option("--ca-bundle", metavar="FILE", help="CA bundle to verify the API's TLS certificate (default: "
              "VMKEEPER_API_CA_BUNDLE, else the system's).")
@json_option
def failover(action: str, plan_: str | None, vm_id: str | None, resource_group: str | None, name: str | None,
             ids: str | None, network: str | None, recovery_point: str | None,
             shut_down_source: bool, comment: str | None, dry_run: bool, yes: bool, no_wait: bool, wait: float,
             poll_interval: float | None, idempotency_key: str | None, api: str | None, key: str | None,
             scope: str | None, principal: str | None, ca_bundle: str | None) -> None:
    """Fail over an application's recovery plan (--plan APP) or one replicated VM (--vm VM_ID) with Site
    Recovery through the failover HTTP API: ACTION is test_failover (then test_failover_cleanup),
    planned_failover or unplanned_failover, then commit and reprotect; failback goes the way back."""
    import os

    from . import failover as F
    from .api_client import RestoreClient

    run = current()
    vm = resolve_vm(vm_id, resource_group, name, ids, field="--vm", required=False)
    vm_id = vm.id if vm is not None else None
    request = F.body(action, plan_, vm_id, network, recovery_point, shut_down_source, comment)
    url = api or run.setting("VMKEEPER_API_URL")
    if not url:
        raise CliError("--api: required (or VMKEEPER_API_URL): the app's URL", "--api")
    bundle = ca_bundle or run.setting("VMKEEPER_API_CA_BUNDLE")
    if bundle and not os.path.isfile(bundle):
        raise CliError(f"--ca-bundle: no such file {bundle!r}", "--ca-bundle")
    scope = scope or run.setting("VMKEEPER_API_SCOPE")
    token = (lambda: run.credential().get_token(scope).token) if scope else None
    client = RestoreClient(url, key=key or run.setting("VMKEEPER_API_KEY"), token=token,
                           principal=principal or run.setting("VMKEEPER_API_PRINCIPAL"), ca_bundle=bundle,
                           path="/api/failovers", options=F.OPTIONS, what="failover")
    _, shown, _ = client.create({**request, "dry_run": True})
    if dry_run:
        current().emit(shown, F.order)
        return
    if not run.as_json:
        F.order(shown)
    F.confirm(action, shown, yes)
    _, doc, location = client.create(request, idempotency_key)
    if no_wait or location is None:
        run.emit(doc, lambda d: F.result(d, location, waited=False))
        return
    with F.progress(enabled=not run.as_json) as update:
        record = client.follow(location, update, interval=poll_interval, wait=wait)
    current().emit(record, F.result)
    if record["state"] != "succeeded":
        error = record.get("error") or {}
        raise CliError(f"failover {record['id']} {record['state']}: {error.get('message') or 'see its job'}",
                       "failover", failover=record)


if __name__ == "__main__":  # python -m shared.cli.main
    cli(prog_name="vmkeeper")
