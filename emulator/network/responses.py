"""virtualNetworks (with subnets; peerings listed, never made: a VNet here is isolated) and
networkInterfaces. PUT answers 201/200 with provisioningState Succeeded, which the SDK's poller
accepts as done. No official example here: shapes follow the REST reference (Virtual Networks,
Subnets, Virtual Network Peerings)."""

from __future__ import annotations

import uuid
from typing import Any

from ..core.arm import (
    check_name,
    check_tags,
    get_resource,
    linked_access_check,
    listing,
    no_event,
    require_location,
    rid,
)
from ..core.errors import Conflict, InvalidParameter, NotFound
from ..core.resource import Deletion, add_lists
from ..core.routing import Request, Response, Router
from ..core.state import Resource

router = Router()
PROVIDER = "Microsoft.Network"
VNET_TYPE = "Microsoft.Network/virtualNetworks"
NIC_TYPE = "Microsoft.Network/networkInterfaces"
VERSIONS = ("2026-03-01", "2025-05-01", "2025-03-01", "2025-01-01", "2024-10-01", "2024-07-01", "2024-05-01", "2024-03-01",
            "2024-01-01", "2023-11-01", "2023-09-01")
NAME_RE = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?"
RULE = "Names are 1-80 characters: letters, digits, '_', '.', '-'."
RG = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network"


def _id(req: Request, *pairs: str) -> str:
    return rid(req.params["subscriptionId"], req.params["resourceGroupName"], PROVIDER, *pairs)


def new_vnet(sub: str, rg: str, name: str, location: str, prefixes: list[str], subnets: list[dict[str, Any]],
             tags: dict[str, str] | None, now: float) -> Resource:
    vnet_id = rid(sub, rg, PROVIDER, "virtualNetworks", name)
    stored = []
    for s in subnets:
        sname = s.get("name")
        props = s.get("properties") or {}
        address = {"addressPrefixes": props["addressPrefixes"]} if props.get("addressPrefixes") else \
            {"addressPrefix": props.get("addressPrefix", "10.0.0.0/24")}
        stored.append({"name": sname, "id": f"{vnet_id}/subnets/{sname}", "type": f"{VNET_TYPE}/subnets",
                       "properties": {**address, "provisioningState": "Succeeded"}})
    return Resource(vnet_id, VNET_TYPE, name, location, tags,
                    {"addressSpace": {"addressPrefixes": prefixes}, "subnets": stored, "virtualNetworkPeerings": [],
                     "resourceGuid": str(uuid.uuid4()), "provisioningState": "Succeeded"},
                    {"etag": f'W/"{uuid.uuid4()}"'}, {}, now)


def new_nic(sub: str, rg: str, name: str, location: str, subnet_id: str, tags: dict[str, str] | None, now: float) -> Resource:
    nic_id = rid(sub, rg, PROVIDER, "networkInterfaces", name)
    return Resource(nic_id, NIC_TYPE, name, location, tags,
                    {"ipConfigurations": [{"name": "ipconfig1", "id": f"{nic_id}/ipConfigurations/ipconfig1",
                                           "properties": {"subnet": {"id": subnet_id}, "privateIPAllocationMethod": "Dynamic",
                                                          "primary": True}}],
                     "resourceGuid": str(uuid.uuid4()), "provisioningState": "Succeeded"},
                    {"etag": f'W/"{uuid.uuid4()}"'}, {}, now)


def find_subnet(store, subnet_id: str) -> dict[str, Any] | None:
    vnet_id, _, name = subnet_id.rpartition("/subnets/")
    vnet = store.get(vnet_id)
    if vnet is None:
        return None
    return next((s for s in vnet.properties["subnets"] if s["name"].lower() == name.lower()), None)


def _subnet_users(store, sub: str) -> dict[str, list[dict[str, str]]]:
    """The NIC IP configurations in each subnet of a subscription (subnet id, lower-case → [{id}])."""
    users: dict[str, list[dict[str, str]]] = {}
    for nic in store.of_type(NIC_TYPE, f"/subscriptions/{sub}"):
        for ipc in nic.properties["ipConfigurations"]:
            users.setdefault(ipc["properties"]["subnet"]["id"].lower(), []).append({"id": ipc["id"]})
    return users


def _subnet_body(subnet: dict[str, Any], users: dict[str, list[dict[str, str]]]) -> dict[str, Any]:
    """A subnet as ARM shows it: with the IP configurations of the NICs that joined it."""
    joined = users.get(subnet["id"].lower())
    if not joined:
        return subnet
    return dict(subnet, properties=dict(subnet["properties"], ipConfigurations=joined))


def vnet_body(store, vnet: Resource) -> dict[str, Any]:
    body = vnet.to_arm()
    users = _subnet_users(store, vnet.subscription_id)
    body["properties"] = dict(body["properties"], subnets=[_subnet_body(s, users) for s in vnet.properties["subnets"]])
    body["properties"].setdefault("virtualNetworkPeerings", [])
    return body


def _check_subnets(subnets: Any) -> list[dict[str, Any]]:
    if not isinstance(subnets, list):
        raise InvalidParameter("properties.subnets: must be a list of subnets.", target="properties.subnets")
    seen: set[str] = set()
    for i, subnet in enumerate(subnets):
        target = f"properties.subnets[{i}].name"
        name = subnet.get("name") if isinstance(subnet, dict) else None
        if not isinstance(name, str) or not name:
            raise InvalidParameter(f"{target}: every subnet needs a name.", target=target)
        check_name(name, NAME_RE, RULE)
        if name.lower() in seen:
            raise InvalidParameter(f"{target}: subnet '{name}' is named twice.", target=target)
        seen.add(name.lower())
    return subnets


@router.route("PUT", RG + "/virtualNetworks/{name}", operation="Microsoft.Network/virtualNetworks/write", api_versions=VERSIONS)
def put_vnet(req: Request) -> Response:
    body = req.json()
    check_name(req.params["name"], NAME_RE, RULE)
    rg = req.emulator.store.resource_group(req.params["subscriptionId"], req.params["resourceGroupName"])
    props = body.get("properties") or {}
    if not isinstance(props, dict) or not isinstance(props.get("addressSpace") or {}, dict):
        raise InvalidParameter("properties: must be an object with an 'addressSpace' object.", target="properties")
    prefixes = (props.get("addressSpace") or {}).get("addressPrefixes") or []
    if not prefixes:
        raise InvalidParameter("properties.addressSpace.addressPrefixes: at least one prefix is required.",
                               target="addressSpace")
    if props.get("virtualNetworkPeerings"):
        raise InvalidParameter("properties.virtualNetworkPeerings: the emulator does not model peerings; a virtual "
                               "network here has none.", target="properties.virtualNetworkPeerings")
    subnets = _check_subnets(props.get("subnets") or [])
    existed = req.emulator.store.get(_id(req, "virtualNetworks", req.params["name"])) is not None
    vnet = new_vnet(req.params["subscriptionId"], rg.name, req.params["name"], require_location(body), prefixes,
                    subnets, check_tags(body), req.emulator.clock.timestamp())
    req.emulator.store.put(vnet)
    return Response(200 if existed else 201, vnet_body(req.emulator.store, vnet))


def _vnet(req: Request) -> Resource:
    return get_resource(req.emulator.store, _id(req, "virtualNetworks", req.params["name"]), VNET_TYPE,
                        req.params["name"], req.params["resourceGroupName"])


@router.route("GET", RG + "/virtualNetworks/{name}", operation="Microsoft.Network/virtualNetworks/read", api_versions=VERSIONS)
def get_vnet(req: Request) -> Response:
    return Response(200, vnet_body(req.emulator.store, _vnet(req)))


@router.route("GET", RG + "/virtualNetworks/{name}/subnets/{subnet}",
              operation="Microsoft.Network/virtualNetworks/subnets/read", api_versions=VERSIONS)
def get_subnet(req: Request) -> Response:
    vnet = _vnet(req)
    subnet = find_subnet(req.emulator.store, f"{vnet.id}/subnets/{req.params['subnet']}")
    if subnet is None:
        raise NotFound(f"Subnet '{req.params['subnet']}' was not found.")
    return Response(200, _subnet_body(subnet, _subnet_users(req.emulator.store, vnet.subscription_id)))


@router.route("GET", RG + "/virtualNetworks/{name}/subnets", operation="Microsoft.Network/virtualNetworks/subnets/read",
              api_versions=VERSIONS)
def list_subnets(req: Request) -> Response:
    vnet = _vnet(req)
    users = _subnet_users(req.emulator.store, vnet.subscription_id)
    return listing(req, [_subnet_body(s, users) for s in vnet.properties["subnets"]])


@router.route("GET", RG + "/virtualNetworks/{name}/virtualNetworkPeerings",
              operation="Microsoft.Network/virtualNetworks/virtualNetworkPeerings/read", api_versions=VERSIONS)
def list_peerings(req: Request) -> Response:
    """Always empty: the emulator makes no peerings, so a client can verify a network's isolation."""
    return listing(req, list(_vnet(req).properties.get("virtualNetworkPeerings") or []))


@router.route("GET", RG + "/virtualNetworks/{name}/virtualNetworkPeerings/{peering}",
              operation="Microsoft.Network/virtualNetworks/virtualNetworkPeerings/read", api_versions=VERSIONS)
def get_peering(req: Request) -> Response:
    vnet = _vnet(req)
    raise NotFound(f"Resource {vnet.id}/virtualNetworkPeerings/{req.params['peering']} not found.")


@router.route("DELETE", RG + "/virtualNetworks/{name}", operation="Microsoft.Network/virtualNetworks/delete",
              api_versions=VERSIONS)
def delete_vnet(req: Request) -> Response:
    store = req.emulator.store
    vnet = store.get(_id(req, "virtualNetworks", req.params["name"]))
    if vnet is None:
        return no_event(Response(204))
    begin_delete_vnet(store, vnet).done()
    return Response(200)


def begin_delete_vnet(store, vnet: Resource) -> Deletion:
    """Refused while a NIC uses one of its subnets."""
    prefix = vnet.key + "/subnets/"
    for nic in store.of_type(NIC_TYPE):
        for ipc in nic.properties["ipConfigurations"]:
            if ipc["properties"]["subnet"]["id"].lower().startswith(prefix):
                raise Conflict(f"Subnet of '{vnet.name}' is in use by network interface '{nic.id}'.", code="InUseSubnetCannotBeDeleted")
    return Deletion(vnet.location or "", lambda: store.delete(vnet.id))


def begin_delete_nic(store, nic: Resource) -> Deletion:
    """Refused while a VM uses it."""
    if "virtualMachine" in nic.properties:
        raise Conflict(f"Network interface '{nic.name}' is attached to VM '{nic.properties['virtualMachine']['id']}'.",
                       code="NicInUse")
    return Deletion(nic.location or "", lambda: store.delete(nic.id))


@router.route("PUT", RG + "/networkInterfaces/{name}", operation="Microsoft.Network/networkInterfaces/write",
              api_versions=VERSIONS)
def put_nic(req: Request) -> Response:
    body = req.json()
    check_name(req.params["name"], NAME_RE, RULE)
    rg = req.emulator.store.resource_group(req.params["subscriptionId"], req.params["resourceGroupName"])
    configs = (body.get("properties") or {}).get("ipConfigurations") or []
    if not configs:
        raise InvalidParameter("properties.ipConfigurations: at least one IP configuration is required.",
                               target="ipConfigurations")
    subnet_id = ((configs[0].get("properties") or {}).get("subnet") or {}).get("id", "")
    if find_subnet(req.emulator.store, subnet_id) is None:
        raise InvalidParameter(f"Resource '{subnet_id}' referenced by 'ipConfigurations[0].subnet' was not found.",
                               code="InvalidResourceReference", target="ipConfigurations[0].properties.subnet.id")
    linked_access_check(req, "Microsoft.Network/virtualNetworks/subnets/join/action", subnet_id)
    existing = req.emulator.store.get(_id(req, "networkInterfaces", req.params["name"]))
    nic = new_nic(req.params["subscriptionId"], rg.name, req.params["name"], require_location(body), subnet_id,
                  check_tags(body), req.emulator.clock.timestamp())
    if existing is not None and "virtualMachine" in existing.properties:
        nic.properties["virtualMachine"] = existing.properties["virtualMachine"]
    req.emulator.store.put(nic)
    return Response(200 if existing else 201, nic.to_arm())


@router.route("GET", RG + "/networkInterfaces/{name}", operation="Microsoft.Network/networkInterfaces/read",
              api_versions=VERSIONS)
def get_nic(req: Request) -> Response:
    return Response(200, get_resource(req.emulator.store, _id(req, "networkInterfaces", req.params["name"]), NIC_TYPE,
                                      req.params["name"], req.params["resourceGroupName"]).to_arm())


@router.route("DELETE", RG + "/networkInterfaces/{name}", operation="Microsoft.Network/networkInterfaces/delete",
              api_versions=VERSIONS)
def delete_nic(req: Request) -> Response:
    store = req.emulator.store
    nic = store.get(_id(req, "networkInterfaces", req.params["name"]))
    if nic is None:
        return no_event(Response(204))
    begin_delete_nic(store, nic).done()
    return Response(200)


# Synchronous here, but what a resource group's delete runs for each as well (core/resource.py).
router.deletions.update({VNET_TYPE.lower(): begin_delete_vnet, NIC_TYPE.lower(): begin_delete_nic})


add_lists(router, VNET_TYPE, api_versions=VERSIONS, render=lambda req, vnet: vnet_body(req.emulator.store, vnet))
add_lists(router, NIC_TYPE, api_versions=VERSIONS, scopes=("group",))
