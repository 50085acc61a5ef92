"""The report's first screen, decided from its data (pure): one sentence saying whether the fleet is recoverable
("148 of 154 VMs recoverable within RPO; 4 breached, 2 with no restore point; last drill failed for 1"), then what
needs action, worst first, each naming the VM (or resource) and what to do."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.instants import parse_instant
from shared.report.drills import FAILED, last_per_vm
from shared.report.model import (
    BREACHED,
    MET,
    MISSING,
    NOT_PROTECTED,
    NOT_SUPPORTED,
    OPTED_OUT,
    DrillRow,
    LeaseRow,
    ReportData,
    VmRow,
)

# What needs action, in the order it is shown: a breach first (the worst age/RPO ratio first), then a VM with no
# point at all or none vmkeeper can make, one missing a kind, a failed last drill, an overdue file recovery or
# export, then failed jobs (most often first).
RANKS = (BREACHED, NOT_SUPPORTED, NOT_PROTECTED, MISSING, "drill", "overdue", "failure", "vault")
TODO = {
    "vault": "Make its soft delete always-on and turn on immutability (infra/README.md, \"Protected vaults\")",
    BREACHED: "Check why its newest point is late (failed jobs below); take a point now: vmkeeper backup",
    NOT_SUPPORTED: "Move it to a Flexible scale set or a standalone VM, or opt it out (vmkeeper-optout tag)",
    NOT_PROTECTED: "Give it a policy (vmkeeper-policy tag or a default) or opt it out; then check its first point",
    MISSING: "Check the failed jobs of the kind it lacks; its policy expects a point of that kind",
    "drill": "Read the drill's reason, fix it, and run the drill again: vmkeeper drill",
    "overdue": "End it (vmkeeper restore cancel) so its disks and access are removed",
    "failure": "Read Azure's error code; fix the cause, the job is retried on the next schedule",
}


@dataclass(frozen=True)
class Action:
    rank: str  # one of RANKS
    name: str  # the VM's name (or the resource's)
    resource_id: str  # the VM's id, or what failed
    what: str  # what is wrong, in words
    todo: str  # what to do


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _failed_last_drills(drills: Iterable[DrillRow]) -> list[DrillRow]:
    return [d for d in last_per_vm(drills) if d.result == FAILED]


def _overdue(leases: Iterable[LeaseRow], generated: str) -> list[LeaseRow]:
    now = parse_instant(generated)
    out = []
    for lease in leases:
        until = parse_instant(lease.expires_at)
        if lease.state == "ready" and now is not None and until is not None and until <= now:
            out.append(lease)
    return out


def verdict(data: ReportData) -> str:
    """One sentence: how many judged VMs (opted-out ones are not) are recoverable within RPO, then what is not."""
    vms = [v for v in data.vms if v.state != OPTED_OUT]
    if not vms:
        return "No VMs evaluated yet." if data.evaluated is None or not data.vms else \
            f"No VMs to protect: {_plural(len(data.vms), 'VM')} opted out."
    count = {s: sum(1 for v in vms if v.state == s) for s in (MET, BREACHED, NOT_PROTECTED, MISSING, NOT_SUPPORTED)}
    head = f"{count[MET]} of {_plural(len(vms), 'VM')} recoverable within RPO"
    if count[MET] == len(vms):
        head = f"All {_plural(len(vms), 'VM')} recoverable within RPO"
    gaps = [text for n, text in (
        (count[BREACHED], f"{count[BREACHED]} breached"),
        (count[NOT_PROTECTED], f"{count[NOT_PROTECTED]} with no restore point"),
        (count[MISSING], f"{count[MISSING]} missing a kind of point"),
        (count[NOT_SUPPORTED], f"{count[NOT_SUPPORTED]} not supported"),
    ) if n]
    parts = [head + ("; " + ", ".join(gaps) if gaps else "")]
    failed = len(_failed_last_drills(data.drills))
    if failed:
        parts.append(f"last drill failed for {failed}")
    overdue = len(_overdue(data.leases, data.generated))
    if overdue:
        parts.append(f"{_plural(overdue, 'file recovery', 'file recoveries')} overdue")
    return "; ".join(parts)


def _ratio(vm: VmRow) -> float:
    """How late a breached VM is: its worst kind's age ÷ RPO (no point at all: later than any)."""
    worst = 0.0
    for k in vm.kinds:
        if k.state == BREACHED:
            worst = max(worst, float("inf") if k.age_hours is None or k.rpo_hours <= 0 else k.age_hours / k.rpo_hours)
    return worst


def actions(data: ReportData, failures: Sequence[tuple[str, str, str, int]] = ()) -> list[Action]:
    """What needs action, ranked (see RANKS). ``failures``: grouped failed jobs as (resource id, what, code, count),
    most often first (shared/report/failures.py)."""
    out: list[Action] = []
    breached = sorted((v for v in data.vms if v.state == BREACHED), key=lambda v: (-_ratio(v), v.name))
    for v in breached:
        ratio = _ratio(v)
        late = "no point" if ratio == float("inf") else f"{ratio:.1f}× its RPO"
        out.append(Action(BREACHED, v.name, v.vm_id, f"breached ({late}): {v.reason}", TODO[BREACHED]))
    for state in (NOT_SUPPORTED, NOT_PROTECTED, MISSING):
        for v in sorted((v for v in data.vms if v.state == state), key=lambda v: v.name):
            out.append(Action(state, v.name, v.vm_id, f"{state.replace('_', ' ')}: {v.reason}", TODO[state]))
    names = {v.vm_id.lower(): v.name for v in data.vms}
    for d in _failed_last_drills(data.drills):
        name = names.get(d.vm_id.lower(), d.vm_id.rstrip("/").rsplit("/", 1)[-1])
        out.append(Action("drill", name, d.vm_id, f"last drill failed: {d.reason or 'no reason recorded'}",
                          TODO["drill"]))
    for lease in _overdue(data.leases, data.generated):
        name = names.get(lease.vm_id.lower(), lease.vm_id.rstrip("/").rsplit("/", 1)[-1])
        out.append(Action("overdue", name, lease.vm_id,
                          f"{'file recovery' if lease.target_type == 'files' else 'export'} {lease.id} past its "
                          f"expiry {lease.expires_at}", TODO["overdue"]))
    for resource, what, code, n in failures:
        name = names.get(resource.lower(), resource.rstrip("/").rsplit("/", 1)[-1])
        out.append(Action("failure", name, resource, f"{what} failed{f' ({code})' if code else ''}"
                          f"{f', {n} times' if n > 1 else ''}", TODO["failure"]))
    for p in data.vaults:  # backups one identity could delete (docs/protected-vaults.md)
        if p.findings():
            out.append(Action("vault", p.vault_id.rstrip("/").rsplit("/", 1)[-1], p.vault_id,
                              "vault backups deletable: " + "; ".join(p.findings()), TODO["vault"]))
    return out
