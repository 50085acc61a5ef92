"""The emulator's state: subscriptions, resource groups and resources, in plain dicts.

Resource ids are case-insensitive in ARM, so every index is keyed by the lower-cased id while the
resource keeps the casing it was created with.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidResourceName, InvalidSubscriptionId, ResourceGroupNotFound, SubscriptionNotFound

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
RG_NAME = re.compile(r"^[-\w._()]{1,90}$", re.UNICODE)


@dataclass
class Resource:
    id: str
    type: str  # "Microsoft.Compute/virtualMachines" (nested: ".../restorePointCollections/restorePoints")
    name: str
    location: str | None = None
    tags: dict[str, str] | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # other top-level wire fields (sku, zones, managedBy...)
    internal: dict[str, Any] = field(default_factory=dict)  # emulator-private state, never on the wire
    created: float = 0.0

    @property
    def key(self) -> str:
        return self.id.lower()

    @property
    def subscription_id(self) -> str:
        return self.id.split("/")[2]

    @property
    def resource_group(self) -> str:
        return self.id.split("/")[4]

    def to_arm(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "name": self.name, "type": self.type}
        if self.location is not None:
            body["location"] = self.location
        if self.tags is not None:
            body["tags"] = dict(self.tags)
        body.update(self.extra)
        body["properties"] = self.properties
        return body

    def to_state(self) -> dict[str, Any]:
        return {
            "id": self.id, "type": self.type, "name": self.name, "location": self.location, "tags": self.tags,
            "properties": self.properties, "extra": self.extra, "internal": self.internal, "created": self.created,
        }


@dataclass
class ResourceGroup:
    subscription_id: str
    name: str
    location: str
    tags: dict[str, str] | None = None
    provisioning_state: str = "Succeeded"  # "Deleting" while its delete runs

    @property
    def id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.name}"

    def to_arm(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "name": self.name, "type": "Microsoft.Resources/resourceGroups", "location": self.location,
            "properties": {"provisioningState": self.provisioning_state},
        }
        if self.tags is not None:
            body["tags"] = dict(self.tags)
        return body


@dataclass
class Subscription:
    id: str
    display_name: str
    tenant_id: str
    tags: dict[str, str] | None = None
    resource_groups: dict[str, ResourceGroup] = field(default_factory=dict)

    def to_arm(self) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{self.id}", "subscriptionId": self.id, "tenantId": self.tenant_id,
            "displayName": self.display_name, "state": "Enabled",
            "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01",
                                     "spendingLimit": "Off"},
            "authorizationSource": "RoleBased",
        }


class Store:
    def __init__(self, tenant_id: str):
        self.tenant_id = tenant_id
        self.subscriptions: dict[str, Subscription] = {}
        self.resources: dict[str, Resource] = {}
        self.by_type: dict[str, dict[str, Resource]] = {}

    # --- subscriptions and groups --------------------------------------------------------------
    def add_subscription(self, sub_id: str | None = None, display_name: str | None = None) -> Subscription:
        sub_id = sub_id or str(uuid.uuid4())
        if not GUID.match(sub_id):
            raise InvalidSubscriptionId(f"The provided subscription identifier '{sub_id}' is malformed or invalid.")
        existing = self.subscriptions.get(sub_id.lower())
        if existing:
            return existing
        sub = Subscription(sub_id, display_name or f"sub-{sub_id[:8]}", self.tenant_id)
        self.subscriptions[sub_id.lower()] = sub
        return sub

    def subscription(self, sub_id: str) -> Subscription:
        if not GUID.match(sub_id):
            raise InvalidSubscriptionId(f"The provided subscription identifier '{sub_id}' is malformed or invalid.")
        sub = self.subscriptions.get(sub_id.lower())
        if sub is None:
            raise SubscriptionNotFound(sub_id)
        return sub

    def resource_group(self, sub_id: str, name: str) -> ResourceGroup:
        rg = self.subscription(sub_id).resource_groups.get(name.lower())
        if rg is None:
            raise ResourceGroupNotFound(name)
        return rg

    def put_resource_group(self, sub_id: str, name: str, location: str, tags: dict | None = None) -> tuple[ResourceGroup, bool]:
        if not RG_NAME.match(name) or name.endswith("."):
            raise InvalidResourceName(
                f"Resource group name '{name}' is invalid: 1-90 letters, digits, underscores, hyphens, "
                "periods (not at the end) or parentheses.", code="InvalidResourceGroupName"
            )
        sub = self.subscription(sub_id)
        existing = sub.resource_groups.get(name.lower())
        if existing:
            if tags is not None:
                existing.tags = tags
            return existing, False
        rg = ResourceGroup(sub.id, name, location, tags)
        sub.resource_groups[name.lower()] = rg
        return rg, True

    # --- resources -------------------------------------------------------------------------------
    def get(self, resource_id: str) -> Resource | None:
        key = resource_id.lower().rstrip("/")
        if key.startswith("subscriptions/"):  # ARM reads an id without its leading slash the same way
            key = "/" + key
        return self.resources.get(key)

    def put(self, resource: Resource) -> Resource:
        self.resources[resource.key] = resource
        self.by_type.setdefault(resource.type.lower(), {})[resource.key] = resource
        return resource

    def delete(self, resource_id: str) -> Resource | None:
        res = self.resources.pop(resource_id.lower(), None)
        if res is not None:
            self.by_type.get(res.type.lower(), {}).pop(res.key, None)
        return res

    def of_type(self, resource_type: str, prefix: str = "") -> list[Resource]:
        """Resources of a type whose id starts with prefix (a subscription or group scope), in id order."""
        prefix = prefix.lower().rstrip("/") + "/" if prefix else ""
        found = [r for k, r in self.by_type.get(resource_type.lower(), {}).items() if k.startswith(prefix)]
        found.sort(key=lambda r: r.key)
        return found

    def children(self, parent_id: str) -> list[Resource]:
        prefix = parent_id.lower().rstrip("/") + "/"
        return [r for k, r in self.resources.items() if k.startswith(prefix)]

    # --- persistence -----------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "tenantId": self.tenant_id,
            "subscriptions": [
                {"id": s.id, "displayName": s.display_name, "tags": s.tags,
                 "resourceGroups": [{"name": g.name, "location": g.location, "tags": g.tags} for g in s.resource_groups.values()]}
                for s in self.subscriptions.values()
            ],
            "resources": [r.to_state() for r in self.resources.values()],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.subscriptions.clear()
        self.resources.clear()
        self.by_type.clear()
        for s in state.get("subscriptions", []):
            sub = self.add_subscription(s["id"], s.get("displayName"))
            sub.tags = s.get("tags")
            for g in s.get("resourceGroups", []):
                self.put_resource_group(sub.id, g["name"], g["location"], g.get("tags"))
        for r in state.get("resources", []):
            self.put(Resource(**r))
