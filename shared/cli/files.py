"""``vmkeeper files`` and ``vmkeeper export``'s parts apart from their options (shared/cli/main.py): the request each
sends (the restore API's targets ``files`` and ``export``, shared/restore/request.py), the confirmation asked before
anything is made, and how a file recovery or an export is shown.

What the operator sees, in order: the plan (the API's dry run: which disks, where, until when), a yes-or-no question
(``--yes`` answers it; with no terminal to ask, nothing is sent), the restore's id at once (to end it later with
``vmkeeper files done ID`` even if this command is stopped), the restore followed to ``ready``, then which LUN of the
operator's VM carries which disk of the point (files) or the export's read SAS, taken once (export), with the expiry.
"""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from .context import CliError
from .output import RESTORE_STYLE, console, seconds, styled

RESTORE_STYLE = {**RESTORE_STYLE, "ready": "green", "ending": "cyan"}
# The API's field names → the commands' options (so a problem names what the operator typed).
OPTIONS = {"vm": "VM_ID", "recovery_point": "--point", "target.type": "the command", "target.vm": "--attach-to",
           "target.luns": "--luns", "target.os_disk": "--os-disk", "target.duration_hours": "--hours",
           "target.resource_group": "--target-resource-group", "target.lun": "--lun", "Idempotency-Key": "--idempotency-key",
           "X-MS-CLIENT-PRINCIPAL": "--scope / --principal", "X-MS-CLIENT-PRINCIPAL.roles": "--scope / --principal",
           "id": "ID", "state": "ID", "body": "the request"}


def luns(value: str | None) -> list[int] | None:
    """``--luns 0,1``: distinct LUNs 0-63 (the API says which the point has)."""
    if value is None:
        return None
    try:
        out = [int(part) for part in value.split(",")]
    except ValueError:
        raise CliError(f"--luns: {value!r} is not a comma-separated list of LUNs (e.g. 0,1)", "--luns") from None
    if not out or any(not 0 <= n <= 63 for n in out) or len(set(out)) != len(out):
        raise CliError(f"--luns: {value!r}: distinct LUNs from 0 to 63", "--luns")
    return out


def files_body(vm: str, point: str, attach_to: str, lun_list: list[int] | None, os_disk: bool,
               hours: float | None) -> dict[str, Any]:
    target: dict[str, Any] = {"type": "files", "vm": attach_to}
    if lun_list is not None:
        target["luns"] = lun_list
    if os_disk:
        target["os_disk"] = True
    if hours is not None:
        target["duration_hours"] = hours
    return {"vm": vm, "recovery_point": point, "target": target}


def export_body(vm: str, point: str, resource_group: str, lun: int | None, os_disk: bool,
                hours: float | None) -> dict[str, Any]:
    if (lun is None) == (not os_disk):
        raise CliError("--lun / --os-disk: give exactly one (the point's data disk at a LUN, or its OS disk)", "--lun")
    target: dict[str, Any] = {"type": "export", "resource_group": resource_group}
    target.update({"lun": lun} if lun is not None else {"os_disk": True})
    if hours is not None:
        target["duration_hours"] = hours
    return {"vm": vm, "recovery_point": point, "target": target}


def confirm(question: str, yes: bool) -> None:
    """Yes or no before anything is made; CliError naming --yes when the answer is no (or nobody can answer)."""
    if yes:
        return
    try:
        if not click.confirm(question, default=False, err=True):
            raise CliError("--yes: not confirmed: nothing was made", "--yes")
    except click.Abort:
        raise CliError("--yes: no answer (no terminal to ask): nothing was made; pass --yes to go on", "--yes") from None


def _source(c: dict[str, Any]) -> str:
    where = "OS disk" if c.get("source_lun") is None else f"LUN {c['source_lun']}"
    return f"{where} ({c['source_disk']})" if c.get("source_disk") else where


def plan(shown: dict[str, Any], dry_run: bool = True) -> None:
    """The dry run: what would be made, where, and until when."""
    out = console()
    note = "dry run: nothing made" if dry_run else "nothing made yet"
    p = shown["plan"]
    lease = p.get("lease") or {}
    if p["target_type"] == "files":
        vm = (p.get("vm") or {}).get("name") or ""
        out.print(f"File recovery from a {p['source_kind'].replace('_', ' ')} in {p['region']}: disks attached to VM "
                  f"{escape(vm)} for {lease.get('hours', 0):g} h ({note})")
        for c in p.get("carries") or []:
            out.print(f"  LUN {c['lun']}: {escape(_source(c))} as disk {escape(c['disk'])} (read-only caching)")
    else:
        out.print(f"Export from a {p['source_kind'].replace('_', ' ')} in {p['region']}: a read SAS for {lease.get('hours', 0):g} h "
                  f"({note})")
        for c in p.get("carries") or []:
            out.print(f"  {escape(_source(c))} as disk {escape(c['disk_id'])}")
    out.print(f"  until about {seconds(lease.get('expires_at') or '')} (counted from when it is accepted)")


def accepted(doc: dict[str, Any], as_json: bool) -> None:
    """The id at once: whatever happens to this command, the operator can end the restore with it."""
    line = f"Restore {doc['id']} accepted: end it with `vmkeeper files done {doc['id']}`"
    if as_json:  # stdout is the answer's alone
        click.echo(line, err=True)
    else:
        console().print(escape(line))


def _failed(record: dict[str, Any]) -> CliError:
    error = record.get("error") or {}
    return CliError(f"restore {record['id']} {record['state']}: {error.get('message') or 'see its steps'}", "restore",
                    restore=record)


def check_ready(record: dict[str, Any]) -> None:
    if record.get("state") != "ready":
        raise _failed(record)


def ready(record: dict[str, Any]) -> None:
    """A file recovery made: which LUN of the operator's VM carries which disk of the point, and until when."""
    out = console()
    lease = record.get("lease") or {}
    vm = (((record.get("plan") or {}).get("vm")) or {}).get("id") or ""
    out.print(f"Restore {record['id']}: {styled('ready', RESTORE_STYLE['ready'])}: disks attached to VM "
              f"{escape(vm.rsplit('/', 1)[-1])} until {seconds(lease.get('expires_at') or '')}")
    table = Table(title_justify="left")
    for name in ("LUN", "Carries", "Disk"):
        table.add_column(name, overflow="fold", justify="right" if name == "LUN" else "left")
    for c in lease.get("carries") or []:
        table.add_row(str(c["lun"]), escape(_source(c)), escape(c["disk"]))
    out.print(table)
    out.print(f"Read-only: mount them in the VM, copy what you need. They are detached and deleted at "
              f"{seconds(lease.get('expires_at') or '')}, or sooner with `vmkeeper files done {record['id']}`.")


def export_ready(record: dict[str, Any], taken: dict[str, Any]) -> None:
    """An export's SAS, as handed: once."""
    out = console()
    out.print(f"Restore {record['id']}: {styled('ready', RESTORE_STYLE['ready'])}: disk {escape(taken['disk'])}")
    out.print(f"Read SAS (valid until {seconds(taken['expires_at'])}):")
    out.print(escape(taken["access_sas"]), soft_wrap=True)
    out.print(styled("This SAS is shown once: vmkeeper keeps no copy and cannot show it again. Keep it secret; end "
                     f"the export with `vmkeeper files done {record['id']}` when the copy is made.", "bold yellow"))


def ended(record: dict[str, Any], location: str | None = None, waited: bool = True) -> None:
    out = console()
    state = record["state"]
    why = ((record.get("lease") or {}).get("ending") or {}).get("why")
    out.print(f"Restore {record['id']}: {styled(state, RESTORE_STYLE.get(state))}" + (f" (ended: {why})" if why else ""))
    for s in record.get("steps") or []:
        if s["name"] == "remove_disks":
            out.print(f"  {s['name']}: {s['state']}")
    if not waited and location:
        out.print(f"Follow it at {escape(location)}")
