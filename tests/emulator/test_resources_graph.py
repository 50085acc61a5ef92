"""Microsoft.Resources (groups, tags, listings) and Resource Graph (paging with $skipToken, the
KQL subset, unsupported operators refused) through the real clients."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.resource.resources.models import ResourceGroup, TagsPatchResource, TagsResource
from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions


def test_resource_groups_lifecycle(resources, compute):
    resources.resource_groups.create_or_update("rg-new", ResourceGroup(location="westeurope", tags={"a": "1"}))
    assert resources.resource_groups.check_existence("rg-new")
    assert resources.resource_groups.get("RG-NEW").tags == {"a": "1"}
    assert {g.name for g in resources.resource_groups.list()} == {"rg-vm-00", "rg-vm-01", "rg-new"}
    resources.resource_groups.begin_delete("rg-vm-01").result()
    assert not resources.resource_groups.check_existence("rg-vm-01")
    with pytest.raises(ResourceNotFoundError) as err:
        compute.virtual_machines.get("rg-vm-01", "vm-00001")
    assert err.value.error.code == "ResourceGroupNotFound"


def test_tags_at_resource_scope(resources, compute):
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00000")
    resources.tags.begin_update_at_scope(vm.id, TagsPatchResource(operation="Merge", properties={"tags": {"x": "1"}})).result()
    assert compute.virtual_machines.get("rg-vm-00", "vm-00000").tags["x"] == "1"
    resources.tags.begin_create_or_update_at_scope(vm.id, TagsResource(properties={"tags": {"only": "this"}})).result()
    assert resources.tags.get_at_scope(vm.id).properties.tags == {"only": "this"}
    resources.tags.begin_update_at_scope(vm.id, TagsPatchResource(operation="Delete", properties={"tags": {"only": ""}})).result()
    assert compute.virtual_machines.get("rg-vm-00", "vm-00000").tags == {}


def test_listing_resources_with_filter(resources, fleet):
    vms = list(resources.resources.list_by_resource_group("rg-vm-00", filter="resourceType eq 'Microsoft.Compute/virtualMachines'"))
    flexible = {i.rsplit("/", 1)[-1] for s in fleet["scaleSets"] if s["orchestrationMode"] == "Flexible" for i in s["instances"]}
    assert {r.name for r in vms} == {"vm-00000", "vm-00002"} | flexible  # the Flexible scale set's VMs are in rg-vm-00
    gold = list(resources.resources.list(filter="tagName eq 'vmkeeper-policy' and tagValue eq 'gold'"))
    assert [r.name for r in gold] == ["vm-00000"]


def _query(graph, query, subs=None, **options):
    return graph.resources(QueryRequest(subscriptions=subs, query=query, options=QueryRequestOptions(**options) if options else None))


def test_graph_pages_with_skip_token_1000_rows_a_page(az, graph):
    seeded = az.seed(subscriptions=2, resource_groups=3, vms=2500, data_disks=[0, 0], regions=["westeurope", "eastus"])
    query = "Resources | where type =~ 'Microsoft.Compute/virtualMachines' | project id, name, location, tags"
    ids, pages, token = [], 0, None
    while True:
        page = _query(graph, query, seeded["subscriptions"], skip_token=token)
        pages += 1
        assert page.total_records == 2500
        ids += [row["id"] for row in page.data]
        token = page.skip_token
        if not token:
            break
    assert pages == 3 and len(ids) == 2500 and len(set(ids)) == 2500


def test_graph_subset_where_tags_and_summarize(az, graph, fleet):
    rows = _query(graph, "Resources | where type =~ 'microsoft.compute/virtualmachines' and tags['vmkeeper-policy'] == 'gold' "
                         "| project name, policy = tostring(tags['vmkeeper-policy'])").data
    assert rows == [{"name": "vm-00000", "policy": "gold"}]
    counts = _query(graph, "Resources | summarize count() by type | order by type asc").data
    by_type = {r["type"]: r["count_"] for r in counts}
    assert by_type["microsoft.compute/virtualmachines"] == fleet["vms"]  # the Flexible scale set's among them
    assert by_type["microsoft.compute/disks"] == fleet["disks"]


def test_graph_scope_is_the_subscriptions_asked_for(az, graph, fleet):
    other = az.seed(subscriptions=1, resource_groups=1, vms=3, vm_prefix="other", seed=99)["subscriptions"]
    rows = _query(graph, "Resources | where type =~ 'microsoft.compute/virtualmachines' | project subscriptionId", other).data
    assert len(rows) == 3 and {r["subscriptionId"] for r in rows} == set(other)
    assert len(_query(graph, "Resources | where type =~ 'microsoft.compute/virtualmachines'").data) == fleet["vms"] + 3  # tenant


@pytest.mark.parametrize("query, operator", [
    ("Resources | join kind=inner (Resources) on id", "join"),
    ("Resources | mv-expand properties.storageProfile.dataDisks", "mv-expand"),
    ("Resources | where ago(1d) > now()", "ago"),
    ("ResourceContainers | limit 1", "ResourceContainers"),
])
def test_graph_refuses_what_it_does_not_support_naming_it(graph, fleet, query, operator):
    with pytest.raises(HttpResponseError) as err:
        _query(graph, query)
    assert err.value.status_code == 400
    assert operator in err.value.message
    assert err.value.error.details[0].code == "UnsupportedOperator"


def test_graph_table_format(graph, fleet):
    result = _query(graph, "Resources | where type =~ 'microsoft.compute/virtualmachines' | project name | order by name asc",
                    result_format="table")
    assert [c["name"] for c in result.data["columns"]] == ["name"]
    assert result.data["rows"][0] == ["vm-00000"]
