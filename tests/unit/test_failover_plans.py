"""The recovery plans an application's tags ask for (shared/failover/plans.py, pure) and the failover request's
parsing (shared/failover/request.py): bad tags lose nothing, boot groups keep their order, problems name the tag or
field."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import tags as T
from shared.failover import plans as P
from shared.failover.asr import Group, Item, Plan, Vault
from shared.failover.request import parse
from shared.restore.request import BadRequest

SUB = "00000000-0000-0000-0000-000000000001"
VAULT = Vault.of(f"/subscriptions/{SUB}/resourceGroups/rg-dr/providers/Microsoft.RecoveryServices/vaults/vault-dr")
OTHER = Vault.of(f"/subscriptions/{SUB}/resourceGroups/rg-dr2/providers/Microsoft.RecoveryServices/vaults/vault-2")


def item(name: str, *, state: str = "Protected", vault: Vault = VAULT, active: str = "Primary") -> Item:
    fabric = f"{vault.id}/replicationFabrics/asr-westeurope"
    return Item.of(vault, {"id": f"{fabric}/replicationProtectionContainers/c/replicationProtectedItems/{name}",
                           "properties": {"friendlyName": name, "protectionState": state, "activeLocation": active,
                                          "recoveryFabricId": f"{vault.id}/replicationFabrics/asr-northeurope",
                                          "allowedOperations": ["TestFailover"], "currentScenario": {"scenarioName": "None"},
                                          "providerSpecificDetails": {"fabricObjectId": f"/subscriptions/{SUB}/resourceGroups/"
                                                                      f"rg/providers/Microsoft.Compute/virtualMachines/{name}"}}})


def tagged(app: str | None, group: str | None = None) -> dict[str, str]:
    out = {}
    if app is not None:
        out[T.APP] = app
    if group is not None:
        out[T.APP_GROUP] = group
    return out


def plan(app: str, *groups: list[Item], actions: tuple = ()) -> Plan:
    boot = tuple(Group("Boot", tuple(i.id for i in g), tuple(i.vm_id for i in g), actions if k == len(groups) - 1 else ())
                 for k, g in enumerate(groups))
    return Plan(f"{VAULT.id}/replicationRecoveryPlans/{P.plan_name(app)}", VAULT, P.plan_name(app), "", "",
                (Group("Shutdown", (), ()), Group("Failover", (), ()), *boot), ("TestFailover",), "", "", "")


def names(want: P.Want) -> list[list[str]]:
    return [[i.name for i in g] for g in want.boot]


def test_boot_groups_follow_the_tag_values_in_order_and_the_app_name_is_case_insensitive():
    a, b, c, d = item("a"), item("b"), item("c"), item("d")
    wants, problems = P.desired([(a, tagged("Billing", "7")), (b, tagged("billing")), (c, tagged("billing", "3")),
                                 (d, tagged(None))], [])
    assert problems == []
    (want,) = wants
    assert (want.app, want.name) == ("billing", "vmkeeper-app-billing")
    assert names(want) == [["b"], ["c"], ["a"]]  # 1 (absent), 3, 7: positions, not labels


def test_a_bad_group_keeps_a_member_in_its_group_and_puts_a_new_vm_last():
    a, b, c, d = item("a"), item("b"), item("c"), item("d")
    current = plan("billing", [a], [b, c])
    entries = [(a, tagged("billing", "1")), (b, tagged("billing", "two")), (c, tagged("billing", "1")),
               (d, tagged("billing", "0"))]
    wants, problems = P.desired(entries, [current])
    assert names(wants[0]) == [["a", "c"], ["b", "d"]]
    assert {(p.subject.rsplit("/", 1)[-1], p.field) for p in problems} == {("b", T.APP_GROUP), ("d", T.APP_GROUP)}
    told = {p.subject.rsplit("/", 1)[-1]: p.detail for p in problems}
    assert "'two'" in told["b"] and "stays in boot group 2" in told["b"]
    assert "'0'" in told["d"] and "last boot group" in told["d"]


def test_a_bad_app_tag_keeps_the_vm_in_its_plan_and_adds_it_to_none():
    a, b, c = item("a"), item("b"), item("c")
    wants, problems = P.desired([(a, tagged("billing")), (b, tagged("bil ling")), (c, tagged(""))],
                                [plan("billing", [a, b])])
    assert names(wants[0]) == [["a", "b"]]
    assert [(p.subject.rsplit("/", 1)[-1], p.field) for p in problems] == [("b", T.APP), ("c", T.APP)]
    assert "in vmkeeper-app-billing" in problems[0].detail and "in no recovery plan" in problems[1].detail


def test_an_untagged_vm_leaves_the_plan_and_an_unlisted_one_keeps_its_place():
    a, b, c = item("a"), item("b"), item("c")
    wants, _ = P.desired([(a, tagged("billing")), (b, {}), (c, None)], [plan("billing", [a, b], [c])])
    assert names(wants[0]) == [["a"], ["c"]]


def test_an_application_across_two_vaults_is_a_problem_and_no_plan():
    wants, problems = P.desired([(item("a"), tagged("billing")), (item("b", vault=OTHER), tagged("billing"))], [])
    assert wants == []
    (problem,) = problems
    assert problem.field == T.APP and "2 vaults or region pairs" in problem.detail


def test_a_vm_not_yet_protected_waits_outside_the_plan():
    a, b = item("a"), item("b", state="EnablingProtection")
    (want,), _ = P.desired([(a, tagged("billing")), (b, tagged("billing", "2"))], [])
    assert names(want) == [["a"]] and [i.name for i in want.waiting] == ["b"]


def test_groups_for_keeps_other_groups_and_each_boot_groups_actions():
    a, b = item("a"), item("b")
    action = {"actionName": "check", "failoverTypes": ["PlannedFailover"], "failoverDirections": ["PrimaryToRecovery"],
              "customDetails": {"instanceType": "ManualActionDetails"}}
    current = plan("billing", [a], [b], actions=(action,))
    (want,), _ = P.desired([(a, tagged("billing")), (b, tagged("billing"))], [current])
    groups = P.groups_for(want, current)
    assert [g.type for g in groups] == ["Shutdown", "Failover", "Boot", "Boot"]
    assert groups[2].items == (a.id, b.id) and groups[3].items == () and groups[3].start_actions == (action,)
    assert not P.same_order(current, want)


@pytest.mark.parametrize("value,ok", [("1", True), (" 2 ", True), ("20", True), ("0", False), ("21", False),
                                      ("1.5", False), ("", False), ("²", False), ("-1", False)])
def test_group_values(value, ok):
    group, problem = P.read_group({T.APP_GROUP.upper(): value})
    assert (group is not None, problem is None) == (ok, ok)
    if not ok:
        assert problem.startswith(f"{T.APP_GROUP}: ")


@pytest.mark.parametrize("body,fields", [
    ({"action": "unplanned_failover", "plan": "billing", "network": "x"}, {"network"}),
    ({"action": "test_failover", "vm": "/subscriptions/x", "network": "/subscriptions/y"}, {"vm", "network"}),
    ({"plan": "billing", "dry_run": "yes"}, {"action", "dry_run"}),
    ({"action": "test_failover_cleanup", "plan": "billing", "comment": "x" * 1025}, {"comment"}),
    ({"action": "commit", "plan": "billing", "": 1}, {'""'}),
])
def test_a_bad_request_names_each_field(body, fields):
    with pytest.raises(BadRequest) as err:
        parse(body)
    assert {p.field for p in err.value.problems} == fields


def test_a_request_reads_back_as_given():
    net = f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-drill"
    request = parse({"action": "test_failover", "plan": " Billing ", "network": net, "recovery_point": "latest_processed"})
    assert (request.plan, request.network.group_id) == ("billing", f"/subscriptions/{SUB}/resourceGroups/rg-net")
    assert request.to_json() == {"action": "test_failover", "plan": "billing", "network": net,
                                 "recovery_point": "latest_processed", "dry_run": False}


NET = f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-drill"
VM = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1"
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30),
                    st.sampled_from(["billing", "Bad Name", NET, VM, "latest", "test_failover", "unplanned_failover",
                                     "/subscriptions/../x", ""]))
JSONISH = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                       max_leaves=8)
BODIES = st.one_of(JSONISH, st.fixed_dictionaries({}, optional={
    name: st.one_of(SCALARS, JSONISH) for name in ("action", "plan", "vm", "network", "recovery_point",
                                                   "shut_down_source", "comment", "dry_run")}))


@settings(max_examples=300)
@given(BODIES)
def test_any_body_is_a_request_or_problems_each_naming_a_field(body):
    try:
        request = parse(body)
    except BadRequest as exc:
        assert exc.problems and all(p.field and p.detail for p in exc.problems)
        return
    assert (request.plan is None) != (request.vm is None)
    assert parse(request.to_json()) == request  # what is recorded reads back the same
