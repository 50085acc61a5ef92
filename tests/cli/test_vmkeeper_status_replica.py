"""``vmkeeper status`` and the Site Recovery replica kind: a VM tagged ``vmkeeper-dr: critical`` without a replicated
item is missing its replica (exit 2, as for any kind); replicated and healthy, the Replica column shows its RPO
against the target in minutes (exit 0); stalled past the target, breached with Azure's health (exit 2). The world
of tests/app/test_compliance_replica.py: a fresh snapshot set is the VM's only kind of point."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

import pytest

from tests.app import replication_arrange as asr
from tests.app.restore_world import old_snapshot_set, start
from tests.app.test_compliance_replica import policies
from tests.cli.cli_world import json_out, vmkeeper


@pytest.fixture
def critical(az, emu, azurite, tmp_path, monkeypatch):
    suffix = secrets.token_hex(4)
    w = start(az, emu, azurite, tmp_path, monkeypatch, VMKEEPER_COMPLIANCE_SCHEDULE="0 */30 * * * *",
              VMKEEPER_ALERTS_TABLE=f"alerts{suffix}", **asr.app_settings(suffix))
    (tmp_path / "policies.json").write_text(json.dumps(policies(w["sub"])))
    asr.dr_vault(az, emu, w, monkeypatch)
    old_snapshot_set(az, w, timedelta(0), policy="snap")
    asr.tag_critical(az, w)
    yield w
    w["host"].close()


def test_a_critical_vm_gates_on_its_replica_missing_then_unhealthy(critical, az):
    human = vmkeeper("status")
    assert human.exit_code == 2, human.output
    assert "missing: Site Recovery replica" in human.stdout and "Replica" in human.stdout
    assert "none / 60 min" in human.stdout and "1 missing" in human.stdout
    doc = json_out(vmkeeper("status", "--json"), "status")
    (vm,) = doc["vms"]
    assert vm["state"] == "missing" and vm["missing"] == ["replica"]
    assert {k["kind"]: k["state"] for k in vm["kinds"]} == {"snapshot_set": "met", "replica": "missing"}

    asr.replicate(az, critical)
    human = vmkeeper("status")
    assert human.exit_code == 0, human.output
    assert " / 60 min" in human.stdout and "1 met" in human.stdout
    doc = json_out(vmkeeper("status", "--json"), "status")
    replica = {k["kind"]: k for k in doc["vms"][0]["kinds"]}["replica"]
    assert replica["state"] == "met" and replica["replication"]["health"] == "Normal"
    assert replica["point_id"].lower() == critical["replicated_item"].lower()

    asr.stall(az, critical)
    az.advance(61 * 60)
    human = vmkeeper("status")
    assert human.exit_code == 2, human.output
    assert "Warning: " in human.stdout and "1 breached" in human.stdout
    result = vmkeeper("status", "--json")
    assert result.exit_code == 2
    (vm,) = json_out(result, "status")["vms"]
    assert vm["state"] == "breached" and "RpoThresholdExceeded" in vm["reason"]
