"""The fleet membership rule (shared/membership.py): what a restore or a drill made is no fleet VM unless an
operator opts it in; every listing (scheduler, auto-protect, drill planner, compliance) applies the same rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from shared import membership
from shared import tags as T
from shared.autoprotect.steps import decide_policy
from shared.drill import planner
from shared.policy.document import load_policies

POLICIES = load_policies(json.dumps({"version": 1, "default": "gold", "policies": {"gold": {
    "schedule": {"every_hours": 4}, "snapshots": {"luns": "all"}, "backup_policy": "DefaultPolicy",
    "drill": {"all_vms": True, "point": "snapshot_set"}}}}))


def test_a_vm_a_restore_made_is_no_member_until_an_operator_opts_it_in():
    assert membership.is_member({}) and membership.is_member(None) and membership.is_member({"owner": "db"})
    made = {T.RESTORE: "0123456789abcdef"}
    assert not membership.is_member(made)
    assert "0123456789abcdef" in membership.not_member_reason(made) and T.FLEET in membership.not_member_reason(made)
    assert not membership.is_member({"VMKeeper-Restore": "0123456789abcdef"})  # tag names are case-insensitive
    assert not membership.is_member({**made, T.FLEET: "false"})
    assert membership.is_member({**made, T.FLEET: "true"}) and membership.is_member({**made, "VMKEEPER-FLEET": " Yes "})
    assert membership.is_member({T.RESTORE: ""})  # an empty value names no restore
    rows = [{"id": "a", "tags": made}, {"id": "b", "tags": None}, {"id": "c"}]
    assert [r["id"] for r in membership.members(rows)] == ["b", "c"]


def test_auto_protect_and_the_drill_planner_leave_out_what_a_restore_made():
    made = {T.RESTORE: "0123456789abcdef"}
    choice = decide_policy(made, POLICIES)
    assert choice.backup_policy is None and choice.skip == "not_fleet" and T.RESTORE in choice.reason
    assert decide_policy({**made, T.FLEET: "true"}, POLICIES).backup_policy == "DefaultPolicy"
    vms = [{"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/src", "tags": {}},
           {"id": "/subscriptions/s/resourceGroups/vmkeeper-drill-x/providers/Microsoft.Compute/virtualMachines/src-drill",
            "tags": made}]
    due = planner.due(vms, POLICIES, datetime(2026, 12, 7, tzinfo=UTC))
    assert [d.vm_id.rsplit("/", 1)[-1] for d in due] == ["src"]
