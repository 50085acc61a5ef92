"""``vmkeeper drills`` against real drills run through the local Functions host (tests/app/test_drill.py's
world): none yet; one that failed (nothing to drill before protection: exit 3); then, after a scheduled
slot made second-region copies, one that passed (exit 0: an older failure is history). Both forms, the
JSON checked against tests/cli/output_schemas.json; the command reads only what vmkeeper recorded."""

from __future__ import annotations

import json

from tests.app.restore_world import POLICIES, protect_once
from tests.app.test_drill import DRILL, drill_world
from tests.cli.cli_world import json_out, vmkeeper


def test_drills_history_last_and_vm_filter_with_exit_3_while_the_newest_failed(az, emu, azurite, tmp_path,
                                                                                 monkeypatch):
    w = drill_world(az, emu, azurite, tmp_path, monkeypatch)
    try:
        vm_id, host = w["vm_id"], w["host"]
        none = vmkeeper("drills")
        assert none.exit_code == 0 and "No DR drill recorded yet" in none.stdout
        assert json_out(vmkeeper("drills", "--json"), "drills")["drills"] == []

        # 1. Before any protection there is no copy to drill: a failed drill, and exit 3.
        host.fire_timer("plan_drills")
        assert host.run_until_idle(timeout=60)
        failing = vmkeeper("drills", "--json")
        assert failing.exit_code == 3, failing.output
        doc = json_out(failing, "drills")
        (failed,) = doc["drills"]
        assert failed["result"] == "failed" and "no complete copy point" in failed["reason"]
        assert failed["vm_id"] == vm_id.lower() and failed["vm_name"] == "vm-00000" and failed["rto_seconds"] is None
        assert doc["newest_failed"] == [vm_id.lower()] and doc["counts"] == {"passed": 0, "failed": 1, "running": 0}
        human = vmkeeper("drills")
        assert human.exit_code == 3 and "failed" in human.stdout and "Newest drill failed: vm-00000" in human.stdout

        # 2. Copies made, a drill of another period (every_days 1: a new drill id now), run to the end.
        protect_once(w)
        policy = {**POLICIES["policies"]["full"], "drill": {**DRILL, "every_days": 1}}
        (tmp_path / "policies.json").write_text(json.dumps({**POLICIES, "policies": {"full": policy}}))
        host.fire_timer("plan_drills")
        assert host.run_until_idle(timeout=180)

        cli_mark = len(az.calls())
        history = json_out(vmkeeper("drills", "--json"), "drills")
        passed = history["drills"][0]
        assert [d["result"] for d in history["drills"]] == ["passed", "failed"]  # newest first
        assert passed["started"] > failed["started"] and passed["id"] != failed["id"]
        assert passed["cleanup"] == "removed" and passed["point_kind"] == "copy" and passed["reason"] == ""
        assert passed["rto_seconds"] > 0 and passed["rpo_seconds"] >= 0
        assert history["newest_failed"] == [] and history["counts"] == {"passed": 1, "failed": 1, "running": 0}
        assert vmkeeper("drills").exit_code == 0  # the older failure is history

        last = json_out(vmkeeper("drills", "--last", "--json"), "drills")
        assert [d["id"] for d in last["drills"]] == [passed["id"]] and last["filter"] == {"vm": None, "last": True}
        mine = json_out(vmkeeper("drills", "--vm", vm_id, "--json"), "drills")
        assert [d["id"] for d in mine["drills"]] == [passed["id"], failed["id"]]
        assert passed["group"] is None and failed["group"] is None  # removed, or never made: no group to look at
        seen = vmkeeper("drills", "--last")
        assert seen.exit_code == 0 and "Newest DR drill of each VM" in seen.stdout and passed["id"] in seen.stdout
        assert "passed" in seen.stdout and "removed" in seen.stdout and "no complete" not in seen.stdout
        assert "1 drill of 1 VM: 1 passed, 0 failed, 0 running" in seen.stdout
        assert az.calls(cli_mark) == []  # from the ledger: no ARM call at all
        # A VM with no drill recorded: one read of it tells a mistyped VM (an error naming --vm) from one not drilled.
        mark = len(az.calls())
        other = vmkeeper("drills", "--vm", vm_id.replace("vm-00000", "vm-00001"), "--json")  # no such VM: an error
        assert other.exit_code == 1 and json_out(other, "error")["error"]["field"] == "--vm"
        assert [(c["method"], c["status"]) for c in az.calls(mark)] == [("GET", 404)]

        # Bad input names --vm.
        bad = vmkeeper("drills", "--vm", "/subscriptions/nope/resourceGroups/rg", "--json")
        assert bad.exit_code == 1 and json_out(bad, "error")["error"]["field"] == "--vm"
        outside = vmkeeper("drills", "--vm", vm_id.replace(w["sub"], "00000000-0000-0000-0000-00000000dead"))
        assert outside.exit_code == 1 and "VMKEEPER_SUBSCRIPTIONS" in outside.stderr
        assert "3 the newest drill" in vmkeeper("drills", "--help").stdout
    finally:
        w["host"].close()


def test_a_drill_whose_group_is_kept_names_it_in_json_and_table(capsys, monkeypatch):
    """A drill kept for a look (keep_hours) or whose removal was refused names its isolated group, where the
    operator finds the restored VM; the table shows the drill's id."""
    from shared.cli import output

    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: the group's name on one line
    row = {"id": "0123456789abcdef", "vm_id": "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/"
           "virtualmachines/web", "vm_name": "web", "started": "2026-12-07T10:00:00Z", "result": "passed",
           "rto_seconds": 12.0, "rpo_seconds": 3600.0, "point_kind": "snapshot_set", "cleanup": "kept", "reason": ""}
    from shared.cli.main import _drill_group

    assert _drill_group(row) == "vmkeeper-drill-0123456789abcdef"
    assert _drill_group({**row, "cleanup": "removed"}) is None and _drill_group({**row, "cleanup": ""}) is None
    output.drills({"filter": {"vm": None, "last": False}, "counts": {"passed": 1, "failed": 0, "running": 0},
                   "newest_failed": [], "drills": [{**row, "group": _drill_group(row)}]})
    shown = capsys.readouterr().out
    assert "0123456789abcdef" in shown and "kept: group vmkeeper-drill-0123456789abcdef" in shown
