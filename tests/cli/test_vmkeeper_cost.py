"""``vmkeeper cost`` over the cost timer's recorded run (tests/app/test_cost.py's world): an error naming the timer
before any run; after one, per policy and per VM in a table and in JSON (checked against
tests/cli/output_schemas.json), az's --query, --policy; the command asks Azure nothing (no query, no write)."""

from __future__ import annotations

import time
from datetime import timedelta

from tests.app.restore_world import old_snapshot_set
from tests.app.test_cost import QUERY, _created_at, _snapshots, cost_world
from tests.cli.cli_world import json_out, vmkeeper


def test_cost_shows_the_recorded_run_per_policy_and_per_vm(az, emu, azurite, tmp_path, monkeypatch):
    w = cost_world(az, emu, azurite, tmp_path, monkeypatch, budget=500.0)
    try:
        none = vmkeeper("cost")
        assert none.exit_code == 1 and "VMKEEPER_COST_SCHEDULE" in none.output
        old_snapshot_set(az, w, timedelta(0))
        _created_at(az, emu, [s.id for s in _snapshots(az, w)], time.time() - 2 * 86400)
        w["host"].fire_timer("cost_per_vm")
        mark = len(az.calls())
        doc = json_out(vmkeeper("cost", "-o", "json"), "cost")
        (vm,) = [v for v in doc["vms"] if v["name"] == w["vm_id"].lower()]
        (policy,) = doc["policies"]
        assert policy["name"] == "full" and vm["policy"] == "full" and vm["month_to_date"] > 0
        assert policy["month_to_date"] == vm["month_to_date"] and len(vm["daily"]) >= 3
        assert vmkeeper("cost", "--query", "policies[0].name", "-o", "tsv").stdout.strip() == "full"
        human = vmkeeper("cost")
        assert human.exit_code == 0 and "Cost per policy" in human.stdout and "vm-00000" in human.stdout
        assert "USD" in human.stdout
        bad = vmkeeper("cost", "--policy", "gold")
        assert bad.exit_code == 1 and "--policy" in bad.output and "full" in bad.output
        assert [c for c in az.calls(mark) if c["operation"] == QUERY or c["method"] in ("PUT", "PATCH", "DELETE")] == []
    finally:
        w["host"].close()
