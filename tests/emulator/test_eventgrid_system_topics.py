"""Event Grid system topics and their event subscriptions through azure-mgmt-eventgrid 10.4.0 (ARM
2025-02-15): what vmkeeper's Bicep provisions (a Microsoft.Resources.Subscriptions topic with a
user-assigned identity) and what its postdeploy hook subscribes (an AzureFunction destination,
advanced filters, dead letters written with the topic's identity). No official example of either is
stored in ../shared/azure-api: the REST reference and Learn are followed (emulator/README.md)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.eventgrid import EventGridManagementClient
from azure.mgmt.eventgrid.models import (
    AzureFunctionEventSubscriptionDestination,
    DeadLetterWithResourceIdentity,
    EventSubscription,
    EventSubscriptionFilter,
    EventSubscriptionIdentity,
    IdentityInfo,
    StorageBlobDeadLetterDestination,
    StringInAdvancedFilter,
    SystemTopic,
    UserIdentityProperties,
)
from azure.mgmt.resource.resources import ResourceManagementClient

SUB = "0b7c4f4e-2d1a-4c3b-8e5f-6a7b8c9d0e1f"
OTHER = "1c8d5a5f-3e2b-4d4c-9f60-7b8c9d0e1f2a"
RG = "rg-prod-events"
IDENTITY = f"/subscriptions/{SUB}/resourceGroups/rg-prod/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-x"
APP = f"/subscriptions/{SUB}/resourceGroups/rg-prod/providers/Microsoft.Web/sites/func-x"
STORAGE = f"/subscriptions/{SUB}/resourceGroups/rg-prod/providers/Microsoft.Storage/storageAccounts/stx"


@pytest.fixture
def eg(az) -> EventGridManagementClient:
    for sub in (SUB, OTHER):
        az.admin("POST", "subscriptions", {"id": sub})
    az.client(ResourceManagementClient, SUB).resource_groups.create_or_update(RG, {"location": "westeurope"})
    return az.client(EventGridManagementClient, SUB, polling_interval=0)


def topic(eg, name: str = "evgt-vmkeeper-x", source: str = f"/subscriptions/{SUB}", identity: str | None = IDENTITY,
          location: str = "global"):
    info = SystemTopic(location=location, source=source, topic_type="Microsoft.Resources.Subscriptions",
                       tags={"azd-env-name": "prod"},
                       identity=IdentityInfo(type="UserAssigned", user_assigned_identities={identity: UserIdentityProperties()})
                       if identity else None)
    return eg.system_topics.begin_create_or_update(RG, name, info).result()


def vm_events(identity: str = IDENTITY) -> EventSubscription:
    return EventSubscription(
        destination=AzureFunctionEventSubscriptionDestination(resource_id=f"{APP}/functions/vm_events", max_events_per_batch=1),
        filter=EventSubscriptionFilter(
            included_event_types=["Microsoft.Resources.ResourceWriteSuccess", "Microsoft.Resources.ResourceDeleteSuccess"],
            advanced_filters=[StringInAdvancedFilter(key="data.operationName",
                                                     values=["Microsoft.Compute/virtualMachines/write"])]),
        dead_letter_with_resource_identity=DeadLetterWithResourceIdentity(
            identity=EventSubscriptionIdentity(type="UserAssigned", user_assigned_identity=identity),
            dead_letter_destination=StorageBlobDeadLetterDestination(resource_id=STORAGE, blob_container_name="dl")))


def test_a_subscription_topic_with_its_identity_is_made_read_listed_and_deleted(eg):
    made = topic(eg)
    assert made.provisioning_state == "Succeeded" and made.topic_type == "Microsoft.Resources.Subscriptions"
    assert made.location == "global" and made.tags == {"azd-env-name": "prod"}
    assert list(made.identity.user_assigned_identities) == [IDENTITY]
    assert eg.system_topics.get(RG, made.name).id == made.id
    assert [t.name for t in eg.system_topics.list_by_resource_group(RG)] == [made.name]
    eg.system_topics.begin_delete(RG, made.name).result()
    with pytest.raises(ResourceNotFoundError):
        eg.system_topics.get(RG, made.name)


@pytest.mark.parametrize(("kwargs", "target"), [
    ({"location": "westeurope"}, "location"),
    ({"source": f"/subscriptions/{OTHER}"}, "properties.source"),
    ({"source": f"/subscriptions/{SUB}/resourceGroups/{RG}"}, "properties.source"),
])
def test_a_subscription_topic_is_global_and_its_source_is_its_own_subscription(eg, kwargs, target):
    with pytest.raises(HttpResponseError) as err:
        topic(eg, **kwargs)
    assert err.value.status_code == 400 and err.value.error.target == target


def test_a_subscription_has_one_subscriptions_topic(eg):
    topic(eg)
    with pytest.raises(HttpResponseError) as err:
        topic(eg, name="another")
    assert err.value.status_code == 400 and "already has" in err.value.error.message


def test_the_hooks_event_subscription_is_kept_as_sent_and_deleted(az, eg):
    made = topic(eg)
    sub = eg.system_topic_event_subscriptions.begin_create_or_update(RG, made.name, "vmkeeper-vm-events", vm_events()).result()
    assert sub.provisioning_state == "Succeeded"
    got = eg.system_topic_event_subscriptions.get(RG, made.name, "vmkeeper-vm-events")
    assert got.id == f"{made.id}/eventSubscriptions/vmkeeper-vm-events"
    assert got.destination.endpoint_type == "AzureFunction"
    assert got.destination.resource_id == f"{APP}/functions/vm_events"
    [adv] = got.filter.advanced_filters
    assert (adv.operator_type, adv.key, adv.values) == ("StringIn", "data.operationName",
                                                        ["Microsoft.Compute/virtualMachines/write"])
    assert got.dead_letter_with_resource_identity.identity.user_assigned_identity == IDENTITY
    assert [s.name for s in eg.system_topic_event_subscriptions.list_by_system_topic(RG, made.name)] == ["vmkeeper-vm-events"]
    # nested: not one of the group's resources, as in Azure
    resources = az.client(ResourceManagementClient, SUB)
    assert [r.type for r in resources.resources.list_by_resource_group(RG)] == ["Microsoft.EventGrid/systemTopics"]
    eg.system_topic_event_subscriptions.begin_delete(RG, made.name, "vmkeeper-vm-events").result()
    with pytest.raises(ResourceNotFoundError):
        eg.system_topic_event_subscriptions.get(RG, made.name, "vmkeeper-vm-events")


def test_dead_letters_need_an_identity_the_topic_has(eg):
    made = topic(eg, identity=None)
    with pytest.raises(HttpResponseError) as err:
        eg.system_topic_event_subscriptions.begin_create_or_update(RG, made.name, "vmkeeper-vm-events", vm_events()).result()
    assert err.value.status_code == 400
    assert err.value.error.target == "properties.deadLetterWithResourceIdentity.identity.userAssignedIdentity"


def test_a_bad_advanced_filter_is_refused_naming_it(eg):
    made = topic(eg)
    body = vm_events()
    body.filter.advanced_filters[0].key = ""
    with pytest.raises(HttpResponseError) as err:
        eg.system_topic_event_subscriptions.begin_create_or_update(RG, made.name, "vmkeeper-vm-events", body).result()
    assert err.value.error.target == "properties.filter.advancedFilters[0].key"


def test_a_group_delete_takes_the_topic_and_its_event_subscriptions(az, eg, emu):
    made = topic(eg)
    eg.system_topic_event_subscriptions.begin_create_or_update(RG, made.name, "vmkeeper-vm-events", vm_events()).result()
    az.client(ResourceManagementClient, SUB, polling_interval=0).resource_groups.begin_delete(RG).result()
    assert emu.store.get(made.id) is None and emu.store.get(f"{made.id}/eventSubscriptions/vmkeeper-vm-events") is None
