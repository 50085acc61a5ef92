"""Site Recovery's infrastructure over HTTP: fabrics, protection containers, container mappings, replication
policies, network mappings; the operation monitors and the jobs.

Creating an object that exists: the same input answers 200 with the object unchanged (nothing new is
made, no job), other input 409 ``ResourceAlreadyExists`` (policies change through PATCH); an object still
being created answers 202 with the running operation's monitors. Deleting one that is gone answers 204."""

from __future__ import annotations

from typing import Any

from ..core.arm import check_name, listing, no_event
from ..core.clock import iso
from ..core.lro import Operation
from ..core.routing import Request, Response
from ..core.state import Resource
from . import jobs
from . import models as m
from .http import (
    CONTAINER,
    CONTAINER_OPS,
    FABRIC,
    FABRIC_OPS,
    ITEM,
    ITEM_OPS,
    JOB,
    MAPPING,
    MAPPING_OPS,
    NETWORK,
    NETWORK_MAPPING,
    NETWORK_MAPPING_OPS,
    OPS,
    PLAN,
    PLAN_OPS,
    POLICY,
    POLICY_OPS,
    VAULT,
    VERSIONS,
    child,
    container,
    fabric,
    monitors,
    now,
    operation_of,
    rendered,
    router,
    run,
    store,
    vault,
)


def _exists(req: Request, v: Resource, existing: Resource, same: bool, render) -> Response:
    """A create of an object that exists (see the module's docstring)."""
    running = req.emulator.operations.get(existing.internal.get("op") or "")
    if existing.internal.get("state") == "creating" and running is not None and running.status == "InProgress":
        if same:
            return Response(202, None, monitors(req, v, existing.id, running))
    elif same:
        return no_event(Response(200, render()))
    raise m.AsrError(f"'{existing.name}' already exists in vault '{v.name}' with other settings.", code="ResourceAlreadyExists",
                     status=409, recommended_action="Use the existing object, or delete it first.")


def _create(req: Request, v: Resource, resource: Resource, scenario: str, render) -> Response:
    """Accept the creation of ``resource`` (state creating → ready when its job ends; removed if it fails)."""
    s = store(req)
    s.put(resource)

    def done(op: Operation) -> None:
        resource.internal["state"] = "ready"

    def failed(op: Operation) -> None:
        if s.get(resource.id) is resource:
            s.delete(resource.id)

    resp, op, _ = run(req, v, resource, scenario=scenario, kind=resource.type.rsplit("/", 1)[-1], tasks=[
        jobs.SCENARIOS[scenario]], done=done, failed=failed, result=rendered(render))
    resource.internal["op"] = op.id
    return resp


def _delete(req: Request, v: Resource, resource: Resource | None, scenario: str, refuse=None) -> Response:
    if resource is None:
        return no_event(Response(204))
    if refuse is not None:
        refuse(resource)
    s = store(req)
    resource.internal["state"] = "deleting"

    def done(op: Operation) -> None:
        for sub in s.children(resource.id):
            s.delete(sub.id)
        s.delete(resource.id)

    def failed(op: Operation) -> None:
        resource.internal["state"] = "ready"

    resp, _, _ = run(req, v, resource, scenario=scenario, kind=resource.type.rsplit("/", 1)[-1],
                     tasks=[jobs.SCENARIOS[scenario]], done=done, failed=failed)
    return resp


def _name(req: Request, param: str) -> str:
    name = req.params[param]
    check_name(name, m.NAME_RE, m.NAME_RULE)
    return name


# --- fabrics -------------------------------------------------------------------------------------------
@router.route("PUT", FABRIC, operation=FABRIC_OPS + "/write", api_versions=VERSIONS)
def put_fabric(req: Request) -> Response:
    v = vault(req)
    name = _name(req, "fabricName")
    s = store(req)
    location = m.check_fabric_input(s, v, name, req.json())
    existing = s.get(f"{v.id}/replicationFabrics/{name}")
    if existing is not None:
        return _exists(req, v, existing, m.fabric_location(existing) == location, lambda: m.render_fabric(s, existing))
    fab = m.new_fabric(v, name, location, now(req))
    return _create(req, v, fab, "AddFabric", lambda: m.render_fabric(s, fab))


@router.route("GET", FABRIC, operation=FABRIC_OPS + "/read", api_versions=VERSIONS)
def get_fabric(req: Request) -> Response:
    return Response(200, m.render_fabric(store(req), fabric(req)))


@router.route("GET", VAULT + "/replicationFabrics", operation=FABRIC_OPS + "/read", api_versions=VERSIONS)
def list_fabrics(req: Request) -> Response:
    s = store(req)
    return listing(req, [m.render_fabric(s, f) for f in s.of_type(m.FABRIC_TYPE, vault(req).id)])


def _fabric_in_use(resource: Resource) -> None:
    raise m.AsrError(f"The fabric '{resource.name}' still holds replicated items.", code="FabricInUse",
                     recommended_action="Disable replication of its items first.")


@router.route("DELETE", FABRIC, operation=FABRIC_OPS + "/delete", api_versions=VERSIONS)
def purge_fabric(req: Request) -> Response:
    v = vault(req)
    s = store(req)
    found = s.get(f"{v.id}/replicationFabrics/{req.params['fabricName']}")

    def refuse(fab: Resource) -> None:
        if s.of_type(m.ITEM_TYPE, fab.id):
            _fabric_in_use(fab)

    return _delete(req, v, found, "RemoveFabric", refuse)


# --- protection containers ------------------------------------------------------------------------------------
@router.route("PUT", CONTAINER, operation=CONTAINER_OPS + "/write", api_versions=VERSIONS)
def put_container(req: Request) -> Response:
    v = vault(req)
    fab = child(req, v, "replicationFabrics", "fabricName", "fabric", ready=True)
    name = _name(req, "protectionContainerName")
    m.check_container_input(req.json(required=False))
    s = store(req)
    existing = s.get(f"{fab.id}/replicationProtectionContainers/{name}")
    if existing is not None:
        return _exists(req, v, existing, True, lambda: m.render_container(s, existing))
    found = m.new_container(fab, name, now(req))
    return _create(req, v, found, "AddProtectionContainer", lambda: m.render_container(s, found))


@router.route("GET", CONTAINER, operation=CONTAINER_OPS + "/read", api_versions=VERSIONS)
def get_container(req: Request) -> Response:
    return Response(200, m.render_container(store(req), container(req)))


@router.route("GET", FABRIC + "/replicationProtectionContainers", operation=CONTAINER_OPS + "/read", api_versions=VERSIONS)
def list_containers(req: Request) -> Response:
    s = store(req)
    return listing(req, [m.render_container(s, c) for c in s.of_type(m.CONTAINER_TYPE, fabric(req).id)])


# --- container mappings -----------------------------------------------------------------------------------------
@router.route("PUT", MAPPING, operation=MAPPING_OPS + "/write", api_versions=VERSIONS)
def put_mapping(req: Request) -> Response:
    v = vault(req)
    source = container(req, v)
    name = _name(req, "mappingName")
    s = store(req)
    body = req.json()
    target, policy = m.check_mapping_input(s, v, source, body)
    auto = ((body.get("properties") or {}).get("providerSpecificInput") or {}).get("agentAutoUpdateStatus") or "Disabled"
    existing = s.get(f"{source.id}/replicationProtectionContainerMappings/{name}")
    if existing is not None:
        same = m.same_id(existing.internal["target"], target.id) and m.same_id(existing.internal["policy"], policy.id)
        return _exists(req, v, existing, same, lambda: m.render_mapping(s, existing))
    for other in s.of_type(m.MAPPING_TYPE, source.id):
        if m.same_id(other.internal["target"], target.id) and m.same_id(other.internal["policy"], policy.id):
            raise m.AsrError(f"The container '{source.name}' is already mapped to '{target.name}' with policy "
                             f"'{policy.name}' by the mapping '{other.name}'.", code="ResourceAlreadyExists", status=409,
                             recommended_action=f"Use the mapping '{other.name}'.")
    mapping = m.new_mapping(source, name, target, policy, auto, now(req))
    return _create(req, v, mapping, "ConfigureProtection", lambda: m.render_mapping(s, mapping))


@router.route("GET", MAPPING, operation=MAPPING_OPS + "/read", api_versions=VERSIONS)
def get_mapping(req: Request) -> Response:
    found = child(req, container(req), "replicationProtectionContainerMappings", "mappingName", "protection container mapping")
    return Response(200, m.render_mapping(store(req), found))


@router.route("GET", CONTAINER + "/replicationProtectionContainerMappings", operation=MAPPING_OPS + "/read",
              api_versions=VERSIONS)
def list_mappings(req: Request) -> Response:
    s = store(req)
    return listing(req, [m.render_mapping(s, x) for x in s.of_type(m.MAPPING_TYPE, container(req).id)])


@router.route("GET", VAULT + "/replicationProtectionContainerMappings", operation=OPS + "/replicationProtectionContainerMappings/read",
              api_versions=VERSIONS)
def list_vault_mappings(req: Request) -> Response:
    s = store(req)
    return listing(req, [m.render_mapping(s, x) for x in m.mappings_in(s, vault(req))])


def _mapping_delete(req: Request) -> Response:
    v = vault(req)
    s = store(req)
    found = s.get(f"{container(req, v).id}/replicationProtectionContainerMappings/{req.params['mappingName']}")

    def refuse(mapping: Resource) -> None:
        users = [i for i in s.of_type(m.ITEM_TYPE, v.id) if m.same_id(i.internal.get("mapping"), mapping.id)]
        if users:
            raise m.AsrError(f"The mapping '{mapping.name}' is used by {len(users)} replicated item(s), e.g. "
                             f"'{users[0].internal['friendlyName']}'.", code="ContainerMappingInUse",
                             recommended_action="Disable replication of those items first.")

    return _delete(req, v, found, "RemoveProtectionContainerMapping", refuse)


router.add("DELETE", MAPPING, _mapping_delete, operation=MAPPING_OPS + "/delete", api_versions=VERSIONS)
router.add("POST", MAPPING + "/remove", _mapping_delete, operation=MAPPING_OPS + "/remove/action", api_versions=VERSIONS)


# --- replication policies -------------------------------------------------------------------------------------------
@router.route("PUT", POLICY, operation=POLICY_OPS + "/write", api_versions=VERSIONS)
def put_policy(req: Request) -> Response:
    v = vault(req)
    name = _name(req, "policyName")
    settings = m.check_policy_input(req.json())
    s = store(req)
    existing = s.get(f"{v.id}/replicationPolicies/{name}")
    if existing is not None:
        return _exists(req, v, existing, existing.internal["settings"] == settings, lambda: m.render_policy(existing))
    policy = m.new_policy(v, name, settings, now(req))
    return _create(req, v, policy, "AddProtectionProfile", lambda: m.render_policy(policy))


@router.route("PATCH", POLICY, operation=POLICY_OPS + "/write", api_versions=VERSIONS)
def update_policy(req: Request) -> Response:
    v = vault(req)
    policy = child(req, v, "replicationPolicies", "policyName", "replication policy", ready=True)
    settings = m.check_policy_input(req.json(), policy.internal["settings"])

    def done(op: Operation) -> None:
        policy.internal["settings"] = settings

    resp, _, _ = run(req, v, policy, scenario="UpdateProtectionProfile", kind="ProtectionProfile",
                     tasks=[jobs.SCENARIOS["UpdateProtectionProfile"]], done=done,
                     result=rendered(m.render_policy, policy))
    return resp


@router.route("GET", POLICY, operation=POLICY_OPS + "/read", api_versions=VERSIONS)
def get_policy(req: Request) -> Response:
    return Response(200, m.render_policy(child(req, vault(req), "replicationPolicies", "policyName", "replication policy")))


@router.route("GET", VAULT + "/replicationPolicies", operation=POLICY_OPS + "/read", api_versions=VERSIONS)
def list_policies(req: Request) -> Response:
    return listing(req, [m.render_policy(p) for p in store(req).of_type(m.POLICY_TYPE, vault(req).id)])


@router.route("DELETE", POLICY, operation=POLICY_OPS + "/delete", api_versions=VERSIONS)
def delete_policy(req: Request) -> Response:
    v = vault(req)
    s = store(req)

    def refuse(policy: Resource) -> None:
        if any(m.same_id(x.internal["policy"], policy.id) for x in m.mappings_in(s, v)):
            raise m.AsrError(f"The replication policy '{policy.name}' is associated with protection containers.",
                             code="PolicyInUse", recommended_action="Dissociate it (remove its container mappings) first.")

    return _delete(req, v, s.get(f"{v.id}/replicationPolicies/{req.params['policyName']}"), "RemoveProtectionProfile", refuse)


# --- network mappings -------------------------------------------------------------------------------------------------
@router.route("PUT", NETWORK_MAPPING, operation=NETWORK_MAPPING_OPS + "/write", api_versions=VERSIONS)
def put_network_mapping(req: Request) -> Response:
    v = vault(req)
    fab = child(req, v, "replicationFabrics", "fabricName", "fabric", ready=True)
    name = _name(req, "networkMappingName")
    s = store(req)
    spec = m.check_network_mapping_input(s, v, fab, req.json())
    existing = s.get(f"{fab.id}/replicationNetworks/{req.params['networkName']}/replicationNetworkMappings/{name}")
    if existing is not None:
        same = all(m.same_id(existing.internal[k], spec[k]) for k in ("primary", "recovery", "recoveryFabric"))
        return _exists(req, v, existing, same, lambda: m.render_network_mapping(s, existing))
    for other in s.of_type(m.NETWORK_MAPPING_TYPE, v.id):
        if m.same_id(other.internal["primary"], spec["primary"]) and m.same_id(other.internal["recoveryFabric"],
                                                                                spec["recoveryFabric"]):
            raise m.AsrError(f"The network '{spec['primary']}' is already mapped by '{other.name}'.",
                             code="ResourceAlreadyExists", status=409, recommended_action=f"Use '{other.name}'.")
    nm = m.new_network_mapping(fab, req.params["networkName"], name, spec, now(req))
    return _create(req, v, nm, "MapNetwork", lambda: m.render_network_mapping(s, nm))


@router.route("GET", NETWORK_MAPPING, operation=NETWORK_MAPPING_OPS + "/read", api_versions=VERSIONS)
def get_network_mapping(req: Request) -> Response:
    fab = fabric(req)
    found = store(req).get(f"{fab.id}/replicationNetworks/{req.params['networkName']}/replicationNetworkMappings/"
                           f"{req.params['networkMappingName']}")
    if found is None:
        raise m.not_found("network mapping", req.params["networkMappingName"], vault(req))
    return Response(200, m.render_network_mapping(store(req), found))


@router.route("GET", NETWORK + "/replicationNetworkMappings", operation=NETWORK_MAPPING_OPS + "/read", api_versions=VERSIONS)
def list_network_mappings(req: Request) -> Response:
    s = store(req)
    prefix = f"{fabric(req).id}/replicationNetworks/{req.params['networkName']}"
    return listing(req, [m.render_network_mapping(s, x) for x in s.of_type(m.NETWORK_MAPPING_TYPE, prefix)])


@router.route("GET", VAULT + "/replicationNetworkMappings", operation=OPS + "/replicationNetworkMappings/read",
              api_versions=VERSIONS)
def list_vault_network_mappings(req: Request) -> Response:
    s = store(req)
    return listing(req, [m.render_network_mapping(s, x) for x in s.of_type(m.NETWORK_MAPPING_TYPE, vault(req).id)])


@router.route("DELETE", NETWORK_MAPPING, operation=NETWORK_MAPPING_OPS + "/delete", api_versions=VERSIONS)
def delete_network_mapping(req: Request) -> Response:
    v = vault(req)
    fab = fabric(req, v)
    found = store(req).get(f"{fab.id}/replicationNetworks/{req.params['networkName']}/replicationNetworkMappings/"
                           f"{req.params['networkMappingName']}")
    return _delete(req, v, found, "UnmapNetwork")


# --- jobs --------------------------------------------------------------------------------------------------------------
@router.route("GET", JOB, operation=OPS + "/replicationJobs/read", api_versions=VERSIONS)
def get_job(req: Request) -> Response:
    v = vault(req)
    job = store(req).get(f"{v.id}/replicationJobs/{req.params['jobName']}")
    if job is None:
        raise m.not_found("job", req.params["jobName"], v)
    return Response(200, jobs.render(job, now(req)))


@router.route("GET", VAULT + "/replicationJobs", operation=OPS + "/replicationJobs/read", api_versions=VERSIONS)
def list_jobs(req: Request) -> Response:
    found = sorted(store(req).of_type(m.JOB_TYPE, vault(req).id), key=lambda j: (j.internal["start"], j.key))
    return listing(req, [jobs.render(j, now(req)) for j in found])


# --- operation monitors --------------------------------------------------------------------------------------------------
@router.route("GET", VAULT + "/replicationOperationStatus/{operationId}", operation=OPS + "/replicationOperationStatus/read",
              api_versions=VERSIONS)
def operation_status(req: Request) -> Response:
    """The status body as the live service sends it (the A2A recording): id and properties null."""
    op = operation_of(req)
    body: dict[str, Any] = {"error": None, "id": None, "name": op.id, "properties": None, "status": op.status,
                            "startTime": iso(op.start), "endTime": iso(op.end) if op.status != "InProgress" else None,
                            "percentComplete": None}
    if op.status in ("Failed", "Canceled"):
        body["error"] = op.error or {"code": "InternalError", "message": "The operation failed."}
    resp = Response(200, body)
    if op.status == "InProgress":
        resp.headers.update(req.emulator.operations.retry_headers(op))
    return resp


def _result(req: Request) -> Response:
    op = operation_of(req)
    resp = req.emulator.operations.location_response(op)
    if resp.status == 202:
        resp.headers["Location"] = f"{req.base_url()}{req.path}?api-version={req.api_version}"
    return resp


for _template, _ops in ((FABRIC, FABRIC_OPS), (CONTAINER, CONTAINER_OPS), (MAPPING, MAPPING_OPS), (ITEM, ITEM_OPS),
                        (NETWORK_MAPPING, NETWORK_MAPPING_OPS), (POLICY, POLICY_OPS), (PLAN, PLAN_OPS)):
    router.add("GET", _template + "/operationresults/{operationId}", _result, operation=_ops + "/operationresults/read",
               api_versions=VERSIONS)
