"""Site Recovery's pure parts (issue 21): the names of what vmkeeper makes, which VMs replicate, what enabling
creates in which order, and how ASR's answers are read (a status URL is followed only on the vault's endpoint)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.policy.document import load_policies
from shared.replication import names, plan, select

SUB = "00000000-0000-0000-0000-0000000000aa"
VAULT = f"/subscriptions/{SUB}/resourceGroups/rg-dr/providers/Microsoft.RecoveryServices/vaults/vault-northeurope"
CACHE = f"/subscriptions/{SUB}/resourceGroups/rg-dr/providers/Microsoft.Storage/storageAccounts/vmkcachewe"
SOURCE_VNET = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Network/virtualNetworks/vnet-app"
TARGET_VNET = f"/subscriptions/{SUB}/resourceGroups/rg-dr/providers/Microsoft.Network/virtualNetworks/vnet-dr"
ASR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,259}$")  # the emulator's (and ASR's) rule


def vm_id(rg: str, name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def document(**block) -> object:
    replication = {"target_region": "northeurope", "target_resource_group": f"/subscriptions/{SUB}/resourceGroups/rg-dr",
                   "network": {"isolated": True}, "cache_storage_accounts": {"westeurope": CACHE}, **block}
    return load_policies(json.dumps({"version": 1, "default": "gold", "policies": {
        "gold": {"schedule": {"every_hours": 4}, "snapshots": {}, "replication": replication},
        "plain": {"schedule": {"every_hours": 4}, "snapshots": {}}}}))


# --- names ---------------------------------------------------------------------------------------------------
@given(st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=64), st.sampled_from(["rg-a", "RG-B"]))
def test_an_items_name_is_a_valid_asr_name_and_the_same_for_the_same_vm_in_any_case(vm_name, rg):
    name = names.protected_item(vm_id(rg, vm_name))
    assert ASR_NAME.match(name) and len(name) <= 260
    assert name == names.protected_item(vm_id(rg, vm_name).upper().replace("/SUBSCRIPTIONS/", "/subscriptions/"))
    assert names.is_ours(name, vm_id(rg, vm_name)) and not names.is_ours(name, vm_id(rg + "x", vm_name))


def test_two_vms_of_one_name_in_two_groups_get_two_items():
    assert names.protected_item(vm_id("rg-a", "web")) != names.protected_item(vm_id("rg-b", "web"))
    assert names.protected_item(vm_id("rg-a", "web")).startswith("vmk-web-")


def test_the_policy_is_named_by_its_settings_and_every_name_is_valid():
    assert names.replication_policy(1440, 240, False) == "vmk-a2a-1440min-app240min-pervm"
    assert names.replication_policy(1440, 240, True) != names.replication_policy(1440, 240, False)
    made = [names.fabric("West Europe"), names.container("westeurope"), names.isolated_vnet("northeurope"),
            names.container_mapping("westeurope", "northeurope", names.replication_policy(60, 0, True)),
            names.network_mapping(SOURCE_VNET, "northeurope")]
    assert made[0] == "vmk-a2a-westeurope"
    assert all(ASR_NAME.match(n) for n in made), made


# --- which VMs ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tags, location, skip", [
    ({}, "westeurope", "not_selected"),  # the block replicates only VMs tagged critical
    ({"vmkeeper-dr": "important"}, "westeurope", "not_selected"),
    ({"vmkeeper-dr": "critical", "vmkeeper-optout": "true"}, "westeurope", "opted_out"),
    ({"vmkeeper-dr": "critical", "vmkeeper-restore": "r-1"}, "westeurope", "not_fleet"),  # a restore's, a drill's VM
    ({"vmkeeper-dr": "critical", "vmkeeper-policy": "plain"}, "westeurope", "no_replication_block"),
    ({"vmkeeper-policy": "plain"}, "westeurope", "not_selected"),
    ({"vmkeeper-dr": "critical", "vmkeeper-policy": "nope"}, "westeurope", "bad_tag"),
    ({"vmkeeper-dr": "critical"}, "North Europe", "in_target_region"),  # a failed-over or test VM
    ({"vmkeeper-dr": "critical"}, "eastus", "no_cache_account"),
])
def test_vms_left_out_say_why(tags, location, skip):
    choice = select.decide(tags, location, document())
    assert choice.spec is None and choice.skip == skip, choice


def test_a_vm_marked_critical_in_any_case_replicates_with_its_regions_cache_account():
    choice = select.decide({"VMKeeper-DR": " Critical "}, "West Europe", document())
    assert choice.spec is not None and choice.cache_account == CACHE and choice.policy == "gold"
    missing = select.decide({"vmkeeper-dr": "critical"}, "eastus", document())
    assert missing.reason.startswith("policies.gold.replication.cache_storage_accounts: no cache storage account")


def test_all_vms_replicates_the_untagged_too_never_the_opted_out():
    policies = document(all_vms=True)
    assert select.decide({}, "westeurope", policies).spec is not None
    assert select.decide({"vmkeeper-optout": "yes"}, "westeurope", policies).skip == "opted_out"


# --- what enabling creates -------------------------------------------------------------------------------------------
def test_the_chain_creates_each_level_after_the_one_it_needs():
    spec = document(consistency_group="billing").get("gold").replication
    network = plan.target_network(spec, SOURCE_VNET)
    assert network == (f"/subscriptions/{SUB}/resourceGroups/rg-dr/providers/Microsoft.Network/virtualNetworks/"
                       "vmk-dr-northeurope", "default")
    c = plan.chain(VAULT, "westeurope", spec, {"westeurope": "asr-a2a-default-westeurope"}, SOURCE_VNET, network)
    kinds = [sorted(o.kind for o in level) for level in c.levels]
    assert kinds == [["fabric", "fabric", "policy", "vnet"], ["container", "container", "network_mapping"],
                     ["mapping", "mapping"]]
    assert c.source_fabric == "asr-a2a-default-westeurope" and c.target_fabric == "vmk-a2a-northeurope"  # one adopted
    containers = [o for o in c.levels[1] if o.kind == "container"]
    assert containers[0].path == ("asr-a2a-default-westeurope", "vmk-a2a-westeurope-container")
    forward, reverse = c.levels[2]
    assert forward.body["properties"]["targetProtectionContainerId"] == c.target_container_id
    assert reverse.path[0] == "vmk-a2a-northeurope" and reverse.body["properties"]["targetProtectionContainerId"] == (
        f"{VAULT}/replicationFabrics/asr-a2a-default-westeurope/replicationProtectionContainers/vmk-a2a-westeurope-container")
    policy = next(o for o in c.levels[0] if o.kind == "policy").body["properties"]["providerSpecificInput"]
    assert (policy["recoveryPointHistory"], policy["appConsistentFrequencyInMinutes"], policy["multiVmSyncStatus"]) == (
        1440, 240, "Enable")
    body = plan.enable_input(c, spec, vm_id("rg-app", "web"), ["os-disk", "data-disk"], CACHE)
    details = body["properties"]["providerSpecificDetails"]
    assert [d["diskId"] for d in details["vmManagedDisks"]] == ["os-disk", "data-disk"]
    assert {d["primaryStagingAzureStorageAccountId"] for d in details["vmManagedDisks"]} == {CACHE}
    assert (details["multiVmGroupName"], details["recoverySubnetName"]) == ("billing", "default")
    assert body["properties"]["policyId"] == c.policy_id


def test_mapped_networks_come_from_the_block_and_an_unmapped_vnet_has_none():
    spec = document(network={"mappings": [{"source_vnet": SOURCE_VNET, "target_vnet": TARGET_VNET}]}).get("gold").replication
    assert plan.target_network(spec, SOURCE_VNET.replace("vnet-app", "VNET-APP")) == (TARGET_VNET, None)
    assert plan.target_network(spec, TARGET_VNET) is None
    c = plan.chain(VAULT, "westeurope", spec, {}, SOURCE_VNET, (TARGET_VNET, None))
    assert "vnet" not in [o.kind for o in c.levels[0]]
    assert "recoverySubnetName" not in plan.enable_input(c, spec, vm_id("rg-app", "web"), ["d"], CACHE)[
        "properties"]["providerSpecificDetails"]


# --- ASR's answers --------------------------------------------------------------------------------------------------
def test_operation_status_and_refusals():
    assert plan.operation_state({"status": "InProgress"}) == ("running", None)
    assert plan.operation_state({"status": "Succeeded", "error": None}) == ("succeeded", None)
    state, error = plan.operation_state({"status": "Failed", "error": {"code": "150144", "message": "not running"}})
    assert state == "failed" and plan.is_not_running(error) and plan.error_text(error) == "150144: not running"
    assert plan.operation_state({"status": "Canceled"})[0] == "failed"
    assert plan.operation_state(None) == ("running", None)
    assert not plan.is_not_running({"code": "InternalError"})
    assert plan.refusal(404, "NotFound", None) == "wait"  # a parent still being made
    assert plan.refusal(400, "InvalidContainerMappingInput", "properties.policyId") == "wait"
    assert plan.refusal(400, "InvalidNetworkMappingInput", "properties.recoveryNetworkId") == "fail"
    assert plan.refusal(409, "ResourceAlreadyExists", None) == "fail"


def test_an_initial_replication_is_looked_at_when_it_should_end_at_the_pace_seen():
    since = 1000.0
    # The first look (5 s after the item was sent) at 2 %: no pace yet, a tenth of the wait (at least 1 s).
    after, first = plan.next_look(1005.0, since, 2, None, 600)
    assert (after, first) == (1, {"t": 1005.0, "p": 2.0})
    # 1 s later at 12 %: 10 points are too few to trust a pace (whole percents): a tenth of the wait again.
    assert plan.next_look(1006.0, since, 12, first, 600) == (1, first)
    # 2 s after the first sample at 22 %: 10 % a second, 78 % to go: 8 s (rounded up: never before it should end).
    assert plan.next_look(1007.0, since, 22, first, 600) == (8, first)
    # A minute to go: looked at three quarters of the way, to measure the pace over a longer span, then at the end.
    assert plan.next_look(1025.0, since, 27, {"t": 1005.0, "p": 2.0}, 600) == (44, {"t": 1005.0, "p": 2.0})
    assert plan.next_look(1069.0, since, 90, {"t": 1005.0, "p": 2.0}, 600) == (8, {"t": 1005.0, "p": 2.0})
    # Hours to go at the pace seen: no longer than the ceiling (VMKEEPER_REPLICATION_RETRY_MAX_SECONDS).
    assert plan.next_look(2000.0, since, 23, first, 600) == (600, first)
    # Nothing gained since the first sample, or no percentage at all: a tenth of the wait so far.
    assert plan.next_look(1300.0, since, 2, first, 600) == (30, first)
    assert plan.next_look(1300.0, since, None, first, 600) == (30, first)
    # A replication that started again (less than the first sample): a new first sample.
    assert plan.next_look(1300.0, since, 1, first, 600) == (30, {"t": 1300.0, "p": 1.0})
    # Done as far as the percentage says, the state not yet Protected: in a second.
    assert plan.next_look(1010.0, since, 100, first, 600) == (1, first)


ARM = "https://management.azure.com"


@pytest.mark.parametrize("url, ok", [
    (f"{ARM}{VAULT}/replicationOperationStatus/abc?api-version=2025-08-01", True),
    (f"{ARM}{VAULT.replace('/subscriptions/', '/Subscriptions/')}/replicationOperationStatus/abc", True),  # ASR's spelling
    (f"{ARM}{VAULT}/replicationFabrics/f/operationresults/abc", True),
    (f"https://evil.example{VAULT}/replicationOperationStatus/abc", False),
    (f"http://management.azure.com{VAULT}/replicationOperationStatus/abc", False),
    (f"{ARM}{VAULT}-other/replicationOperationStatus/abc", False),
    (f"{ARM}{VAULT}/replicationOperationStatus/../../../x", False),
    (f"{ARM}{VAULT}/replicationFabrics/f", False),
])
def test_only_the_vaults_own_status_urls_on_the_endpoint_are_followed(url, ok):
    assert plan.status_url_ok(url, ARM, VAULT) is ok


def test_an_items_id_gives_its_fabric_container_and_name():
    item = f"{VAULT}/replicationFabrics/f1/replicationProtectionContainers/c1/replicationProtectedItems/vmk-web-1"
    assert plan.item_parts(item.replace("/subscriptions/", "/Subscriptions/")) == ("f1", "c1", "vmk-web-1")
    assert plan.item_parts(f"{VAULT}/replicationFabrics/f1") is None
