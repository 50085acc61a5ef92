"""File recoveries and exports, pure: the request's fields, the plan (which disks, which LUNs, until when), the
record's steps, and — a Hypothesis model of the decision code (shared/restore/lease.py, the restore record's
steps) over a small world — whatever the order of done, expiry and crashes, nothing a file recovery made outlives
it, and nothing else is detached or deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.points.model import RecoveryPoint, RestoreDisk
from shared.restore import ilr
from shared.restore import lease as L
from shared.restore import plan as P
from shared.restore.records import Record
from shared.restore.request import BadRequest, parse, targets_for

SUB = "00000000-0000-0000-0000-000000000001"
VM = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/web-01"
HELPER = f"/subscriptions/{SUB}/resourceGroups/rg-ops/providers/Microsoft.Compute/virtualMachines/rescue-01"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-restore"
SET = "snapshot-set:0123456789abcdef:westeurope"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SNAP = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/snapshots"
POINT = RecoveryPoint(SET, "snapshot_set", NOW - timedelta(hours=3), "westeurope", "CrashConsistent", True,
                      disks=(RestoreDisk(None, "web-01-os", f"{SNAP}/s-os", 64, "Linux"),
                             RestoreDisk(0, "web-01-data0", f"{SNAP}/s-0", 128), RestoreDisk(1, "web-01-data1", f"{SNAP}/s-1", 32)))


def _files(**target) -> dict:
    return {"vm": VM, "recovery_point": SET, "target": {"type": "files", "vm": HELPER, **target}}


def _helper(luns=(0, 1), most=4, region="westeurope") -> P.Facts:
    return P.Facts(target_vm={"id": HELPER, "region": region, "size": "Standard_D2s_v5", "luns_used": list(luns),
                              "max_data_disks": most})


# --- the request -------------------------------------------------------------------------------------------
def test_files_and_export_fields_are_read_strictly_naming_each_field():
    request = parse(_files(luns=[1], os_disk=True, duration_hours=2))
    assert request.target["luns"] == [1] and request.target["os_disk"] and request.target["duration_hours"] == 2
    assert [f for f, _ in request.target_ids()] == ["target.vm"]  # the allow-list checks the VM written to
    with pytest.raises(BadRequest) as err:
        parse(_files(luns=[1, 1], duration_hours=100, os_disk="yes", resource_group=RG))
    assert {p.field for p in err.value.problems} == {"target.luns", "target.duration_hours", "target.os_disk",
                                                      "target.resource_group"}
    with pytest.raises(BadRequest) as err:
        parse({"vm": VM, "recovery_point": SET, "target": {"type": "export", "resource_group": RG}})
    assert [p.field for p in err.value.problems] == ["target.lun"]
    export = parse({"vm": VM, "recovery_point": SET, "target": {"type": "export", "resource_group": RG, "lun": 0}})
    assert export.target["lun"] == 0 and "duration_hours" not in export.target
    assert "files" in targets_for("snapshot_set") and "export" in targets_for("restore_point")
    assert "files" in targets_for("vault") and "export" not in targets_for("vault")  # item-level recovery's own Kind


# --- the plan ----------------------------------------------------------------------------------------------
def test_a_file_recovery_plans_the_luns_asked_on_free_luns_of_the_vm_until_its_expiry():
    plan = P.make("a" * 16, parse(_files(luns=[1], os_disk=True, duration_hours=2)), POINT, _helper(), NOW)
    assert plan.steps == (L.CREATE_DISKS, L.ATTACH_DISKS) and plan.end_steps == (L.REMOVE_DISKS,)
    assert [(c["source_lun"], c["lun"], c["source_disk"]) for c in plan.carries()] == [(1, 2, "web-01-data1"),
                                                                                       (None, 3, "web-01-os")]
    assert all(d["id"].startswith(f"/subscriptions/{SUB}/resourceGroups/rg-ops/") for d in plan.disks)
    assert plan.lease["expires_at"] == "2026-12-01T11:00:00Z"
    assert ("target.vm", HELPER) in plan.writes()
    whole = P.make("a" * 16, parse(_files()), POINT, _helper(luns=()), NOW)  # default: every data disk, 12 h
    assert [d["lun"] for d in whole.disks] == [0, 1] and whole.lease["hours"] == 12.0


def test_a_file_recovery_is_refused_for_a_vm_elsewhere_full_or_missing_and_for_luns_not_in_the_point():
    with pytest.raises(BadRequest) as err:
        P.make("a" * 16, parse(_files()), POINT, _helper(region="northeurope"), NOW)
    assert err.value.problems[0].field == "target.vm" and "northeurope" in err.value.problems[0].detail
    with pytest.raises(P.Conflict) as conflict:
        P.make("a" * 16, parse(_files()), POINT, _helper(luns=(0, 1, 2), most=4), NOW)
    assert conflict.value.field == "target.vm" and "no free LUN" in conflict.value.detail
    with pytest.raises(BadRequest) as err:
        P.make("a" * 16, parse(_files(luns=[7])), POINT, _helper(), NOW)
    assert err.value.problems[0].field == "target.luns"
    with pytest.raises(BadRequest) as err:
        P.make("a" * 16, parse(_files()), POINT, P.Facts(), NOW)
    assert err.value.problems[0].detail.endswith("was not found")


def test_an_export_plans_one_disk_in_its_group():
    request = parse({"vm": VM, "recovery_point": SET, "target": {"type": "export", "resource_group": RG, "os_disk": True}})
    plan = P.make("b" * 16, request, POINT, P.Facts(groups={RG.lower(): True}), NOW)
    assert [d["lun"] for d in plan.disks] == [None] and plan.steps == (L.CREATE_DISKS,)
    assert plan.lease["expires_at"] == "2026-12-01T10:00:00Z" and plan.disks[0]["id"].startswith(RG + "/")


# --- a vault point's files (Azure Backup item-level recovery) -------------------------------------------------
VAULT_ID = f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/vault-we"
VPOINT_ID = (f"{VAULT_ID}/backupFabrics/Azure/protectionContainers/iaasvmcontainerv2;rg-app;web-01/protectedItems/"
             "vm;iaasvmcontainerv2;rg-app;web-01/recoveryPoints/38823086363464")
VPOINT = RecoveryPoint(VPOINT_ID, "vault", NOW - timedelta(hours=3), "westeurope", "CrashConsistent", True,
                       disks=(RestoreDisk(None, "web-01-os", "", os_type="Linux"), RestoreDisk(0, "web-01-data0", "")),
                       resource_id=VPOINT_ID, extra={"vault_id": VAULT_ID})


def _vault_files(**target) -> dict:
    return {"vm": VM, "recovery_point": VPOINT_ID, "target": {"type": "files", **target}}


def test_a_vault_file_recovery_takes_an_optional_vm_and_at_most_azures_12_hours():
    bare = parse(_vault_files())
    assert bare.target == {} and bare.target_ids() == []  # no VM named: nothing of ours written
    named = parse(_vault_files(vm=HELPER, duration_hours=0.25))
    assert [f for f, _ in named.target_ids()] == ["target.vm"] and named.target["duration_hours"] == 0.25
    for hours in (13, 72, 0.1, 0):
        with pytest.raises(BadRequest) as err:
            parse(_vault_files(duration_hours=hours))
        assert [p.field for p in err.value.problems] == ["target.duration_hours"]
        assert "from 0.25 and at most 12" in err.value.problems[0].detail
    with pytest.raises(BadRequest) as err:
        parse(_vault_files(luns=[0], resource_group=RG))  # a disk file recovery's fields are not a vault one's
    assert {p.field for p in err.value.problems} == {"target.luns", "target.resource_group"}
    kind = L.kind_of("vault", "files")  # the Kind's bounds are ilr's (Azure's 12 hours)
    assert (kind.default_hours, kind.max_hours, kind.min_hours) == (ilr.DEFAULT_HOURS, ilr.MAX_HOURS, ilr.MIN_HOURS)


def test_a_vault_file_recovery_plans_a_session_until_its_expiry_and_where_its_script_is_taken():
    plan = P.make("d" * 16, parse(_vault_files()), VPOINT, P.Facts(), NOW)
    assert plan.steps == (L.PROVISION_ILR,) and plan.end_steps == (L.REVOKE_ILR,)
    assert plan.lease["hours"] == 12.0 and plan.lease["expires_at"] == "2026-12-01T21:00:00Z"
    assert plan.lease["script"] == f"/api/restores/{'d' * 16}/script"
    assert plan.vault["point_id"] == VPOINT_ID and plan.vault["source_vm_id"] == VM and plan.vault["os_type"] == "Linux"
    assert plan.creates() == [] and plan.disks == () and plan.vm is None
    linux = {"id": HELPER, "region": "northeurope", "os_type": "Linux"}  # the script runs anywhere: no region asked
    named = P.make("d" * 16, parse(_vault_files(vm=HELPER, duration_hours=2)), VPOINT, P.Facts(target_vm=linux), NOW)
    assert named.vm["id"] == HELPER and named.lease["expires_at"] == "2026-12-01T11:00:00Z"
    assert named.writes() == [("target.vm", HELPER)]  # the allow-list is asked about it again once planned
    with pytest.raises(BadRequest) as err:
        P.make("d" * 16, parse(_vault_files(vm=HELPER)), VPOINT, P.Facts(target_vm={**linux, "os_type": "Windows"}), NOW)
    assert err.value.problems[0].field == "target.vm" and "runs on Linux only" in err.value.problems[0].detail
    with pytest.raises(BadRequest) as err:
        P.make("d" * 16, parse(_vault_files(vm=HELPER)), VPOINT, P.Facts(), NOW)
    assert err.value.problems[0].field == "target.vm" and err.value.problems[0].detail.endswith("was not found")


def test_only_a_session_this_restore_opened_is_revoked_at_its_end():
    assert L.revokes({"ilr_was_active": False})
    assert not L.revokes({"ilr_was_active": True})  # someone else's: left to them (Azure ends it at 12 h)
    assert not L.revokes({})  # never looked, so never sent: nothing of ours to revoke


# --- the decisions -----------------------------------------------------------------------------------------
def _view(state="ready", expires=NOW, ending=None, began=True, updated=NOW) -> L.View:
    return L.View(state, expires, ending, began, updated)


def test_done_expiry_and_redrive_decisions():
    assert L.on_done(_view(state="pending", began=False)) == "cancel"
    assert L.on_done(_view(state="running")) == "end" and L.on_done(_view()) == "end"
    assert L.on_done(_view(ending={"why": "done"})) == "nothing" and L.on_done(_view(state="succeeded")) == "nothing"
    assert L.on_sweep(_view(expires=NOW + timedelta(minutes=1)), NOW) == "nothing"
    assert L.on_sweep(_view(), NOW) == "expire"
    assert L.on_sweep(_view(state="ending", ending={"why": "done"}, updated=NOW - timedelta(minutes=4)), NOW) == "nothing"
    assert L.on_sweep(_view(state="ending", ending={"why": "done"}, updated=NOW - timedelta(minutes=6)), NOW) == "redrive"
    assert L.on_sweep(_view(state="failed"), NOW + timedelta(days=9)) == "nothing"


def test_only_disks_with_the_restores_tag_are_ours_and_only_they_leave_the_vm():
    found = {"/d1": {"vmkeeper-restore": "r1"}, "/d2": {"vmkeeper-restore": "r2"}, "/d3": {}}
    assert L.ours(["/D1", "/d2", "/d3", "/d4"], found, "r1", "vmkeeper-restore") == ["/D1"]
    disks = [{"lun": 0, "managedDisk": {"id": "/own"}}, {"lun": 5, "managedDisk": {"id": "/D1"}}]
    assert L.detached_list(disks, ["/d1"]) == [disks[0]]
    assert L.free_luns([0, 2], 4, 2) == [1, 3] and L.free_luns([0, 1, 2], 4, 2) is None


# --- the model ----------------------------------------------------------------------------------------------
class World:
    """Azure as the model sees it: disks (id → tags, the VM holding it) and the operator's VM's data disks."""

    def __init__(self) -> None:
        own = {"/own0": 0, "/own1": 1}
        self.disks: dict[str, dict] = {i: {"tags": {}, "vm": HELPER} for i in own}
        self.disks["/other-restore"] = {"tags": {"vmkeeper-restore": "z" * 16}, "vm": None}
        self.vm: dict[int, str] = {lun: i for i, lun in own.items()}
        self.deleted: list[str] = []
        self.detached: list[str] = []

    def foreign(self) -> set[str]:
        return {"/own0", "/own1", "/other-restore"}


class Session:
    """A vault point's item-level recovery session as Azure keeps it: None, vmkeeper's, or someone else's (opened
    before the restore asked); and whether Azure refuses the provision."""

    def __init__(self, theirs: bool, refuse: bool) -> None:
        self.holder: str | None = "theirs" if theirs else None
        self.refuse = refuse
        self.ended: list[str] = []  # whose sessions vmkeeper revoked


def _run_ilr(session: Session, step: str, context: dict) -> tuple[str, dict]:
    """shared/restore/ilr.py's provision and revoke as steps.py runs them (lease.revokes decides the revoke):
    ("wait", context to save) until ("next", context) or ("fail", {})."""
    if step == L.PROVISION_ILR:
        if "ilr_was_active" not in context:  # noted (and saved) before anything is sent
            return "wait", {"ilr_was_active": session.holder is not None}
        if context.get("ilr_operation"):
            return "next", {}
        if session.refuse:
            return "fail", {}
        session.holder = session.holder or "ours"  # an active session is kept (joined), else one is opened
        return "wait", {"ilr_operation": "op"}
    assert step == L.REVOKE_ILR
    if not L.revokes(context):
        return "next", {"ilr_left_active": bool(context.get("ilr_was_active"))}
    if session.holder is not None:
        session.ended.append(session.holder)
        session.holder = None
    return "next", {}


def _run_step(world: World, step: str, restore_id: str, plan: P.Plan) -> str:
    """The steps' effects on the world, the way shared/restore/steps.py decides them (lease.ours, detached_list)."""
    if step == L.CREATE_DISKS:
        for d in plan.disks:
            held = world.disks.get(d["id"].lower())
            if held is not None and held["tags"].get("vmkeeper-restore") != restore_id:
                return "fail"
            world.disks.setdefault(d["id"].lower(), {"tags": {"vmkeeper-restore": restore_id}, "vm": None})
        return "next"
    if step == L.ATTACH_DISKS:
        for d in plan.disks:
            if world.vm.get(d["attach_lun"]) not in (None, d["id"].lower()):
                return "fail"
        for d in plan.disks:
            world.vm[d["attach_lun"]] = d["id"].lower()
            world.disks[d["id"].lower()]["vm"] = HELPER
        return "next"
    assert step == L.REMOVE_DISKS
    mine = L.ours([d["id"] for d in plan.disks], {i: d["tags"] for i, d in world.disks.items()}, restore_id,
                  "vmkeeper-restore")
    entries = [{"lun": lun, "managedDisk": {"id": i}} for lun, i in world.vm.items()]
    kept = L.detached_list(entries, mine)
    for lun, i in list(world.vm.items()):
        if {"lun": lun, "managedDisk": {"id": i}} not in kept:
            del world.vm[lun]
            world.detached.append(i)
            world.disks[i]["vm"] = None
    for i in mine:
        world.deleted.append(i.lower())
        del world.disks[i.lower()]
    return "next"


class Run:
    """One file recovery's record driven by the decision code: deliveries (each may crash after its effect, before
    its record is saved), the operator's done, the timer's sweep, and time."""

    def __init__(self, world: World, hours: float, clash: bool, squat: bool = False,
                 session: Session | None = None) -> None:
        self.world, self.now, self.session = world, NOW, session
        if session is not None:  # a vault point's files: Azure Backup's session, nothing attached
            request = parse(_vault_files(duration_hours=hours))
            plan = P.make("c" * 16, request, VPOINT, P.Facts(), NOW)
            clash = squat = False
        else:
            request = parse(_files(duration_hours=hours))
            plan = P.make("c" * 16, request, POINT, _helper(luns=sorted(world.vm)), NOW)
        if squat:  # a disk of the planned name, not this restore's (no tag): never adopted, detached or deleted
            world.disks[plan.disks[-1]["id"].lower()] = {"tags": {"owner": "someone"}, "vm": None}
        if clash:  # someone attaches a disk at a planned LUN after the plan: attaching fails, what was made is undone
            world.disks["/late"] = {"tags": {}, "vm": HELPER}
            world.vm[plan.disks[0]["attach_lun"]] = "/late"
        self.record = Record("c" * 16, "pending", request.to_json(), plan.to_json(), "ops", "2026-12-01T09:00:00Z")
        self.messages = 1

    def _saved(self) -> Record:
        return Record.from_entity(self.record.to_entity() | {"RowKey": self.record.id})

    def deliver(self, crash: bool) -> None:
        if not self.messages:
            return
        self.messages -= 1
        r = self._saved()
        for _ in range(10):
            if r.state in ("succeeded", "failed", "cancelled"):
                break
            move, arg = L.next_move(L.view(r), r.next_step, self.now)
            if move == "expire":
                r.context["ending"], r.state = L.ending(L.EXPIRED, self.now), "ending"
            elif move == "ready":
                r.state = "ready"
                break
            elif move == "end":
                r.state = arg
                break
            else:
                if not any(s["name"] == arg for s in r.steps):
                    r.steps.append({"name": arg, "started_at": "x", "finished_at": None})
                r.state = "ending" if r.ending else "running"
                self.record = Record.from_entity(r.to_entity())  # saved before the step runs, as the service does
                self.record.updated_at = r.updated_at = self._stamp()
                saved: dict = {}
                if self.session is not None:
                    outcome, saved = _run_ilr(self.session, arg, dict(r.context))
                else:
                    outcome = _run_step(self.world, arg, r.id, P.Plan.from_json(r.plan))
                if crash:  # the worker dies after its effect, before saving: the message comes back
                    self.messages += 1
                    return
                r.context.update(saved)
                if outcome == "wait":  # saved, then looked at again
                    self.record = Record.from_entity(r.to_entity())
                    continue
                if outcome == "fail":
                    assert L.on_fail(L.view(r)) == "undo"
                    r.context["ending"], r.state = L.ending(L.FAILED_MAKING, self.now, {"code": "x"}), "ending"
                else:
                    next(s for s in r.steps if s["name"] == arg)["finished_at"] = "y"
                    r.state = "ending" if r.ending else "running"
        r.updated_at = self._stamp()
        self.record = r

    def _stamp(self) -> str:
        return self.now.strftime("%Y-%m-%dT%H:%M:%SZ")

    def done(self) -> None:
        decided = L.on_done(L.view(self.record))
        if decided == "cancel":
            self.record.state = "cancelled"
        elif decided == "end":
            self.record.context["ending"], self.record.state = L.ending(L.DONE, self.now), "ending"
            self.messages += 1
        self.record.updated_at = self._stamp()

    def sweep(self) -> None:
        action = L.on_sweep(L.view(self.record), self.now)
        if action == "expire":
            self.record.context["ending"], self.record.state = L.ending(L.EXPIRED, self.now), "ending"
            self.record.updated_at = self._stamp()
            self.messages += 1
        elif action == "redrive":
            self.messages += 1

    def play(self, event: str) -> None:
        """One of EVENTS: a delivery (or one that crashes), the operator's done, the timer, an hour, lost messages."""
        if event in ("deliver", "crash"):
            self.deliver(crash=event == "crash")
        elif event == "done":
            self.done()
        elif event == "sweep":
            self.sweep()
        elif event == "time":
            self.now += timedelta(hours=1)
        else:
            self.lose_messages()

    def settle(self) -> None:
        """Then time passes and the platform goes on: the timer every half hour, each message delivered, for 22.5 h
        (past the longest expiry, 12 h, with room)."""
        for _ in range(45):
            self.now += timedelta(minutes=30)
            self.sweep()
            while self.messages:
                self.deliver(crash=False)

    def lose_messages(self) -> None:
        self.messages = 0  # the host died with them (or they were poisoned): only the timer brings it back


EVENTS = st.lists(st.sampled_from(["deliver", "crash", "done", "sweep", "time", "lose"]), max_size=25)


@settings(max_examples=300, deadline=None)
@given(events=EVENTS, hours=st.sampled_from([0.5, 2.0, 12.0]), clash=st.booleans(), squat=st.booleans())
def test_whatever_the_order_of_done_expiry_and_crashes_nothing_made_outlives_it_and_nothing_else_is_touched(
        events, hours, clash, squat):
    world = World()
    run = Run(world, hours, clash, squat)
    squatter = {run.record.plan["disks"][-1]["id"].lower()} if squat else set()
    foreign = world.foreign() | ({"/late"} if clash else set()) | squatter
    for event in events:
        run.play(event)
        assert not set(world.deleted) & foreign and not set(world.detached) & foreign
        assert {lun: i for lun, i in world.vm.items() if i in foreign} == (
            {0: "/own0", 1: "/own1"} | ({run.record.plan["disks"][0]["attach_lun"]: "/late"} if clash else {}))
    run.settle()
    assert run.record.state in ("succeeded", "failed", "cancelled")
    made = {d["id"].lower() for d in run.record.plan["disks"]} - squatter
    assert not made & set(world.disks), "a disk the recovery made outlived it"
    assert not made & set(world.vm.values()), "a disk the recovery made is still attached"
    assert foreign <= set(world.disks) and not set(world.deleted) & foreign and not set(world.detached) & foreign
    assert not (clash and L.ATTACH_DISKS in run.record.done_names)  # a LUN taken since the plan: nothing attached


@settings(max_examples=300, deadline=None)
@given(events=EVENTS, hours=st.sampled_from([0.5, 2.0, 12.0]), theirs=st.booleans(), refuse=st.booleans())
def test_whatever_the_order_a_vault_session_vmkeeper_opened_is_revoked_and_one_someone_else_opened_never_is(
        events, hours, theirs, refuse):
    """A vault point's files: whatever the order of done, expiry, crashes and lost messages, the session this
    restore opened does not outlive it; one that was active before it asked (someone else's) is never revoked."""
    session = Session(theirs, refuse)
    run = Run(World(), hours, False, session=session)
    for event in events:
        run.play(event)
        assert "theirs" not in session.ended
    run.settle()
    assert run.record.state in ("succeeded", "failed", "cancelled")
    assert session.holder == ("theirs" if theirs else None), "a session vmkeeper opened outlived its restore"
    assert "theirs" not in session.ended and session.ended.count("ours") <= 1
