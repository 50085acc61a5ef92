"""The policy's ``replication`` block (Site Recovery, issue 21): a valid block loads with its defaults; every
mistake is an error naming its field, with the others, and the policy is not loaded."""

from __future__ import annotations

import copy
import json

import pytest

from shared.policy.document import NetworkMapping, PolicyError, ReplicationSpec, load_policies

SUB = "00000000-0000-0000-0000-0000000000aa"
CACHE = f"/subscriptions/{SUB}/resourceGroups/rg-dr/providers/Microsoft.Storage/storageAccounts/vmkcachewe"
SOURCE_VNET = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Network/virtualNetworks/vnet-app"
TARGET_VNET = f"/subscriptions/{SUB}/resourceGroups/rg-dr/providers/Microsoft.Network/virtualNetworks/vnet-dr"
BLOCK = {"target_region": "northeurope", "target_resource_group": f"/subscriptions/{SUB}/resourceGroups/rg-dr",
         "network": {"isolated": True}, "cache_storage_accounts": {"westeurope": CACHE}}


def document(**changes) -> str:
    block = copy.deepcopy(BLOCK)
    for name, value in changes.items():
        if value is None:
            block.pop(name)
        else:
            block[name] = value
    return json.dumps({"version": 1, "default": "gold", "policies": {
        "gold": {"schedule": {"every_hours": 4}, "snapshots": {}, "replication": block},
        "silver": {"schedule": {"every_hours": 12}, "snapshots": {}}}})


def errors(**changes) -> list[str]:
    with pytest.raises(PolicyError) as err:
        load_policies(document(**changes))
    return err.value.errors


def test_a_block_loads_with_its_defaults_and_a_policy_without_one_has_none():
    policies = load_policies(document())
    spec = policies.get("gold").replication
    assert spec == ReplicationSpec("northeurope", BLOCK["target_resource_group"], (("westeurope", CACHE),),
                                   isolated_network=True)
    assert (spec.recovery_point_retention_hours, spec.app_consistent_frequency_hours, spec.all_vms) == (24, 4, False)
    assert spec.cache_account("westeurope") == CACHE and spec.cache_account("eastus") is None
    assert policies.get("silver").replication is None


def test_network_mappings_and_the_optional_fields_load():
    spec = load_policies(document(
        network={"mappings": [{"source_vnet": SOURCE_VNET, "target_vnet": TARGET_VNET, "target_subnet": "app"}]},
        recovery_point_retention_hours=72, app_consistent_frequency_hours=0, consistency_group="billing",
        all_vms=True)).get("gold").replication
    assert not spec.isolated_network
    assert spec.network_mappings == (NetworkMapping(SOURCE_VNET, TARGET_VNET, "app"),)
    assert spec.mapping_for(SOURCE_VNET.replace("vnet-app", "VNet-App")) is not None  # ids are case-insensitive
    assert (spec.recovery_point_retention_hours, spec.app_consistent_frequency_hours) == (72, 0)
    assert (spec.consistency_group, spec.all_vms) == ("billing", True)


W = "policies.gold.replication"


@pytest.mark.parametrize("changes, expected", [
    ({"target_region": None}, f"{W}.target_region: is required"),
    ({"target_region": "North Europe"}, f"{W}.target_region: must be an Azure region name"),
    ({"target_resource_group": "rg-dr"}, f"{W}.target_resource_group: must be a resource group's id"),
    ({"network": None}, f"{W}.network: is required"),
    ({"network": {}}, f"{W}.network: needs exactly one of isolated or mappings"),
    ({"network": {"isolated": False}}, f"{W}.network.isolated: must be true"),
    ({"network": {"isolated": True, "mappings": [{"source_vnet": SOURCE_VNET, "target_vnet": TARGET_VNET}]}},
     f"{W}.network: needs exactly one of isolated or mappings"),
    ({"network": {"mappings": []}}, f"{W}.network.mappings: must not be empty"),
    ({"network": {"mappings": [{"source_vnet": "vnet-app", "target_vnet": TARGET_VNET}]}},
     f"{W}.network.mappings[0].source_vnet: must be a virtual network's resource id"),
    ({"network": {"mappings": [{"source_vnet": SOURCE_VNET}]}}, f"{W}.network.mappings[0].target_vnet: is required"),
    ({"network": {"mappings": [{"source_vnet": SOURCE_VNET, "target_vnet": SOURCE_VNET}]}},
     f"{W}.network.mappings[0].target_vnet: is the source VNet itself"),
    ({"network": {"mappings": [{"source_vnet": SOURCE_VNET, "target_vnet": TARGET_VNET},
                               {"source_vnet": SOURCE_VNET.replace("vnet-app", "VNet-App"), "target_vnet": TARGET_VNET}]}},
     f"{W}.network.mappings[1].source_vnet: maps the same VNet as mappings[0]"),
    ({"network": {"mappings": [{"source_vnet": SOURCE_VNET, "target_vnet": TARGET_VNET, "target_subnet": "a/b"}]}},
     f"{W}.network.mappings[0].target_subnet: must be a subnet's name"),
    ({"cache_storage_accounts": None}, f"{W}.cache_storage_accounts: is required"),
    ({"cache_storage_accounts": {}}, f"{W}.cache_storage_accounts: must not be empty"),
    ({"cache_storage_accounts": {"westeurope": "vmkcachewe"}},
     f"{W}.cache_storage_accounts.westeurope: must be a storage account's resource id"),
    ({"cache_storage_accounts": {"West Europe": CACHE}}, f'{W}.cache_storage_accounts["West Europe"]: keys are source regions'),
    ({"cache_storage_accounts": {"westeurope": CACHE, "northeurope": CACHE.replace("vmkcachewe", "vmkcacheno")}},
     f"{W}.cache_storage_accounts.northeurope: is the target region"),
    ({"recovery_point_retention_hours": 361}, f"{W}.recovery_point_retention_hours: must be at most 360"),
    ({"recovery_point_retention_hours": 0}, f"{W}.recovery_point_retention_hours: must be at least 1"),
    ({"app_consistent_frequency_hours": 13}, f"{W}.app_consistent_frequency_hours: must be at most 12"),
    ({"app_consistent_frequency_hours": 6, "recovery_point_retention_hours": 2},
     f"{W}.app_consistent_frequency_hours: must not exceed recovery_point_retention_hours (6 > 2)"),
    ({"consistency_group": ""}, f"{W}.consistency_group: must be a name"),
    ({"all_vms": "yes"}, f"{W}.all_vms: must be true or false"),
    ({"vault": "x"}, f"{W}.vault: unknown field"),
])
def test_each_mistake_names_its_field(changes, expected):
    found = errors(**changes)
    assert any(e.startswith(expected) for e in found), found


def test_all_mistakes_of_the_block_are_reported_at_once():
    found = errors(target_region="North Europe", cache_storage_accounts={"westeurope": "x"}, all_vms=1)
    assert {e.split(":")[0] for e in found} == {f"{W}.target_region", f"{W}.cache_storage_accounts.westeurope",
                                                 f"{W}.all_vms"}
