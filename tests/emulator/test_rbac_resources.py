"""Custom role definitions and role assignments as ARM resources (Microsoft.Authorization 2022-04-01), through
azure-mgmt-resource's generic by-id operations (the project does not pin azure-mgmt-authorization): what
vmkeeper's Bicep makes and its teardown deletes. No official example is stored in ../shared/azure-api: the
REST reference and Learn "Troubleshoot Azure RBAC" are followed (emulator/README.md)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.mgmt.resource.resources import ResourceManagementClient

SUB = "2d9e6b60-4f3c-4e5d-8a71-8c9d0e1f2a3b"
OTHER = "3eaf7c71-5a4d-4f6e-9b82-9d0e1f2a3b4c"
ROLE = "5b2f3c4d-6e7f-4a8b-9c0d-1e2f3a4b5c6d"
PRINCIPAL = "7d4e5f60-8192-4a3b-8c4d-5e6f708192a3"
V = "2022-04-01"


@pytest.fixture
def arm(az) -> ResourceManagementClient:
    for sub in (SUB, OTHER):
        az.admin("POST", "subscriptions", {"id": sub})
    client = az.client(ResourceManagementClient, SUB, polling_interval=0)
    client.resource_groups.create_or_update("rg-prod", {"location": "westeurope"})
    return client


def role_id(sub: str = SUB, guid: str = ROLE) -> str:
    return f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def assignment_id(scope: str, name: str) -> str:
    return f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"


def make_role(arm, name: str = "vmkeeper (prod)", guid: str = ROLE):
    body = {"properties": {"roleName": name, "type": "CustomRole", "description": "d",
                           "permissions": [{"actions": ["Microsoft.Compute/disks/read"]}],
                           "assignableScopes": [f"/subscriptions/{SUB}", f"/subscriptions/{OTHER}"]}}
    return arm.resources.begin_create_or_update_by_id(role_id(guid=guid), parameters=body, api_version=V).result()


def assign(arm, scope: str, name: str, principal: str = PRINCIPAL, role: str | None = None):
    body = {"properties": {"roleDefinitionId": role or role_id(scope.split("/")[2]), "principalId": principal,
                           "principalType": "ServicePrincipal", "description": "vmkeeper"}}
    return arm.resources.begin_create_or_update_by_id(assignment_id(scope, name), parameters=body, api_version=V).result()


def test_a_custom_role_is_made_read_where_it_is_assignable_and_deleted(arm):
    made = make_role(arm)
    assert made.id == role_id() and made.properties["roleName"] == "vmkeeper (prod)"
    assert arm.resources.get_by_id(role_id(OTHER), api_version=V).properties["type"] == "CustomRole"
    arm.resources.begin_delete_by_id(role_id(), api_version=V).result()
    with pytest.raises(ResourceNotFoundError) as err:
        arm.resources.get_by_id(role_id(), api_version=V)
    assert err.value.error.code == "RoleDefinitionDoesNotExist"
    arm.resources.begin_delete_by_id(role_id(), api_version=V).result()  # gone: 204, not an error


def test_role_names_are_unique(arm):
    make_role(arm)
    with pytest.raises(HttpResponseError) as err:
        make_role(arm, guid="6c3a4d5e-7f80-4b9c-8d1e-2f3a4b5c6d7e")
    assert err.value.status_code == 409 and err.value.error.code == "RoleDefinitionWithSameNameExists"


def test_an_assignment_is_made_read_listed_and_deleted(arm):
    make_role(arm)
    scope = f"/subscriptions/{OTHER}"
    made = assign(arm, scope, "8e5f6071-92a3-4b4c-9d5e-6f708192a3b4")
    assert made.id == assignment_id(scope, made.name)
    got = arm.resources.get_by_id(made.id, api_version=V).properties
    assert (got["principalId"], got["roleDefinitionId"], got["scope"]) == (PRINCIPAL, role_id(OTHER), scope)
    listed = arm.send_request(HttpRequest("GET", f"{scope}/providers/Microsoft.Authorization/roleAssignments",
                                          params={"api-version": V, "$filter": f"principalId eq '{PRINCIPAL}'"}))
    assert [a["id"] for a in listed.json()["value"]] == [made.id]
    assert assign(arm, scope, made.name).id == made.id  # the same assignment again: accepted
    arm.resources.begin_delete_by_id(made.id, api_version=V).result()
    with pytest.raises(ResourceNotFoundError) as err:
        arm.resources.get_by_id(made.id, api_version=V)
    assert err.value.error.code == "RoleAssignmentNotFound"


def test_an_assignment_cant_be_changed_or_made_twice_under_two_names(arm):
    make_role(arm)
    scope = f"/subscriptions/{SUB}"
    assign(arm, scope, "8e5f6071-92a3-4b4c-9d5e-6f708192a3b4")
    with pytest.raises(HttpResponseError) as err:
        assign(arm, scope, "8e5f6071-92a3-4b4c-9d5e-6f708192a3b4", principal="9f607182-a3b4-4c5d-8e6f-708192a3b4c5")
    assert err.value.error.code == "RoleAssignmentUpdateNotPermitted"
    with pytest.raises(HttpResponseError) as err:
        assign(arm, scope, "a0718293-b4c5-4d6e-9f70-8192a3b4c5d6")
    assert err.value.status_code == 409 and err.value.error.code == "RoleAssignmentExists"


def test_a_role_in_use_is_not_deleted(arm):
    make_role(arm)
    made = assign(arm, f"/subscriptions/{OTHER}", "8e5f6071-92a3-4b4c-9d5e-6f708192a3b4")
    with pytest.raises(HttpResponseError) as err:
        arm.resources.begin_delete_by_id(role_id(), api_version=V).result()
    assert err.value.status_code == 409 and err.value.error.code == "RoleDefinitionHasAssignments"
    assert arm.resources.get_by_id(role_id(), api_version=V).name == ROLE
    arm.resources.begin_delete_by_id(made.id, api_version=V).result()
    arm.resources.begin_delete_by_id(role_id(), api_version=V).result()


def test_a_group_delete_takes_its_assignments_and_lists_show_none(arm, emu):
    make_role(arm)
    group = f"/subscriptions/{SUB}/resourceGroups/rg-prod"
    in_group = assign(arm, group, "b1829304-c5d6-4e7f-8081-92a3b4c5d6e7")
    at_sub = assign(arm, f"/subscriptions/{SUB}", "c2930415-d6e7-4f80-9192-a3b4c5d6e7f8")
    assert list(arm.resources.list_by_resource_group("rg-prod")) == []  # extension resources are not listed
    assert list(arm.resources.list()) == []
    arm.resource_groups.begin_delete("rg-prod").result()
    assert emu.store.get(in_group.id) is None and emu.store.get(at_sub.id) is not None
