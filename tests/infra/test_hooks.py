"""The azd hooks (infra/hooks, named in azure.yaml), run against local Azure as azd runs them: postdeploy subscribes
vm_events to every system topic; predown plans and postdown deletes what vmkeeper made outside rg-<env> — and
nothing else. A world is arranged as `azd provision` leaves it, with plain SDK clients; the hooks get azd's
environment (main.bicep's outputs) and an ARM access to the emulator. One test runs the scripts as processes, signed
in through AzureDeveloperCliCredential with a stand-in `azd` and no Azure CLI at all."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from azure.mgmt.eventgrid import EventGridManagementClient
from azure.mgmt.eventgrid.models import (
    EventSubscription,
    IdentityInfo,
    StorageQueueEventSubscriptionDestination,
    SystemTopic,
    UserIdentityProperties,
)
from azure.mgmt.resource.resources import ResourceManagementClient
from pycep import BicepParser

from infra.hooks.vmkeeper_hooks import main, teardown, vm_events
from infra.hooks.vmkeeper_hooks.arm import USER_AGENT, Arm
from infra.hooks.vmkeeper_hooks.azd_env import AZD, ROLE_ASSIGNMENTS, ROLE_DEFINITIONS
from tests.conftest import APP_USER_AGENT

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
HOOKS = INFRA / "hooks"
ENV = "prod"
A = "4f1b2c3d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"  # the azd subscription, protected
B = "5a2c3d4e-6f70-4b8c-9d0e-1f2a3b4c5d6e"  # another protected subscription
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"  # the emulator's
PRINCIPAL = "6b3d4e5f-7081-4c9d-8e0f-2a3b4c5d6e7f"
RG = f"/subscriptions/{A}/resourceGroups/rg-{ENV}"
APP = f"{RG}/providers/Microsoft.Web/sites/func-tok"
IDENTITY = f"{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-vmkeeper-tok"
STORAGE = f"{RG}/providers/Microsoft.Storage/storageAccounts/sttok"
ROLE = f"/subscriptions/{A}/providers/Microsoft.Authorization/roleDefinitions/7c4e5f60-8192-4dae-9f10-3b4c5d6e7f80"
ASSIGNMENTS = {s: f"/subscriptions/{s}/providers/Microsoft.Authorization/roleAssignments/{g}"
               for s, g in ((A, "8d5f6071-92a3-4ebf-8021-4c5d6e7f8091"), (B, "9e607182-a3b4-4fc0-9132-5d6e7f8091a2"))}
RBAC = "2022-04-01"


# --- azure.yaml, outputs, requirements: no Azure needed ---------------------------------------------------------
def azure_yaml() -> dict:
    return yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))


def test_azure_yaml_names_every_hook_and_each_exists():
    hooks = azure_yaml()["hooks"]
    assert set(hooks) == {"postdeploy", "predown", "postdown"}
    for name, hook in hooks.items():
        script = ROOT / hook["run"]
        assert script.is_file() and script.suffix == ".py" and script.stem == name  # azd runs .py as Python
        assert hook.get("continueOnError") is False and "shell" not in hook  # a failure stops the azd command
        assert f"vmkeeper_hooks.main import {name}, run" in script.read_text(encoding="utf-8")
    # every script beside them is named there (none forgotten), and none calls the Azure CLI
    assert {p.name for p in HOOKS.glob("*.py")} == {f"{n}.py" for n in hooks}
    for path in HOOKS.rglob("*.py"):
        assert not re.search(r"""["']az["']|\baz (deployment|login|account)""", path.read_text(encoding="utf-8")), path


def main_outputs() -> dict:
    return BicepParser().parse(text=(INFRA / "main.bicep").read_text(encoding="utf-8"))["outputs"]


def names_read() -> set[str]:
    """Every azd value the hooks' code reads by name (AzdEnv.require / optional / array with a literal)."""
    found = set()
    for path in HOOKS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("require", "optional", "array") and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                found.add(node.args[0].value)
    return found


def test_every_value_a_hook_reads_is_a_main_bicep_output_or_azds():
    read = names_read()
    assert {"AZURE_FUNCTION_APP_ID", "EVENTGRID_SYSTEM_TOPIC_IDS", "AZURE_IDENTITY_PRINCIPAL_ID"} <= read  # it sees them
    assert read - AZD <= set(main_outputs())
    named = {n for n in main_outputs() if ROLE_ASSIGNMENTS.match(n) or ROLE_DEFINITIONS.match(n)}
    assert {"VMKEEPER_ROLE_ASSIGNMENT_IDS", "VMKEEPER_ROLE_DEFINITION_IDS"} <= named


def declares_rbac(relative: str, seen: frozenset[str] = frozenset()) -> bool:
    """Whether a Bicep file (or a local module it uses) declares a role assignment or role definition."""
    doc = BicepParser().parse(text=(INFRA / relative).read_text(encoding="utf-8"))
    if any(r["type"] in ("Microsoft.Authorization/roleAssignments", "Microsoft.Authorization/roleDefinitions")
           and not r.get("existing") for r in doc.get("resources", {}).values()):
        return True
    base = Path(relative).parent
    return any(declares_rbac((base / m["detail"]["path"]).as_posix(), seen | {relative})
               for m in doc.get("modules", {}).values() if m["type"] == "local" and relative not in seen)


def test_every_role_assignment_or_definition_outside_rg_env_is_in_a_teardown_output():
    # azd down deletes rg-<env>: what the deployment assigns or defines anywhere else must be in an output the
    # teardown reads, or `azd down --purge` leaves it behind
    doc = BicepParser().parse(text=(INFRA / "main.bicep").read_text(encoding="utf-8"))
    teardown_outputs = json.dumps([o for n, o in doc["outputs"].items()
                                   if ROLE_ASSIGNMENTS.match(n) or ROLE_DEFINITIONS.match(n)])
    outside = []
    for name, module in doc["modules"].items():
        if module["type"] != "local" or not declares_rbac(module["detail"]["path"]):
            continue
        config = module["config"]
        scope = (config.get("config") or config).get("scope") if isinstance(config, dict) else None
        if scope != "rg":
            outside.append(name)
    assert {"role", "roleAssignments", "alertsSender"} <= set(outside)  # the check sees them
    assert [n for n in outside if f'"{n}"' not in teardown_outputs] == []


def test_the_hooks_requirements_are_the_versions_tested_here():
    pins = dict(line.split("==") for line in (HOOKS / "requirements.txt").read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#"))
    assert {"azure-identity", "azure-mgmt-eventgrid", "azure-mgmt-resource"} <= set(pins)
    assert {name: importlib.metadata.version(name) for name in pins} == pins


def test_vm_events_subscription_filters_vm_writes_and_deletes():
    body = vm_events.definition(vm_events.Target(APP, IDENTITY, STORAGE, "eventgrid-deadletter")).serialize()["properties"]
    assert body["destination"] == {"endpointType": "AzureFunction", "properties": {
        "resourceId": f"{APP}/functions/vm_events", "maxEventsPerBatch": 1, "preferredBatchSizeInKilobytes": 64}}
    assert body["filter"]["includedEventTypes"] == ["Microsoft.Resources.ResourceWriteSuccess",
                                                    "Microsoft.Resources.ResourceDeleteSuccess"]
    assert body["filter"]["advancedFilters"] == [{"operatorType": "StringIn", "key": "data.operationName", "values": [
        "Microsoft.Compute/virtualMachines/write", "Microsoft.Compute/virtualMachines/delete"]}]
    assert body["retryPolicy"] == {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}
    assert body["deadLetterWithResourceIdentity"] == {
        "identity": {"type": "UserAssigned", "userAssignedIdentity": IDENTITY},
        "deadLetterDestination": {"endpointType": "StorageBlob", "properties": {
            "resourceId": STORAGE, "blobContainerName": "eventgrid-deadletter"}}}
    assert f"def {vm_events.FUNCTION}(" in (ROOT / "functions" / "autoprotect.py").read_text(encoding="utf-8")


# --- a world as `azd provision` leaves it ---------------------------------------------------------------------------
def topic_id(sub: str, group: str = f"rg-{ENV}-events", name: str = "evgt-vmkeeper-tok") -> str:
    return f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.EventGrid/systemTopics/{name}"


class World:
    """What azd provision made (role, assignments, events groups and topics, rg-<env>), and azd's environment."""

    def __init__(self, az):
        self.az = az
        for sub in (A, B):
            az.admin("POST", "subscriptions", {"id": sub})
        self.arm = {s: az.client(ResourceManagementClient, s, polling_interval=0) for s in (A, B)}
        self.eg = {s: az.client(EventGridManagementClient, s, polling_interval=0) for s in (A, B)}
        self.arm[A].resource_groups.create_or_update(f"rg-{ENV}", {"location": "westeurope", "tags": {"azd-env-name": ENV}})
        self.put(ROLE, {"properties": {"roleName": f"vmkeeper ({ENV})", "type": "CustomRole", "description": "vmkeeper",
                                       "permissions": [{"actions": ["Microsoft.Compute/disks/read"]}],
                                       "assignableScopes": [f"/subscriptions/{A}", f"/subscriptions/{B}"]}})
        for sub, assignment in ASSIGNMENTS.items():
            self.assign(assignment, PRINCIPAL, ROLE.replace(A, sub))
        self.topics = []
        for sub in (A, B):
            self.arm[sub].resource_groups.create_or_update(f"rg-{ENV}-events", {"location": "westeurope",
                                                                               "tags": {"azd-env-name": ENV}})
            self.topics.append(self.system_topic(sub, f"rg-{ENV}-events", "evgt-vmkeeper-tok", {"azd-env-name": ENV}))
        self.env = {
            "AZURE_ENV_NAME": ENV, "AZURE_SUBSCRIPTION_ID": A, "AZURE_TENANT_ID": TENANT,
            "AZURE_RESOURCE_MANAGER_ENDPOINT": az.base_url + "/", "AZURE_RESOURCE_GROUP": f"rg-{ENV}",
            "AZURE_FUNCTION_APP_ID": APP, "AZURE_IDENTITY_ID": IDENTITY, "AZURE_IDENTITY_PRINCIPAL_ID": PRINCIPAL,
            "AZURE_STORAGE_ACCOUNT_ID": STORAGE, "EVENTGRID_DEADLETTER_CONTAINER": "eventgrid-deadletter",
            "EVENTGRID_SYSTEM_TOPIC_IDS": json.dumps(self.topics),
            "VMKEEPER_EVENTS_RESOURCE_GROUP_IDS": json.dumps([f"/subscriptions/{s}/resourceGroups/rg-{ENV}-events"
                                                              for s in (A, B)]),
            "VMKEEPER_ROLE_DEFINITION_IDS": json.dumps([ROLE]),
            "VMKEEPER_ROLE_ASSIGNMENT_IDS": json.dumps(list(ASSIGNMENTS.values())),
            "VMKEEPER_ALERTS_ROLE_ASSIGNMENT_ID": "",
        }

    def put(self, resource_id: str, body: dict) -> None:
        self.arm[A].resources.begin_create_or_update_by_id(resource_id, parameters=body, api_version=RBAC).result()

    def assign(self, assignment_id: str, principal: str, role: str) -> None:
        self.put(assignment_id, {"properties": {"roleDefinitionId": role, "principalId": principal,
                                                "principalType": "ServicePrincipal"}})

    def system_topic(self, sub: str, group: str, name: str, tags: dict | None, identity: bool = True) -> str:
        info = SystemTopic(location="global", source=f"/subscriptions/{sub}", topic_type="Microsoft.Resources.Subscriptions",
                           tags=tags, identity=IdentityInfo(type="UserAssigned", user_assigned_identities={
                               IDENTITY: UserIdentityProperties()}) if identity else None)
        return self.eg[sub].system_topics.begin_create_or_update(group, name, info).result().id

    def exists(self, resource_id: str) -> bool:
        parts = resource_id.split("/")
        if len(parts) == 5:
            return self.arm[parts[2]].resource_groups.check_existence(parts[4])
        api = RBAC if "Microsoft.Authorization" in resource_id else "2025-02-15"
        try:
            self.arm[parts[2]].resources.get_by_id(resource_id, api_version=api)
        except Exception as exc:  # noqa: BLE001 — ResourceNotFoundError and its kin alike
            assert getattr(exc, "status_code", None) == 404, exc
            return False
        return True

    def vmkeeper_events(self, topic: str):
        parts = topic.split("/")
        return self.eg[parts[2]].system_topic_event_subscriptions.get(parts[4], parts[-1], vm_events.NAME)

    def azd_down(self, events_group_too: bool = False) -> None:
        """What azd down deletes: the groups its deployment made in the azd subscription — rg-<env>, and maybe (if
        ARM lists the nested deployment's group among the deployment's resources) rg-<env>-events there."""
        self.arm[A].resource_groups.begin_delete(f"rg-{ENV}").result()
        if events_group_too:
            self.arm[A].resource_groups.begin_delete(f"rg-{ENV}-events").result()


@pytest.fixture
def world(az) -> World:
    return World(az)


@pytest.fixture
def arm(az) -> Arm:
    return Arm(az.credential, az.base_url, polling_interval=0, verify=az.ca_path)


@pytest.fixture
def plan_file(tmp_path, world) -> Path:
    world.env["VMKEEPER_TEARDOWN_PLAN"] = str(tmp_path / ".azure" / ENV / "vmkeeper-teardown.json")
    return Path(world.env["VMKEEPER_TEARDOWN_PLAN"])


def say_into(lines: list[str]):
    return lines.append


# --- postdeploy ------------------------------------------------------------------------------------------------------
def test_postdeploy_subscribes_vm_events_on_every_topic_and_a_rerun_keeps_one(world, arm):
    lines: list[str] = []
    assert main.postdeploy(world.env, arm, say_into(lines)) == 0
    for topic in world.topics:
        made = world.vmkeeper_events(topic)
        assert vm_events.delivers_to(made, f"{APP}/functions/vm_events")
        assert made.filter.advanced_filters[0].values == list(vm_events.OPERATIONS)
        assert made.dead_letter_with_resource_identity.identity.user_assigned_identity == IDENTITY
    assert main.postdeploy(world.env, arm, say_into(lines)) == 0
    assert [line.rsplit(": ", 1)[1] for line in lines] == ["created", "created", "updated", "updated"]
    parts = world.topics[0].split("/")
    assert len(list(world.eg[A].system_topic_event_subscriptions.list_by_system_topic(parts[4], parts[-1]))) == 1


def operators_topic(world: World, identity: bool = True) -> str:
    """B's subscriptions topic is the operator's own (EXISTING_SYSTEM_TOPIC_IDS): vmkeeper made neither it nor its group."""
    world.eg[B].system_topics.begin_delete(f"rg-{ENV}-events", "evgt-vmkeeper-tok").result()
    world.arm[B].resource_groups.begin_delete(f"rg-{ENV}-events").result()
    world.arm[B].resource_groups.create_or_update("rg-ops", {"location": "westeurope"})
    topic = world.system_topic(B, "rg-ops", "ops-subscription-events", None, identity)
    world.topics[1] = topic
    world.env["EVENTGRID_SYSTEM_TOPIC_IDS"] = json.dumps(world.topics)
    world.env["VMKEEPER_EVENTS_RESOURCE_GROUP_IDS"] = json.dumps([f"/subscriptions/{A}/resourceGroups/rg-{ENV}-events"])
    return topic


def test_postdeploy_leaves_an_operators_event_subscription_of_that_name(world, arm):
    topic = operators_topic(world)
    theirs = EventSubscription(destination=StorageQueueEventSubscriptionDestination(resource_id=STORAGE, queue_name="ops"))
    world.eg[B].system_topic_event_subscriptions.begin_create_or_update("rg-ops", topic.split("/")[-1], vm_events.NAME,
                                                                       theirs).result()
    lines: list[str] = []
    assert main.postdeploy(world.env, arm, say_into(lines)) == 1
    assert world.vmkeeper_events(topic).destination.endpoint_type == "StorageQueue"  # untouched
    assert vm_events.delivers_to(world.vmkeeper_events(world.topics[0]), f"{APP}/functions/vm_events")  # the other: done
    assert any("refused" in line and "not vmkeeper's" in line for line in lines)


def test_postdeploy_says_which_topic_lacks_the_identity(world, arm):
    topic = operators_topic(world, identity=False)
    lines: list[str] = []
    assert main.postdeploy(world.env, arm, say_into(lines)) == 1
    [failed] = [line for line in lines if "failed" in line]
    assert topic in failed and IDENTITY in failed


# --- predown / postdown ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("events_group_too", [False, True], ids=["rg-env", "rg-env-and-its-events-group"])
def test_teardown_deletes_everything_vmkeeper_made_outside_its_group(world, arm, plan_file, events_group_too):
    assert main.postdeploy(world.env, arm, say_into([])) == 0
    assert main.predown(world.env, arm, say_into([])) == 0
    plan = teardown.Plan.load(plan_file)
    assert sorted(plan.role_assignments) == sorted(ASSIGNMENTS.values()) and plan.role_definitions == [ROLE]
    world.azd_down(events_group_too)
    lines: list[str] = []
    assert main.postdown(world.env, arm, say_into(lines)) == 0, lines
    made = [*world.topics, *json.loads(world.env["VMKEEPER_EVENTS_RESOURCE_GROUP_IDS"]), ROLE, *ASSIGNMENTS.values()]
    assert [r for r in made if world.exists(r)] == []
    assert not plan_file.exists() and lines[-1] == "vmkeeper: nothing vmkeeper made is left"


def test_postdown_without_a_plan_says_so(world, arm, plan_file, capsys):
    assert main.run(lambda environ: main.postdown(world.env, arm)) == 1
    assert "no teardown plan" in capsys.readouterr().err


def test_teardown_never_deletes_an_operators_resources(world, arm, plan_file):
    topic = operators_topic(world)
    assert main.postdeploy(world.env, arm, say_into([])) == 0
    ops_queue = EventSubscription(destination=StorageQueueEventSubscriptionDestination(resource_id=STORAGE, queue_name="ops"))
    world.eg[B].system_topic_event_subscriptions.begin_create_or_update("rg-ops", topic.split("/")[-1], "ops-feed",
                                                                       ops_queue).result()
    # an operator's resource in vmkeeper's events group, an event subscription of theirs on vmkeeper's topic, and
    # vmkeeper's custom role assigned by them to someone else
    world.eg[A].topics.begin_create_or_update(f"rg-{ENV}-events", "ops-topic", {"location": "westeurope"}).result()
    ours = world.topics[0].split("/")
    world.eg[A].system_topic_event_subscriptions.begin_create_or_update(ours[4], ours[-1], "ops-audit", ops_queue).result()
    someone = f"/subscriptions/{B}/providers/Microsoft.Authorization/roleAssignments/af718293-b4c5-4d01-a243-6e7f8091a2b3"
    world.assign(someone, "b0829304-c5d6-4e12-b354-7f8091a2b3c4", ROLE.replace(A, B))
    # and an output naming an assignment that is not vmkeeper's identity's (never deleted on an id alone)
    world.env["VMKEEPER_ALERTS_ROLE_ASSIGNMENT_ID"] = someone
    assert main.predown(world.env, arm, say_into([])) == 0
    world.azd_down()
    lines: list[str] = []
    assert main.postdown(world.env, arm, say_into(lines)) == 1
    # the operator's: all there
    assert world.exists(topic) and world.exists(f"{topic}/eventSubscriptions/ops-feed")
    assert world.exists(f"/subscriptions/{A}/resourceGroups/rg-{ENV}-events/providers/Microsoft.EventGrid/topics/ops-topic")
    assert world.exists(f"{world.topics[0]}/eventSubscriptions/ops-audit") and world.exists(someone)
    # vmkeeper's: gone, except what they still use (its topic, its group, its role), each reported
    assert not world.exists(f"{topic}/eventSubscriptions/{vm_events.NAME}")
    assert not world.exists(f"{world.topics[0]}/eventSubscriptions/{vm_events.NAME}")
    assert [a for a in ASSIGNMENTS.values() if world.exists(a)] == []
    kept = {line.split(": ")[1] for line in lines if ": kept" in line}
    assert kept == {world.topics[0], f"/subscriptions/{A}/resourceGroups/rg-{ENV}-events", someone, ROLE}
    assert world.exists(ROLE) and plan_file.exists()
    # once the operator has moved theirs away, a second run finishes the job
    world.eg[A].system_topic_event_subscriptions.begin_delete(ours[4], ours[-1], "ops-audit").result()
    world.eg[A].topics.begin_delete(f"rg-{ENV}-events", "ops-topic").result()
    world.arm[B].resources.begin_delete_by_id(someone, api_version=RBAC).result()
    assert main.postdown(world.env, arm, say_into(lines)) == 0, lines
    assert not world.exists(ROLE) and not world.exists(world.topics[0]) and world.exists(topic)


def test_teardown_keeps_what_only_bears_vmkeepers_name_or_an_output_id(az, world, arm, plan_file):
    # each kept for one reason alone: A's topic re-tagged by the operator (and so its group, which holds it); B's
    # group re-tagged, its topic deleted by the operator; on an operator's topic in a third subscription, an event
    # subscription of theirs named vmkeeper-vm-events (postdeploy refused it); a role of another vmkeeper
    # environment named in an output
    c = "6c3e4f50-7182-4d9e-8f01-3b4c5d6e7f80"
    az.admin("POST", "subscriptions", {"id": c})
    world.arm[c] = az.client(ResourceManagementClient, c, polling_interval=0)
    world.eg[c] = az.client(EventGridManagementClient, c, polling_interval=0)
    world.arm[c].resource_groups.create_or_update("rg-ops", {"location": "westeurope"})
    theirs_topic = world.system_topic(c, "rg-ops", "ops-subscription-events", None)
    theirs = EventSubscription(destination=StorageQueueEventSubscriptionDestination(resource_id=STORAGE, queue_name="ops"))
    world.eg[c].system_topic_event_subscriptions.begin_create_or_update("rg-ops", "ops-subscription-events",
                                                                       vm_events.NAME, theirs).result()
    world.env["EVENTGRID_SYSTEM_TOPIC_IDS"] = json.dumps([*world.topics, theirs_topic])
    assert main.postdeploy(world.env, arm, say_into([])) == 1
    world.system_topic(A, f"rg-{ENV}-events", "evgt-vmkeeper-tok", {"owner": "ops"})
    world.eg[B].system_topics.begin_delete(f"rg-{ENV}-events", "evgt-vmkeeper-tok").result()
    world.arm[B].resource_groups.update(f"rg-{ENV}-events", {"tags": {"owner": "ops"}})
    staging = f"/subscriptions/{A}/providers/Microsoft.Authorization/roleDefinitions/c1930415-d6e7-4f23-8465-8091a2b3c4d5"
    world.put(staging, {"properties": {"roleName": "vmkeeper (staging)", "type": "CustomRole",
                                       "permissions": [{"actions": ["Microsoft.Compute/disks/read"]}],
                                       "assignableScopes": [f"/subscriptions/{A}"]}})
    world.env["VMKEEPER_STAGING_ROLE_DEFINITION_ID"] = staging
    assert main.predown(world.env, arm, say_into([])) == 0
    world.azd_down()
    lines: list[str] = []
    assert main.postdown(world.env, arm, say_into(lines)) == 1
    groups = [f"/subscriptions/{s}/resourceGroups/rg-{ENV}-events" for s in (A, B)]
    kept = {line.split(": ")[1] for line in lines if ": kept" in line}
    assert kept == {world.topics[0], *groups, f"{theirs_topic}/eventSubscriptions/{vm_events.NAME}", staging}
    assert world.vmkeeper_events(theirs_topic).destination.endpoint_type == "StorageQueue"
    assert all(world.exists(r) for r in [world.topics[0], *groups, staging])
    assert not world.exists(f"{world.topics[0]}/eventSubscriptions/{vm_events.NAME}")  # vmkeeper's own: gone
    assert not world.exists(ROLE) and [a for a in ASSIGNMENTS.values() if world.exists(a)] == []


def test_postdown_deletes_nothing_while_rg_env_exists(world, arm, plan_file):
    assert main.postdeploy(world.env, arm, say_into([])) == 0
    assert main.predown(world.env, arm, say_into([])) == 0
    lines: list[str] = []
    assert main.postdown(world.env, arm, say_into(lines)) == 1  # "are you sure?" answered no: azd deleted nothing
    assert all(world.exists(r) for r in [*world.topics, ROLE, *ASSIGNMENTS.values()])
    assert all(world.exists(f"{t}/eventSubscriptions/{vm_events.NAME}") for t in world.topics)
    assert "nothing was deleted" in lines[0]


def test_predown_stops_azd_down_when_an_output_is_missing(world, arm, plan_file, capsys):
    del world.env["AZURE_IDENTITY_PRINCIPAL_ID"]  # an environment provisioned before this output existed
    assert main.run(lambda environ: main.predown(world.env, arm)) == 1
    assert "AZURE_IDENTITY_PRINCIPAL_ID" in capsys.readouterr().err and not plan_file.exists()


def test_the_hooks_calls_are_the_deploying_users_not_the_apps(az, world, arm, plan_file):
    # the least-privilege measurement (tests/conftest.py) counts calls made with the app's user agent as the app
    # identity's: the hooks' deletes of role assignments must never enter vmkeeper's own role
    since = len(az.calls())
    main.postdeploy(world.env, arm, say_into([]))
    main.predown(world.env, arm, say_into([]))
    world.azd_down()
    main.postdown(world.env, arm, say_into([]))
    hooks = [c for c in az.calls(since) if USER_AGENT in (c.get("userAgent") or "")]
    assert {"Microsoft.Authorization/roleAssignments/delete",
            "Microsoft.EventGrid/systemTopics/eventSubscriptions/write"} <= {c["operation"] for c in hooks}
    assert not [c for c in hooks if APP_USER_AGENT in c["userAgent"]]


# --- as azd runs them -------------------------------------------------------------------------------------------------
def test_the_hooks_run_as_azd_runs_them_signed_in_by_azd_alone(az, world, tmp_path, plan_file):
    """The scripts as processes: azd's environment, a stand-in `azd` answering `azd auth token` (what
    AzureDeveloperCliCredential asks after `azd auth login`), and no Azure CLI on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    asked = tmp_path / "azd-args"
    (bin_dir / "azd").write_text(f'#!/bin/sh\necho "$@" >> "{asked}"\n'
                                 'echo \'{"token": "azd-user-token", "expiresOn": "2099-01-01T00:00:00Z"}\'\n')
    (bin_dir / "azd").chmod(0o755)
    # PATH holds the stand-in azd and nothing else: no Azure CLI to fall back on
    env = {**world.env, "PATH": str(bin_dir), "REQUESTS_CA_BUNDLE": az.ca_path, "HOME": str(tmp_path)}

    def hook(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(HOOKS / f"{name}.py")], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=120)

    done = hook("postdeploy")
    assert done.returncode == 0, done.stderr
    assert all(vm_events.delivers_to(world.vmkeeper_events(t), f"{APP}/functions/vm_events") for t in world.topics)
    assert hook("predown").returncode == 0
    world.azd_down()
    done = hook("postdown")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [r for r in [*world.topics, ROLE, *ASSIGNMENTS.values()] if world.exists(r)] == []
    scope = f"--scope {az.base_url}/.default"
    assert {line.strip() for line in asked.read_text().splitlines()} == {
        f"auth token --output json --no-prompt {scope} --tenant-id {TENANT}"}


def test_a_hook_without_azds_sign_in_says_how_to_sign_in(world, tmp_path):
    env = {**world.env, "PATH": str(tmp_path)}  # no azd at all
    done = subprocess.run([sys.executable, str(HOOKS / "postdeploy.py")], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and "azd auth login" in done.stderr and "Traceback" not in done.stderr
