"""Which Event Grid events matter to auto-protect, decided cheaply and purely.

Accepted: ``Microsoft.Resources.ResourceWriteSuccess`` / ``ResourceDeleteSuccess`` whose resource
is a virtual machine itself (``…/providers/Microsoft.Compute/virtualMachines/{name}``), in the
Event Grid schema or CloudEvents 1.0. Everything else — other resource types, a VM's extensions,
tag writes on a VM (``…/virtualMachines/x/providers/Microsoft.Resources/tags/default``, which our
own writes would cause), actions, failed operations — is ignored, so no write of ours loops back.
A malformed event raises BadEvent naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import resource_ids

WRITE = "Microsoft.Resources.ResourceWriteSuccess"
DELETE = "Microsoft.Resources.ResourceDeleteSuccess"


# Azure's limits: a VM's resource name is 1-64 characters (15 is Windows' computer name, a
# different thing), a resource group's 1-90; so a VM's id is at most this long. Anything longer is
# no VM: rejected before it is recorded or queued (a job message must fit a queue message).
MAX_VM_NAME = 64
MAX_RESOURCE_GROUP = 90
MAX_VM_ID = len(f"/subscriptions/{'0' * 36}/resourceGroups/{'g' * MAX_RESOURCE_GROUP}"
                f"/providers/Microsoft.Compute/virtualMachines/{'v' * MAX_VM_NAME}")
MAX_EVENT_ID = 1024  # Event Grid's ids are GUIDs; CloudEvents' any string: bounded, to fit the job message
MAX_TIME = 64


class BadEvent(ValueError):
    """The event is malformed; the message names the field."""


@dataclass(frozen=True)
class VmEvent:
    action: str  # "protect" (the VM was written) or "unprotect" (it was deleted)
    vm_id: str  # lower case: ARM ids are case-insensitive, and this is our dedupe key
    subscription_id: str
    resource_group: str
    vm_name: str
    event_id: str
    event_time: str


def _field(event: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in event:
            return event[name]
    return None


def parse(event: Any) -> VmEvent | None:
    """A VmEvent for a VM write/delete, None for anything to ignore; BadEvent if malformed."""
    if not isinstance(event, dict):
        raise BadEvent("event: must be a JSON object")
    cloud = "specversion" in event or "specVersion" in event
    event_type = _field(event, "type" if cloud else "eventType")
    if not isinstance(event_type, str) or not event_type:
        raise BadEvent("type: required" if cloud else "eventType: required")
    if event_type not in (WRITE, DELETE):
        return None
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise BadEvent("id: required")
    if len(event_id) > MAX_EVENT_ID:
        raise BadEvent(f"id: {len(event_id)} characters, longer than the {MAX_EVENT_ID} accepted")
    data = event.get("data")
    if not isinstance(data, dict):
        raise BadEvent("data: required, an object")
    if data.get("status", "Succeeded") != "Succeeded":
        return None
    uri = data.get("resourceUri") or event.get("subject")
    if not isinstance(uri, str) or not uri.startswith("/"):
        raise BadEvent("data.resourceUri: required, a resource id")
    operation = data.get("operationName", "")
    if not isinstance(operation, str):
        raise BadEvent("data.operationName: must be a string")
    match = resource_ids.vm(uri)
    if match is None:
        return None  # another resource type, or a child of a VM (extension, tags): not ours to act on
    if operation and operation.lower() not in ("microsoft.compute/virtualmachines/write",
                                               "microsoft.compute/virtualmachines/delete"):
        return None
    if len(match.name) > MAX_VM_NAME:
        raise BadEvent(f"data.resourceUri: the virtual machine name is {len(match.name)} characters, longer than "
                       f"Azure's limit of {MAX_VM_NAME}")
    if len(match.resource_group) > MAX_RESOURCE_GROUP:
        raise BadEvent(f"data.resourceUri: the resource group name is {len(match.resource_group)} characters, longer "
                       f"than Azure's limit of {MAX_RESOURCE_GROUP}")
    if len(uri) > MAX_VM_ID:
        raise BadEvent(f"data.resourceUri: {len(uri)} characters, longer than a virtual machine's id can be "
                       f"({MAX_VM_ID})")
    sub = match.subscription_id
    if not resource_ids.GUID.match(sub):
        raise BadEvent(f"data.resourceUri: subscription id {sub!r} is not a GUID")
    if data.get("subscriptionId") and str(data["subscriptionId"]).lower() != sub.lower():
        raise BadEvent("data.subscriptionId: does not match the subscription in data.resourceUri")
    when = _field(event, "time" if cloud else "eventTime") or ""
    if not isinstance(when, str) or len(when) > MAX_TIME:
        raise BadEvent(f"{'time' if cloud else 'eventTime'}: must be a string (an instant, at most {MAX_TIME} characters)")
    return VmEvent(
        action="protect" if event_type == WRITE else "unprotect",
        vm_id=uri.lower(),
        subscription_id=sub.lower(),
        resource_group=match.resource_group,
        vm_name=match.name,
        event_id=event_id,
        event_time=when,
    )
