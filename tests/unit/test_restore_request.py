"""Restore requests read strictly: each source kind × target type, and every problem naming its field."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.access import ParsedId
from shared.restore import catalogue
from shared.restore.request import BadRequest, parse, point_kind

SUB = "6d4a5a5c-2f4e-4c5e-9f5b-3c3f2d1e0a9b"
SRC = f"/subscriptions/{SUB}/resourceGroups/rg-prod"
DST = f"/subscriptions/{SUB}/resourceGroups/rg-restore"
VM = f"{SRC}/providers/Microsoft.Compute/virtualMachines/web-01"
OTHER_VM = f"{DST}/providers/Microsoft.Compute/virtualMachines/web-02"
SUBNET = f"{DST}/providers/Microsoft.Network/virtualNetworks/vnet-1/subnets/default"
STAGING = f"{DST}/providers/Microsoft.Storage/storageAccounts/vmkstaging01"
SET_POINT = "snapshot-set:0123456789abcdef:westeurope"
RP_POINT = f"{SRC}/providers/Microsoft.Compute/restorePointCollections/vmk-rpc-web/restorePoints/vmk-rp-1"
VAULT_POINT = (f"{SRC}/providers/Microsoft.RecoveryServices/vaults/vault-we/backupFabrics/Azure/protectionContainers/"
               "IaasVMContainer;iaasvmcontainerv2;rg-prod;web-01/protectedItems/VM;iaasvmcontainerv2;rg-prod;web-01/"
               "recoveryPoints/1234567890123")
POINTS = {catalogue.SNAPSHOT_SET: SET_POINT, catalogue.RESTORE_POINT: RP_POINT, catalogue.VAULT: VAULT_POINT}

# Every target a source kind takes, with all its fields.
DISK_TARGETS = {
    "disks": {"type": "disks", "resource_group": DST},
    "vm": {"type": "vm", "resource_group": DST, "vm_name": "web-01-restored", "subnet": SUBNET, "vm_size": "Standard_D2s_v5"},
    "os_disk": {"type": "os_disk", "vm": OTHER_VM},
}
VAULT_TARGETS = {
    "disks": {"type": "disks", "resource_group": DST, "staging_storage_account": STAGING},
    "vm": {"type": "vm", "resource_group": DST, "vm_name": "web-01-restored", "subnet": SUBNET,
           "staging_storage_account": STAGING},
    "original_location": {"type": "original_location", "staging_storage_account": STAGING},
}
VALID = [(kind, ttype, target) for kind in (catalogue.SNAPSHOT_SET, catalogue.RESTORE_POINT)
         for ttype, target in DISK_TARGETS.items()] + [(catalogue.VAULT, t, v) for t, v in VAULT_TARGETS.items()]


def body(kind: str = catalogue.SNAPSHOT_SET, target: dict | None = None, **top) -> dict:
    doc = {"vm": VM, "recovery_point": POINTS[kind], "target": copy.deepcopy(target or DISK_TARGETS["disks"])}
    doc.update(top)
    return doc


def problems(doc) -> dict[str, str]:
    with pytest.raises(BadRequest) as caught:
        parse(doc)
    return {p.field: p.detail for p in caught.value.problems}


@pytest.mark.parametrize(("kind", "ttype", "target"), VALID, ids=[f"{k}-{t}" for k, t, _ in VALID])
def test_every_source_kind_and_target_type_it_takes(kind, ttype, target):
    request = parse(body(kind, target, dry_run=True))
    assert (request.source_kind, request.target_type, request.dry_run) == (kind, ttype, True)
    assert request.vm.id == VM and request.recovery_point == POINTS[kind]
    for name, value in target.items():
        if name == "type":
            continue
        got = request.target[name]
        assert (got.id if isinstance(got, ParsedId) else got) == value
    assert request.to_json() == body(kind, target, dry_run=True)


def test_optional_fields_may_be_left_out():
    target = {k: v for k, v in DISK_TARGETS["vm"].items() if k != "vm_size"}
    request = parse(body(catalogue.RESTORE_POINT, target))
    assert "vm_size" not in request.target and request.dry_run is False


@pytest.mark.parametrize(("value", "kind"), [
    (SET_POINT, catalogue.SNAPSHOT_SET), (RP_POINT, catalogue.RESTORE_POINT), (VAULT_POINT, catalogue.VAULT),
    (RP_POINT.upper().replace(SUB.upper(), SUB), catalogue.RESTORE_POINT),
])
def test_the_source_kind_comes_from_the_point_id(value, kind):
    assert point_kind(value) == kind


@pytest.mark.parametrize("value", [
    "snapshot-set:0123456789ABCDEF:westeurope", "snapshot-set:0123456789abcde:westeurope",
    "snapshot-set:0123456789abcdef:West Europe", "snapshot-set:0123456789abcdef:", "snapshot-set:0123456789abcdef",
    f"{SET_POINT}\n", VM, RP_POINT + "/", "recovery-point-1",
])
def test_ids_that_name_no_point(value):
    with pytest.raises(ValueError):
        point_kind(value)
    assert "recovery_point" in problems(body() | {"recovery_point": value})


# --- one problem per field ---------------------------------------------------------------------------
def without(doc: dict, name: str) -> dict:
    return {k: v for k, v in doc.items() if k != name}


@pytest.mark.parametrize(("doc", "field"), [
    (without(body(), "vm"), "vm"),
    (body(vm=None), "vm"),
    (body(vm=VM + "/"), "vm"),
    (body(vm=f"{SRC}/providers/Microsoft.Compute/disks/web-01"), "vm"),
    (without(body(), "recovery_point"), "recovery_point"),
    (body(recovery_point=""), "recovery_point"),
    (body(recovery_point=["x"]), "recovery_point"),
    (body(recovery_point="snapshot-set:" + "a" * 2048), "recovery_point"),
    (without(body(), "target"), "target"),
    (body(target=None) | {"target": "disks"}, "target"),
    (body(target=None) | {"target": ["disks"]}, "target"),
    (body(target={"resource_group": DST}), "target.type"),
    (body(target={"type": "Disks", "resource_group": DST}), "target.type"),
    (body(target={"type": 3, "resource_group": DST}), "target.type"),
    (body(target={"type": "disks"}), "target.resource_group"),
    (body(target={"type": "disks", "resource_group": SRC + "/"}), "target.resource_group"),
    (body(target={"type": "disks", "resource_group": VM}), "target.resource_group"),
    (body(target=without(DISK_TARGETS["vm"], "vm_name")), "target.vm_name"),
    (body(target=DISK_TARGETS["vm"] | {"vm_name": "web-"}), "target.vm_name"),
    (body(target=DISK_TARGETS["vm"] | {"vm_name": "a" * 65}), "target.vm_name"),
    (body(target=DISK_TARGETS["vm"] | {"vm_name": "../x"}), "target.vm_name"),
    (body(target=DISK_TARGETS["vm"] | {"vm_name": 7}), "target.vm_name"),
    (body(target=without(DISK_TARGETS["vm"], "subnet")), "target.subnet"),
    (body(target=DISK_TARGETS["vm"] | {"subnet": SUBNET.rsplit("/subnets/", 1)[0]}), "target.subnet"),
    (body(target=DISK_TARGETS["vm"] | {"vm_size": "Standard D2"}), "target.vm_size"),
    (body(target=DISK_TARGETS["vm"] | {"vm_size": ""}), "target.vm_size"),
    (body(target={"type": "os_disk"}), "target.vm"),
    (body(target={"type": "os_disk", "vm": SUBNET}), "target.vm"),
    (body(catalogue.VAULT, without(VAULT_TARGETS["disks"], "staging_storage_account")), "target.staging_storage_account"),
    (body(catalogue.VAULT, VAULT_TARGETS["disks"] | {"staging_storage_account": "vmkstaging01"}),
     "target.staging_storage_account"),
    (body(catalogue.VAULT, {"type": "original_location"}), "target.staging_storage_account"),
    (body(catalogue.VAULT, {"type": "os_disk", "vm": OTHER_VM}), "target.type"),  # Backup has no OS disk swap
    (body(catalogue.SNAPSHOT_SET, {"type": "original_location"}), "target.type"),
    (body(catalogue.RESTORE_POINT, {"type": "original_location", "staging_storage_account": STAGING}), "target.type"),
    (body(catalogue.SNAPSHOT_SET, VAULT_TARGETS["disks"]), "target.staging_storage_account"),  # not taken
    (body(catalogue.VAULT, DISK_TARGETS["vm"]), "target.vm_size"),  # Backup restores the point's size
    (body(target=DISK_TARGETS["disks"] | {"vm_name": "x"}), "target.vm_name"),
    (body(target=DISK_TARGETS["disks"] | {"region": "westus"}), "target.region"),
    (body(dry_run="true"), "dry_run"),
    (body(dry_run=1), "dry_run"),
    (body(dry_run=None), "dry_run"),
    (body(force=True), "force"),
    (body() | {"Vm": VM}, "Vm"),
])
def test_each_malformed_or_incomplete_body_names_its_field(doc, field):
    found = problems(doc)
    assert field in found, found
    assert all(found.values())


def test_every_problem_is_reported_at_once():
    found = problems({"vm": "web-01", "recovery_point": 5, "target": {"type": "nope"}, "dry_run": "no", "x": 1})
    assert set(found) == {"vm", "recovery_point", "target.type", "dry_run", "x"}
    assert found["x"] == "unknown field"


def test_fields_of_a_right_target_type_are_all_named():
    found = problems(body(catalogue.RESTORE_POINT, {"type": "vm", "extra": 1}))
    assert set(found) == {"target.resource_group", "target.vm_name", "target.subnet", "target.extra"}
    assert found["target.resource_group"] == "required"


def test_a_wrong_target_type_for_the_kind_lists_the_ones_it_takes():
    detail = problems(body(catalogue.VAULT, {"type": "os_disk", "vm": OTHER_VM}))["target.type"]
    assert "disks, vm, original_location" in detail


@pytest.mark.parametrize("doc", [None, [], "{}", 3, True])
def test_a_body_that_is_no_object(doc):
    assert problems(doc) == {"body": "must be a JSON object"}


def test_the_error_message_joins_every_problem():
    with pytest.raises(BadRequest, match=r"^vm: required; recovery_point: required"):
        parse({"target": {"type": "disks", "resource_group": DST}})


# --- what the allow-list checks ----------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "ttype", "expected"), [
    (catalogue.SNAPSHOT_SET, "disks", {("target.resource_group", DST)}),
    (catalogue.RESTORE_POINT, "vm", {("target.resource_group", DST), ("target.subnet", SUBNET)}),
    (catalogue.SNAPSHOT_SET, "os_disk", {("target.vm", OTHER_VM)}),
    (catalogue.VAULT, "disks", {("target.resource_group", DST), ("target.staging_storage_account", STAGING)}),
    (catalogue.VAULT, "vm", {("target.resource_group", DST), ("target.subnet", SUBNET),
                             ("target.staging_storage_account", STAGING)}),
    (catalogue.VAULT, "original_location", {("target.staging_storage_account", STAGING), ("vm", VM)}),
])
def test_target_ids_are_everything_a_restore_writes_to(kind, ttype, expected):
    targets = DISK_TARGETS if kind != catalogue.VAULT else VAULT_TARGETS
    request = parse(body(kind, targets[ttype]))
    ids = request.target_ids()
    assert {(name, p.id) for name, p in ids} == expected
    assert len(ids) == len(expected)


def test_an_empty_field_name_is_named_too():
    # Found by the property test below: {"": ...} gave a problem whose field was "".
    assert problems(body() | {"": 1}) == {'""': "unknown field"}
    assert problems(body(target=DISK_TARGETS["disks"] | {"": 1})) == {'target.""': "not taken by a 'disks' target"}


# --- property: nothing but BadRequest, every problem with a field and a detail ----------------------
FIELDS = ["vm", "recovery_point", "target", "dry_run", "type", "resource_group", "vm_name", "subnet", "vm_size",
          "staging_storage_account"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
REAL_VALUES = st.sampled_from([VM, OTHER_VM, SUBNET, STAGING, DST, SET_POINT, RP_POINT, VAULT_POINT, "disks", "vm",
                               "os_disk", "original_location", "web-01-restored", "Standard_D2s_v5", True, False,
                               VM + "/", VM + "?x", SET_POINT.upper(), ""])


@st.composite
def near_valid(draw) -> dict:
    """A valid body of some kind and target, then a few fields replaced, dropped or added."""
    kind, _, target = draw(st.sampled_from(VALID))
    doc = body(kind, target, dry_run=draw(st.booleans()))
    for _ in range(draw(st.integers(0, 3))):
        where = doc["target"] if isinstance(doc.get("target"), dict) and draw(st.booleans()) else doc
        name = draw(st.sampled_from(FIELDS) | st.text(max_size=8))
        action = draw(st.sampled_from(["set", "drop"]))
        if action == "drop":
            where.pop(name, None)
        else:
            where[name] = draw(REAL_VALUES | JSON)
    return doc


@settings(deadline=None, max_examples=300)
@given(st.one_of(JSON, st.dictionaries(st.sampled_from(FIELDS), REAL_VALUES | JSON, max_size=5), near_valid()))
def test_parse_raises_nothing_but_bad_request_and_names_every_problem(doc):
    try:
        request = parse(doc)
    except BadRequest as exc:
        assert exc.problems
        for problem in exc.problems:
            assert isinstance(problem.field, str) and problem.field
            assert isinstance(problem.detail, str) and problem.detail
    else:
        assert isinstance(doc, dict) and parse(request.to_json()) == request
