"""vm_events' event subscription on each protected subscription's Event Grid system topic: only successful VM
writes and deletes, retried 30 times over 24 h, dead letters written to the keyless storage account with the
user-assigned identity. Made after the code is deployed: Event Grid checks an AzureFunction destination
against the function itself (infra/README.md, "Event Grid ordering").

Create-only towards others: an event subscription of that name on a topic is updated only when it delivers to
this app's vm_events (vmkeeper's own); one that delivers elsewhere is an operator's and is left as it is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .arm import Arm

NAME = "vmkeeper-vm-events"
FUNCTION = "vm_events"
EVENT_TYPES = ("Microsoft.Resources.ResourceWriteSuccess", "Microsoft.Resources.ResourceDeleteSuccess")
OPERATIONS = ("Microsoft.Compute/virtualMachines/write", "Microsoft.Compute/virtualMachines/delete")
MAX_DELIVERY_ATTEMPTS = 30
EVENT_TIME_TO_LIVE_MINUTES = 1440


@dataclass(frozen=True)
class Target:
    """Where vm_events is and how its dead letters are written (main.bicep's outputs)."""

    function_app_id: str
    identity_id: str
    storage_account_id: str
    dead_letter_container: str

    @property
    def function_id(self) -> str:
        return f"{self.function_app_id}/functions/{FUNCTION}"


def definition(target: Target):
    """The event subscription vmkeeper wants on every system topic (an azure-mgmt-eventgrid model)."""
    from azure.mgmt.eventgrid.models import (
        AzureFunctionEventSubscriptionDestination,
        DeadLetterWithResourceIdentity,
        EventSubscription,
        EventSubscriptionFilter,
        EventSubscriptionIdentity,
        RetryPolicy,
        StorageBlobDeadLetterDestination,
        StringInAdvancedFilter,
    )

    return EventSubscription(
        event_delivery_schema="EventGridSchema",
        destination=AzureFunctionEventSubscriptionDestination(
            resource_id=target.function_id, max_events_per_batch=1, preferred_batch_size_in_kilobytes=64),
        filter=EventSubscriptionFilter(
            included_event_types=list(EVENT_TYPES),
            advanced_filters=[StringInAdvancedFilter(key="data.operationName", values=list(OPERATIONS))]),
        retry_policy=RetryPolicy(max_delivery_attempts=MAX_DELIVERY_ATTEMPTS,
                                 event_time_to_live_in_minutes=EVENT_TIME_TO_LIVE_MINUTES),
        dead_letter_with_resource_identity=DeadLetterWithResourceIdentity(
            identity=EventSubscriptionIdentity(type="UserAssigned", user_assigned_identity=target.identity_id),
            dead_letter_destination=StorageBlobDeadLetterDestination(
                resource_id=target.storage_account_id, blob_container_name=target.dead_letter_container)))


def delivers_to(subscription, function_id: str) -> bool:
    """Whether an existing event subscription delivers to that function (then it is this app's own)."""
    destination = getattr(subscription, "destination", None)
    return (getattr(destination, "endpoint_type", None) == "AzureFunction"
            and str(getattr(destination, "resource_id", "")).lower() == function_id.lower())


@dataclass(frozen=True)
class Outcome:
    topic_id: str
    result: str  # "created", "updated", "refused" (an operator's of that name), "failed"
    detail: str = ""


def subscribe(arm: Arm, topic_ids: list[str], target: Target, say: Callable[[str], None] = print) -> list[Outcome]:
    """Create (or update vmkeeper's own) event subscription on every topic; one topic failing does not stop the
    others. Returns what happened on each."""
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from azure.mgmt.core.tools import parse_resource_id

    outcomes = []
    for topic_id in topic_ids:
        parts = parse_resource_id(topic_id)
        client = arm.eventgrid(parts["subscription"]).system_topic_event_subscriptions
        try:
            try:
                existing = client.get(parts["resource_group"], parts["name"], NAME)
            except ResourceNotFoundError:
                existing = None
            if existing is not None and not delivers_to(existing, target.function_id):
                outcome = Outcome(topic_id, "refused", f"an event subscription '{NAME}' already exists there and "
                                  f"delivers elsewhere ({getattr(existing.destination, 'endpoint_type', '?')}): it is "
                                  "not vmkeeper's, so it is left as it is; delete or rename it, then run "
                                  "`azd hooks run postdeploy`")
            else:
                client.begin_create_or_update(parts["resource_group"], parts["name"], NAME, definition(target)).result()
                outcome = Outcome(topic_id, "created" if existing is None else "updated")
        except HttpResponseError as exc:
            outcome = Outcome(topic_id, "failed", str(exc.message or exc).splitlines()[0])
        say(f"vmkeeper: {NAME} on {topic_id}: {outcome.result}" + (f" — {outcome.detail}" if outcome.detail else ""))
        outcomes.append(outcome)
    return outcomes
