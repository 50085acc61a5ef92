"""``vmkeeper failover``'s parts apart from its options (shared/cli/main.py): the request it sends, the
confirmation each action asks for, and how a failover's order and progress are shown.

What is asked before anything is sent (the order — boot groups and their VMs — is always shown first, from the
API's dry run):

- ``unplanned_failover``: the operator types the plan's application name (or the VM's name): the source region is
  taken to be lost, and the VMs come up from a recovery point in the other region;
- ``planned_failover``, ``failback``, ``commit``, ``reprotect``: yes or no (they shut VMs down, move production, or
  give up the way back to the points before the failover);
- ``test_failover`` and its cleanup: nothing more (production is not touched; the test VMs join an isolated VNet).

``--yes`` answers for the operator (a pipeline); ``--dry-run`` shows the order and stops. Without a terminal to ask
(stdin closed) the command stops before sending, unless ``--yes``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn

from .context import CliError
from .output import RESTORE_STYLE, console, styled

ACTIONS = ("test_failover", "test_failover_cleanup", "planned_failover", "unplanned_failover", "commit", "reprotect",
           "failback")  # shared/failover/request.py ACTIONS (not imported: cold)
CONFIRM = ("planned_failover", "failback", "commit", "reprotect")
TYPE_NAME = ("unplanned_failover",)
# The API's field names → the command's options (so a problem names what the operator typed).
OPTIONS = {"action": "ACTION", "plan": "--plan", "vm": "--vm", "network": "--network", "recovery_point": "--recovery-point",
           "shut_down_source": "--shut-down-source", "comment": "--comment", "Idempotency-Key": "--idempotency-key",
           "X-MS-CLIENT-PRINCIPAL": "--scope / --principal", "X-MS-CLIENT-PRINCIPAL.roles": "--scope / --principal",
           "body": "the request"}


def body(action: str, plan: str | None, vm: str | None, network: str | None, recovery_point: str | None,
         shut_down_source: bool, comment: str | None) -> dict[str, Any]:
    if (plan is None) == (vm is None):
        raise CliError("--plan / --vm: give exactly one (an application's name, or a replicated VM's id)", "--plan")
    out: dict[str, Any] = {"action": action, **({"plan": plan} if plan is not None else {"vm": vm})}
    for name, value in (("network", network), ("recovery_point", recovery_point), ("comment", comment)):
        if value is not None:
            out[name] = value
    if shut_down_source:
        out["shut_down_source"] = True
    return out


def confirm(action: str, shown: dict[str, Any], yes: bool) -> None:
    """Ask what the action calls for (module docstring); CliError, naming --yes, when the answer is no."""
    if yes or action not in CONFIRM + TYPE_NAME:
        return
    target = shown["target"]
    name = target.get("app") or (target.get("vm") or "").rsplit("/", 1)[-1]
    what = f"recovery plan {target.get('plan')}" if target.get("kind") == "plan" else f"VM {name}"
    try:
        if action in TYPE_NAME:
            typed = click.prompt(f"Unplanned failover of {what} to its recovery region, from {shown['request'].get('recovery_point', 'latest')} "
                                 f"points. Type {name} to go on", default="", show_default=False, err=True)
            if typed.strip() != name:
                raise CliError(f"--yes: {typed.strip()!r} is not {name!r}: nothing was sent", "--yes")
        elif not click.confirm(f"{action.replace('_', ' ').capitalize()} of {what}?", default=False, err=True):
            raise CliError("--yes: not confirmed: nothing was sent", "--yes")
    except click.Abort:
        raise CliError("--yes: no answer (no terminal to ask): nothing was sent; pass --yes to go on", "--yes") from None


def order(shown: dict[str, Any]) -> None:
    """The dry run: what would be sent, and the boot order."""
    out = console()
    target = shown["target"]
    what = f"recovery plan {target.get('plan')}" if target.get("kind") == "plan" else f"VM {target.get('vm')}"
    out.print(f"{shown['operation']} of {escape(what)} ({shown['direction']})")
    for group in shown.get("order") or []:
        out.print(f"  Group {group['group']}: " + ", ".join(escape(v["name"]) for v in group["vms"]))
    for w in shown.get("writes") or []:
        out.print(f"  writes into {escape(w['group'])}")


@contextmanager
def progress(enabled: bool = True) -> Iterator[Callable[[dict[str, Any]], None]]:
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  console=console(stderr=True), transient=True, disable=not enabled) as bar:
        task = bar.add_task("Submitted", total=100)

        def update(record: dict[str, Any]) -> None:
            running = next((t["name"] for t in (record.get("job") or {}).get("tasks") or []
                            if t.get("state") == "InProgress"), None)
            bar.update(task, completed=record.get("percent", 0),
                       description=f"{record.get('state')}" + (f": {running}" if running else ""))

        yield update


def result(record: dict[str, Any], location: str | None = None, waited: bool = True) -> None:
    out = console()
    state = record["state"]
    out.print(f"Failover {record['id']} ({record.get('operation')}): {styled(state, RESTORE_STYLE.get(state))} "
              f"({record.get('percent', 0)} %)")
    for task in (record.get("job") or {}).get("tasks") or []:
        out.print(f"  {escape(task.get('name') or '')}: {task.get('state')}")
    if record.get("error"):
        e = record["error"]
        out.print(styled(f"Error {e.get('code', '')} in {e.get('step') or 'a step'}: {e.get('message', '')}", "red"))
    if not waited and location:
        out.print(f"Follow it at {escape(location)}")
