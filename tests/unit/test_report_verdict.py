"""The report's first screen, decided from its data: the verdict sentence for counts that vary, what needs action in
its ranked order, and failed jobs grouped one row per (kind, step, code, resource)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.alerts.errors import code_of
from shared.report.failures import from_alert, group
from shared.report.model import (
    BREACHED,
    MET,
    MISSING,
    NOT_PROTECTED,
    NOT_SUPPORTED,
    OPTED_OUT,
    DrillRow,
    Failure,
    KindStatus,
    LeaseRow,
    ReportData,
    VmRow,
)
from shared.report.verdict import actions, verdict

NOW = "2026-11-28T10:00:00Z"


def vm(name: str, state: str, age: float = 1.0, rpo: float = 25.0) -> VmRow:
    vid = f"/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/{name}"
    kinds = (KindStatus("snapshot_set", BREACHED if state == BREACHED else MET, rpo, None, age),)
    return VmRow(vid, name, "s", "g", "westeurope", "gold", state, f"{name} is {state}", kinds)


def fleet(met=0, breached=0, not_protected=0, missing=0, not_supported=0, opted_out=0) -> tuple[VmRow, ...]:
    counts = {MET: met, BREACHED: breached, NOT_PROTECTED: not_protected, MISSING: missing,
              NOT_SUPPORTED: not_supported, OPTED_OUT: opted_out}
    return tuple(vm(f"{s}-{i}", s, age=30.0 + i) for s, n in counts.items() for i in range(n))


def drill(name: str, started: str, result: str, reason: str = "") -> DrillRow:
    return DrillRow(f"d-{name}-{started}", vm(name, MET).vm_id, started, result, None, None, "snapshot_set",
                    "kept", reason)


def test_the_example_sentence():
    data = ReportData(NOW, NOW, vms=fleet(met=148, breached=4, not_protected=2),
                      drills=(drill("met-0", "2026-11-27T00:00:00Z", "failed", "agent not Ready"),
                              drill("met-0", "2026-11-20T00:00:00Z", "passed"),
                              drill("met-1", "2026-11-27T00:00:00Z", "passed"),
                              drill("met-1", "2026-11-20T00:00:00Z", "failed")))  # not its last: not counted
    assert verdict(data) == "148 of 154 VMs recoverable within RPO; 4 breached, 2 with no restore point; " \
                            "last drill failed for 1"


@settings(max_examples=60)
@given(st.integers(0, 30), st.integers(0, 5), st.integers(0, 5), st.integers(0, 5), st.integers(0, 5),
       st.integers(0, 5))
def test_the_sentence_counts_what_the_data_holds(met, breached, not_protected, missing, not_supported, opted_out):
    data = ReportData(NOW, NOW, vms=fleet(met, breached, not_protected, missing, not_supported, opted_out))
    line = verdict(data)
    judged = met + breached + not_protected + missing + not_supported
    if judged == 0:
        assert line == ("No VMs evaluated yet." if not opted_out else f"No VMs to protect: {opted_out} VM"
                        f"{'' if opted_out == 1 else 's'} opted out.")
        return
    if met == judged:
        assert line == f"All {judged} VM{'' if judged == 1 else 's'} recoverable within RPO"
        return
    assert line.startswith(f"{met} of {judged} VM{'' if judged == 1 else 's'} recoverable within RPO; ")
    for n, words in ((breached, "breached"), (not_protected, "with no restore point"),
                     (missing, "missing a kind of point"), (not_supported, "not supported")):
        assert (f"{n} {words}" in line) == bool(n), line


def test_actions_ranked_breached_by_lateness_then_gaps_drills_overdue_failures():
    vms = (vm("late-a", BREACHED, age=30, rpo=25), vm("late-b", BREACHED, age=100, rpo=25), vm("ok", MET),
           vm("gap", MISSING), vm("none", NOT_PROTECTED), vm("uniform", NOT_SUPPORTED),
           vm("late-c", BREACHED, age=55, rpo=49))  # 1.12× < late-a 1.2×
    lease = LeaseRow("r-1", vms[2].vm_id, "p", "files", "helper", (), (), "2026-11-28T09:00:00Z", "ready", "ops")
    fresh = LeaseRow("r-2", vms[2].vm_id, "p", "files", "helper", (), (), "2026-11-28T11:00:00Z", "ready", "ops")
    data = ReportData(NOW, NOW, vms=vms, leases=(lease, fresh),
                      drills=(drill("ok", "2026-11-27T00:00:00Z", "failed", "quota"),))
    todo = actions(data, [(vms[3].vm_id, "snapshot_set (create)", "OperationNotAllowed", 3)])
    assert [(a.rank, a.name) for a in todo] == [
        (BREACHED, "late-b"), (BREACHED, "late-a"), (BREACHED, "late-c"), (NOT_SUPPORTED, "uniform"),
        (NOT_PROTECTED, "none"), (MISSING, "gap"), ("drill", "ok"), ("overdue", "ok"), ("failure", "gap")]
    assert "4.0× its RPO" in todo[0].what and "quota" in todo[6].what and "r-1" in todo[7].what
    assert "OperationNotAllowed" in todo[-1].what and "3 times" in todo[-1].what
    assert all(a.todo for a in todo)
    assert verdict(data).endswith("; last drill failed for 1; 1 file recovery overdue")


def test_failures_read_kind_step_and_azure_code():
    f = from_alert({"time": NOW, "type": "vmkeeper.protection.failed", "subject": "/vm/a",
                    "data": {"type": "snapshot_set", "reason": "OperationNotAllowed: disk is locked"}})
    assert (f.kind, f.step, f.code) == ("snapshot_set", "", "OperationNotAllowed")
    f = from_alert({"time": NOW, "type": "vmkeeper.restore.failed", "subject": "/vm/b", "data": {
        "target_type": "vm", "error": {"code": "QuotaExceeded", "message": "cores", "step": "create_vm"}}})
    assert (f.kind, f.step, f.code, f.reason) == ("restore vm", "create_vm", "QuotaExceeded", "cores")
    f = from_alert({"time": NOW, "type": "vmkeeper.drill.failed", "subject": "/vm/c", "data": {"reason": "no"}})
    assert (f.kind, f.code) == ("drill", "")
    assert code_of("(DiskInUse) the disk is attached") == "DiskInUse" and code_of("throttled 5 times") == ""


def test_failures_grouped_one_row_per_kind_step_code_resource():
    def f(t, subject, code="OperationNotAllowed", kind="snapshot_set", step=""):
        return Failure(t, "vmkeeper.protection.failed", subject, f"{code}: at {t}", kind, step, code)

    rows = [f("2026-11-28T01:00:00Z", "/VM/a"), f("2026-11-28T03:00:00Z", "/vm/a"),
            f("2026-11-28T02:00:00Z", "/vm/a"), f("2026-11-28T04:00:00Z", "/vm/a", code="QuotaExceeded"),
            f("2026-11-28T05:00:00Z", "/vm/b"), f("2026-11-28T06:00:00Z", "/vm/b", step="copy")]
    groups = group(rows)
    assert [(g.resource.lower(), g.code, g.step, g.count, g.last) for g in groups] == [
        ("/vm/a", "OperationNotAllowed", "", 3, "2026-11-28T03:00:00Z"),
        ("/vm/b", "OperationNotAllowed", "copy", 1, "2026-11-28T06:00:00Z"),
        ("/vm/b", "OperationNotAllowed", "", 1, "2026-11-28T05:00:00Z"),
        ("/vm/a", "QuotaExceeded", "", 1, "2026-11-28T04:00:00Z")]
    assert groups[0].reason == "OperationNotAllowed: at 2026-11-28T03:00:00Z"  # the newest one's
    assert sum(g.count for g in groups) == len(rows)
