"""What `azd down` leaves and vmkeeper made: azd deletes the resource groups its deployment created in the azd
subscription (rg-<env> with the app, its identity, storage, vaults, the alerts topic), never subscription-level
RBAC nor groups in other subscriptions. So, by their deterministic ids from main.bicep's outputs:

- the ``vmkeeper-vm-events`` event subscription on every system topic (an operator's existing topic keeps
  everything else it has);
- the system topics vmkeeper made and their ``rg-<env>-events`` groups in the protected subscriptions;
- the role assignments of vmkeeper's identity outside rg-<env> and its custom role definitions.

Two steps, because ``predown`` runs before azd asks "are you sure?": **predown** writes the plan (the ids, read
while the outputs exist: azd removes them from the environment once it has deleted the groups) and checks the
sign-in; **postdown** (run only when azd down succeeded) deletes, and only once rg-<env> is gone, so a declined or
failed ``azd down`` leaves vmkeeper running with all its permissions.

Each deletion is of something vmkeeper made, checked on the resource itself first: an event subscription that
delivers to this app's vm_events; a topic or group tagged ``azd-env-name: <env>``, a topic holding no other
event subscription, a group holding nothing else; a role assignment of vmkeeper's identity; a role named
``vmkeeper… (<env>)``. Anything else is kept and reported, and postdown exits non-zero: a backup tool never
deletes what it did not make."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import vm_events
from .arm import RBAC_API, Arm
from .azd_env import ROLE_ASSIGNMENTS, ROLE_DEFINITIONS, AzdEnv

ENV_TAG = "azd-env-name"
SUBSCRIPTIONS_TOPIC = "Microsoft.Resources.Subscriptions"


@dataclass
class Plan:
    environment: str
    tenant_id: str
    endpoint: str
    resource_group_id: str  # rg-<env>: nothing is deleted while it exists
    principal_id: str  # vmkeeper's user-assigned identity
    function_id: str  # vm_events: vmkeeper's event subscriptions deliver there
    event_subscriptions: list[str] = field(default_factory=list)
    system_topics: list[str] = field(default_factory=list)
    events_groups: list[str] = field(default_factory=list)
    role_assignments: list[str] = field(default_factory=list)
    role_definitions: list[str] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Plan:
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def lines(self) -> list[str]:
        return [*self.event_subscriptions, *self.system_topics, *self.events_groups, *self.role_assignments,
                *self.role_definitions]


def plan_from(env: AzdEnv) -> Plan:
    """The ids of what vmkeeper made outside rg-<env>, from main.bicep's outputs (pure)."""
    name = env.require("AZURE_ENV_NAME")
    groups = env.array("VMKEEPER_EVENTS_RESOURCE_GROUP_IDS")
    topics = env.array("EVENTGRID_SYSTEM_TOPIC_IDS")
    in_groups = {g.lower() for g in groups}
    return Plan(
        environment=name,
        tenant_id=env.require("AZURE_TENANT_ID"),
        endpoint=env.require("AZURE_RESOURCE_MANAGER_ENDPOINT"),
        resource_group_id=f"/subscriptions/{env.require('AZURE_SUBSCRIPTION_ID')}/resourceGroups/"
                          f"{env.require('AZURE_RESOURCE_GROUP')}",
        principal_id=env.require("AZURE_IDENTITY_PRINCIPAL_ID").lower(),
        function_id=f"{env.require('AZURE_FUNCTION_APP_ID')}/functions/{vm_events.FUNCTION}",
        event_subscriptions=[f"{t}/eventSubscriptions/{vm_events.NAME}" for t in topics],
        system_topics=[t for t in topics if t.lower().split("/providers/")[0] in in_groups],
        events_groups=groups,
        role_assignments=env.ids_named(ROLE_ASSIGNMENTS),
        role_definitions=env.ids_named(ROLE_DEFINITIONS),
    )


@dataclass(frozen=True)
class Outcome:
    resource_id: str
    result: str  # "deleted", "gone" (already), "kept" (not vmkeeper's, or still in use), "failed"
    detail: str = ""


def _parts(resource_id: str) -> dict[str, str]:
    from azure.mgmt.core.tools import parse_resource_id

    return parse_resource_id(resource_id)


def _event_subscription(arm: Arm, plan: Plan, sub_id: str) -> Outcome:
    from azure.core.exceptions import ResourceNotFoundError

    topic = _parts(sub_id.rsplit("/eventSubscriptions/", 1)[0])
    client = arm.eventgrid(topic["subscription"]).system_topic_event_subscriptions
    try:
        found = client.get(topic["resource_group"], topic["name"], vm_events.NAME)
    except ResourceNotFoundError:
        return Outcome(sub_id, "gone")
    if not vm_events.delivers_to(found, plan.function_id):
        return Outcome(sub_id, "kept", "it delivers elsewhere than vmkeeper's vm_events: not vmkeeper's")
    client.begin_delete(topic["resource_group"], topic["name"], vm_events.NAME).result()
    return Outcome(sub_id, "deleted")


def _system_topic(arm: Arm, plan: Plan, topic_id: str) -> Outcome:
    from azure.core.exceptions import ResourceNotFoundError

    parts = _parts(topic_id)
    client = arm.eventgrid(parts["subscription"])
    try:
        found = client.system_topics.get(parts["resource_group"], parts["name"])
    except ResourceNotFoundError:
        return Outcome(topic_id, "gone")
    if (found.tags or {}).get(ENV_TAG) != plan.environment or (found.topic_type or "").lower() != SUBSCRIPTIONS_TOPIC.lower():
        return Outcome(topic_id, "kept", f"not tagged {ENV_TAG}: {plan.environment} or not a {SUBSCRIPTIONS_TOPIC} "
                                         "topic: not vmkeeper's")
    others = [s.name for s in client.system_topic_event_subscriptions.list_by_system_topic(parts["resource_group"],
                                                                                           parts["name"])]
    if others:
        return Outcome(topic_id, "kept", f"it has event subscriptions vmkeeper did not make ({', '.join(others)}): "
                                         "delete or move them, then run `azd hooks run postdown`")
    client.system_topics.begin_delete(parts["resource_group"], parts["name"]).result()
    return Outcome(topic_id, "deleted")


def _events_group(arm: Arm, plan: Plan, group_id: str) -> Outcome:
    from azure.core.exceptions import ResourceNotFoundError

    parts = _parts(group_id)
    client = arm.resources(parts["subscription"])
    try:
        found = client.resource_groups.get(parts["resource_group"])
    except ResourceNotFoundError:
        return Outcome(group_id, "gone")
    if (found.tags or {}).get(ENV_TAG) != plan.environment:
        return Outcome(group_id, "kept", f"not tagged {ENV_TAG}: {plan.environment}: not vmkeeper's")
    held = [r.id for r in client.resources.list_by_resource_group(parts["resource_group"])]
    if held:
        return Outcome(group_id, "kept", f"it holds resources vmkeeper did not make ({', '.join(held)})")
    client.resource_groups.begin_delete(parts["resource_group"]).result()
    return Outcome(group_id, "deleted")


def _get_by_id(client, resource_id: str):
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return client.resources.get_by_id(resource_id, api_version=RBAC_API)
    except ResourceNotFoundError:
        return None


def _role_assignment(arm: Arm, plan: Plan, assignment_id: str) -> Outcome:
    client = arm.resources(assignment_id.split("/")[2])
    found = _get_by_id(client, assignment_id)
    if found is None:
        return Outcome(assignment_id, "gone")
    principal = str((found.properties or {}).get("principalId", "")).lower()
    if principal != plan.principal_id:
        return Outcome(assignment_id, "kept", f"it assigns a role to {principal}, not to vmkeeper's identity")
    client.resources.begin_delete_by_id(assignment_id, api_version=RBAC_API).result()
    return Outcome(assignment_id, "deleted")


def _role_definition(arm: Arm, plan: Plan, definition_id: str) -> Outcome:
    from azure.core.exceptions import HttpResponseError

    client = arm.resources(definition_id.split("/")[2])
    found = _get_by_id(client, definition_id)
    if found is None:
        return Outcome(definition_id, "gone")
    props = found.properties or {}
    name = str(props.get("roleName", ""))
    if props.get("type") != "CustomRole" or not name.startswith("vmkeeper") or not name.endswith(f" ({plan.environment})"):
        return Outcome(definition_id, "kept", f"role '{name}' is not vmkeeper's for environment {plan.environment}")
    try:
        client.resources.begin_delete_by_id(definition_id, api_version=RBAC_API).result()
    except HttpResponseError as exc:
        if getattr(exc.error, "code", None) == "RoleDefinitionHasAssignments":
            return Outcome(definition_id, "kept", f"role '{name}' is still assigned (assignments vmkeeper did not "
                                                  "make): remove them, then run `azd hooks run postdown`")
        raise
    return Outcome(definition_id, "deleted")


def execute(arm: Arm, plan: Plan, say: Callable[[str], None] = print) -> list[Outcome]:
    """Delete what the plan names, in dependency order, each only if it is vmkeeper's; nothing at all while
    rg-<env> exists. One resource failing does not stop the others."""
    from azure.core.exceptions import HttpResponseError

    group = _parts(plan.resource_group_id)
    if arm.resources(group["subscription"]).resource_groups.check_existence(group["resource_group"]):
        outcome = Outcome(plan.resource_group_id, "kept", "azd down has not deleted it (declined or failed?): vmkeeper "
                                                          "may still be running, so nothing was deleted")
        say(f"vmkeeper: {outcome.resource_id}: {outcome.result} — {outcome.detail}")
        return [outcome]
    steps = [(_event_subscription, plan.event_subscriptions), (_system_topic, plan.system_topics),
             (_events_group, plan.events_groups), (_role_assignment, plan.role_assignments),
             (_role_definition, plan.role_definitions)]
    outcomes = []
    for step, ids in steps:
        for resource_id in ids:
            try:
                outcome = step(arm, plan, resource_id)
            except HttpResponseError as exc:
                outcome = Outcome(resource_id, "failed", str(exc.message or exc).splitlines()[0])
            say(f"vmkeeper: {resource_id}: {outcome.result}" + (f" — {outcome.detail}" if outcome.detail else ""))
            outcomes.append(outcome)
    return outcomes
