"""``vmkeeper status`` on a fleet with a breach: exit code 2 (a pipeline can gate on it), whatever
--state shows; --recorded before and after the compliance timer has run. A world of its own: the
breach is a VM whose only complete point is two days old (the protected world of test_vmkeeper_cli.py
is met throughout)."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

import pytest

from tests.app.restore_world import old_snapshot_set, start
from tests.cli.cli_world import json_out, settings_file, vmkeeper


@pytest.fixture
def breached(az, emu, azurite, tmp_path, monkeypatch):
    w = start(az, emu, azurite, tmp_path, monkeypatch, VMKEEPER_COMPLIANCE_SCHEDULE="0 */30 * * * *",
              VMKEEPER_ALERTS_TABLE=f"alerts{secrets.token_hex(4)}")
    old_snapshot_set(az, w, timedelta(days=2))
    yield w
    w["host"].close()


def test_a_breach_exits_2_in_both_forms_and_the_filter_only_narrows_the_table(breached, tmp_path):
    human = vmkeeper("status")
    assert human.exit_code == 2, human.output
    assert "vm-00000" in human.stdout and "breached" in human.stdout
    assert "Snapshot set" in human.stdout and "/ 2 h" in human.stdout  # age / RPO of the kind
    assert "1 breached" in human.stdout and "0 met" in human.stdout

    result = vmkeeper("status", "--json")
    assert result.exit_code == 2
    doc = json_out(result, "status")
    assert doc["source"] == "live" and doc["counts"]["breached"] == 1
    (vm,) = doc["vms"]
    kinds = {k["kind"]: k for k in vm["kinds"]}
    assert vm["state"] == "breached" and kinds["snapshot_set"]["state"] == "breached"
    assert kinds["snapshot_set"]["age_hours"] > 47 and kinds["snapshot_set"]["rpo_hours"] == 2
    assert kinds["restore_point"]["state"] == "missing" and kinds["restore_point"]["newest"] is None
    assert vm["missing"] == ["restore_point", "snapshot_copy", "restore_point_copy"]

    met_only = vmkeeper("--json", "status", "--state", "met")  # --json before the command works too
    assert met_only.exit_code == 2  # the fleet is still breached: the filter narrows what is shown
    assert json_out(met_only, "status")["vms"] == [] and json_out(met_only)["filter"] == ["met"]
    # The same through a local.settings.json: its Values are the environment.
    path = settings_file(tmp_path / "local.settings.json", breached["settings"])
    assert vmkeeper("--settings", path, "status", "--state", "breached", "--json").exit_code == 2


def test_recorded_needs_an_evaluation_then_shows_the_timers(breached):
    before = vmkeeper("status", "--recorded")
    assert before.exit_code == 1 and "--recorded" in before.stderr and "not run" in before.stderr
    error = vmkeeper("status", "--recorded", "--json")
    assert error.exit_code == 1 and json_out(error, "error")["error"]["field"] == "--recorded"

    breached["host"].fire_timer("compliance_evaluation")
    result = vmkeeper("status", "--recorded", "--json")
    assert result.exit_code == 2
    doc = json_out(result, "status")
    assert doc["source"] == "recorded" and [v["state"] for v in doc["vms"]] == ["breached"]
    human = vmkeeper("status", "--recorded")
    assert human.exit_code == 2 and "(recorded)" in human.stdout
    assert json.loads(vmkeeper("status", "--json").stdout)["evaluated"] >= doc["evaluated"]


@pytest.fixture
def missing(az, emu, azurite, tmp_path, monkeypatch):
    w = start(az, emu, azurite, tmp_path, monkeypatch, VMKEEPER_COMPLIANCE_SCHEDULE="0 */30 * * * *",
              VMKEEPER_ALERTS_TABLE=f"alerts{secrets.token_hex(4)}")
    old_snapshot_set(az, w, timedelta(0))  # this hour's set: fresh, and no restore point nor any copy
    yield w
    w["host"].close()


def test_a_vm_missing_a_kind_fails_the_gate_and_is_named_as_missing_what(missing):
    """Issue 19, defect 7: a VM vmkeeper should protect but cannot was silent (exit 0, `not_protected`)."""
    human = vmkeeper("status")
    assert human.exit_code == 2, human.output
    assert "missing: restore point, snapshot set copy, restore point copy" in human.stdout
    assert "1 missing" in human.stdout and "0 breached" in human.stdout and "exit code 2" in human.stdout
    result = vmkeeper("status", "--json")
    assert result.exit_code == 2
    doc = json_out(result, "status")
    assert doc["counts"] == {"breached": 0, "not_protected": 0, "missing": 1, "not_supported": 0, "met": 0,
                             "opted_out": 0}
    (vm,) = doc["vms"]
    assert vm["state"] == "missing" and vm["missing"] == ["restore_point", "snapshot_copy", "restore_point_copy"]
    assert {k["kind"]: k["state"] for k in vm["kinds"]}["snapshot_set"] == "met"
    assert vmkeeper("status", "--state", "met").exit_code == 2  # the filter narrows what is shown, not the gate
