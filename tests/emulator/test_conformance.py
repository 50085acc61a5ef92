"""Conformance: every x-ms-example for the Compute and Resource Graph operations the emulator
serves is replayed through the real SDK pipeline (auth, TLS against the generated CA, the SDK's
headers): the example's request is sent, the status must be one the example documents, and the
response must carry every key path of the example's response that the emulator models. Resource
Graph responses are also validated against the JSON schema in the swagger file.

State an example presupposes (its resource group, the VM a restore point collection points at, the
source of a copy…) is arranged first; the request under test is the example's own.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from azure.core.rest import HttpRequest

from tests.conftest import SHARED

EXAMPLES = SHARED / "examples"
# Official examples of operations the emulator did not serve before, kept apart until they replay here too.
PENDING = SHARED / "pending" / "examples"
SPECS = SHARED / "specs"
SUB = "2f6d4a3c-1b2a-4c5d-8e9f-0a1b2c3d4e5f"
FILES = sorted([*EXAMPLES.glob("Microsoft.Compute/**/*.json"), *EXAMPLES.glob("Microsoft.ResourceGraph/**/*.json")])
FILES += sorted([*PENDING.glob("Microsoft.Compute/**/*.json"), *PENDING.glob("Microsoft.ResourceGraph/**/*.json")])


def _example_id(path: Path) -> str:
    return str(path.relative_to(SHARED)) if path.is_relative_to(PENDING) else str(path.relative_to(EXAMPLES))

# Operations whose path objects are not in the swagger excerpts under ../shared (they were trimmed):
# the templates are the SDK's own (azure-mgmt-compute 39.0.0).
RG_COMPUTE = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute"
SUPPLEMENT = {
    "Disks_Get": ("GET", RG_COMPUTE + "/disks/{diskName}"),
    "Disks_CreateOrUpdate": ("PUT", RG_COMPUTE + "/disks/{diskName}"),
    "VirtualMachines_Delete": ("DELETE", RG_COMPUTE + "/virtualMachines/{vmName}"),
    "VirtualMachines_InstanceView": ("GET", RG_COMPUTE + "/virtualMachines/{vmName}/instanceView"),
    "VirtualMachines_ListAll": ("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/virtualMachines"),
    "RestorePointCollections_ListAll": ("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/restorePointCollections"),
    "VirtualMachines_Update": ("PATCH", RG_COMPUTE + "/virtualMachines/{vmName}"),
    "VirtualMachines_Deallocate": ("POST", RG_COMPUTE + "/virtualMachines/{vmName}/deallocate"),
    "VirtualMachines_Start": ("POST", RG_COMPUTE + "/virtualMachines/{vmName}/start"),
    "VirtualMachines_PowerOff": ("POST", RG_COMPUTE + "/virtualMachines/{vmName}/powerOff"),
}
# Power actions: the VM's state before (what the `_Gen` examples, with placeholder VM names, presuppose) and
# the PowerState the instance view shows once the operation has ended.
POWER_ACTIONS = {"VirtualMachines_Deallocate": ("running", "deallocated"), "VirtualMachines_Start": ("deallocated", "running"),
                 "VirtualMachines_PowerOff": ("running", "stopped")}
# Boolean query parameters of the power actions, sent as the SDK sends them.
BOOL_QUERY = ("hibernate", "forceDeallocate", "skipShutdown")
# Older example files (2025-01-02) carry no operationId: their file names say which operation they show.
BY_FILE_NAME = [("Disk_Create", "Disks_CreateOrUpdate"), ("Disk_Delete", "Disks_Delete"),
                ("DiskRestorePoint_Get", "DiskRestorePoint_Get"), ("Snapshot_Create", "Snapshots_CreateOrUpdate"),
                ("Resources", "Resources")]

# Keys of the examples the emulator deliberately doesn't model (vendor detail with no bearing on backup).
NOT_MODELLED = {
    # VM detail with no bearing on backup
    "purchasePlan", "securityProfile", "applicationProfile", "diagnosticsProfile", "availabilitySet",
    "proximityPlacementGroup", "userData", "extendedLocation", "plan", "imageReference", "resources",  # extensions
    "bootDiagnostics", "isVMInStandbyPool", "platformUpdateDomain", "platformFaultDomain", "rdpThumbPrint",
    "maintenanceRedeployStatus", "extensions", "patchStatus", "vmHealth", "assignedHost", "osVersion",
    "osProfile", "etag", "licenseType", "priority", "evictionPolicy", "billingProfile", "host", "hostGroup",
    "scheduledEventsProfile", "virtualMachineScaleSet", "capacityReservation", "identity", "resiliencyView",
    # disk and snapshot detail
    "supportedCapabilities", "supportsHibernation", "encryptionSettingsCollection", "hyperVGeneration",
    "provisionedBandwidthCopySpeed", "diskIOPSReadWrite", "diskMBpsReadWrite", "tier", "burstingEnabled",
    "diskAccessId", "securityType", "dataAccessAuthMode", "lastOwnershipUpdateTime", "logicalSectorSize",
    "diskEncryptionSet", "diskControllerType", "instantAccessDurationMinutes", "LastOwnershipUpdateTime",
    "instantAccess", "extensionsTimeBudget", "extensionHandlers",
}
# Keys that depend on the example's own state rather than on shape: a disk's managedBy and osType exist
# when it is attached / an OS disk (the arranged one is neither); a VM's managedBy when a service owns it;
# excludeDisks[].id when the point excluded disks.
STATE_DEPENDENT = {"managedBy", "properties.osType", "properties.excludeDisks[].id",
                   "properties.restorePoints[].properties.excludeDisks[].id"}
# Where an old example disagrees with the documented KQL the emulator follows: `summarize count()`
# names its column count_ (the 2021 example shows "count").
RENAMED = {"count": "count_"}
RESULTS: Counter = Counter()


def _operations() -> dict[str, tuple[str, str]]:
    ops = dict(SUPPLEMENT)
    for spec in SPECS.glob("Microsoft.Compute/**/*.json"):
        paths = json.loads(spec.read_text()).get("paths", {})
        for path, methods in paths.items():
            for method, op in methods.items():
                if isinstance(op, dict) and "operationId" in op:
                    ops[op["operationId"]] = (method.upper(), path)
    rg = json.loads((SPECS / "Microsoft.ResourceGraph/2021-03-01/resourcegraph.json").read_text())
    ops["Resources"] = ("POST", "/providers/Microsoft.ResourceGraph/resources")
    ops["_rg_spec"] = rg  # type: ignore[assignment]
    return ops


OPS = _operations()


def _load(path: Path) -> dict:
    text = path.read_text()
    for placeholder in ("{subscription-id}", "{subscriptionId}", "{subscription_id}"):
        text = text.replace(placeholder, SUB)
    # Other placeholders ("{existing-disk-name}") become plain names.
    text = re.sub(r"\{([A-Za-z0-9-]+)\}", lambda m: m.group(1), text)
    return json.loads(text)


def _operation_id(path: Path, example: dict) -> str:
    if example.get("operationId"):
        return example["operationId"]
    for prefix, op in BY_FILE_NAME:
        if path.name.startswith(prefix):
            return op
    raise AssertionError(f"{path.name}: no operationId")


def _shape(obj, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in NOT_MODELLED or f"{prefix.rsplit('.', 1)[-1]}.{k}" in NOT_MODELLED:
                continue
            k = RENAMED.get(k, k)
            path = f"{prefix}.{k}" if prefix else k
            keys.add(path)
            if k != "tags":  # tag names are user data, not shape
                keys |= _shape(v, path)
    elif isinstance(obj, list) and obj:
        keys |= _shape(obj[0], prefix + "[]")
    return keys


# --- arranging the state an example presupposes ------------------------------------------------
def _store_vm(emu, sub: str, rg: str, name: str, location: str, attach: tuple[str, ...] = ()) -> str:
    from emulator.compute import models as cm
    from emulator.network.responses import new_nic, new_vnet

    with emu.lock:
        store, now = emu.store, emu.clock.timestamp()
        _store_rg(emu, sub, rg, location)
        vm_id = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"
        if store.get(vm_id):
            return vm_id
        vnet = store.put(new_vnet(sub, rg, f"vnet-{name}", location, ["10.0.0.0/16"], [{"name": "default"}], None, now))
        nic = store.put(new_nic(sub, rg, f"{name}-nic", location, vnet.properties["subnets"][0]["id"], None, now))
        disks = [cm.new_disk(sub, rg, f"{name}-os", location, now, size_gb=64, creation={"createOption": "FromImage"},
                             os_type="Windows"),
                 cm.new_disk(sub, rg, f"{name}-data0", location, now, size_gb=128)]
        storage = {"osDisk": {"osType": "Windows", "name": disks[0].name, "createOption": "FromImage", "caching": "ReadWrite",
                              "managedDisk": {"id": disks[0].id, "storageAccountType": "Premium_LRS"}, "diskSizeGB": 64},
                   "dataDisks": [{"lun": 0, "name": disks[1].name, "createOption": "Empty", "diskSizeGB": 128, "caching": "None",
                                  "managedDisk": {"id": disks[1].id, "storageAccountType": "Premium_LRS"}}]}
        vm = cm.new_vm(sub, rg, name, location, now, size="Standard_D2s_v5", storage=storage,
                       network={"networkInterfaces": [{"id": nic.id, "properties": {"primary": True}}]}, tags=None,
                       state="Succeeded")
        for lun, disk_id in enumerate(attach, start=1):  # existing disks the request names (excludeDisks)
            disk = store.get(disk_id)
            storage["dataDisks"].append({"lun": lun, "name": disk.name, "createOption": "Attach", "caching": "None",
                                         "managedDisk": {"id": disk.id, "storageAccountType": "Premium_LRS"}})
            disks.append(disk)
        for disk in disks:
            cm.attach_disk(disk, vm.id)
            store.put(disk)
        nic.properties["virtualMachine"] = {"id": vm.id}
        store.put(vm)
        return vm.id


def _store_rg(emu, sub: str, rg: str, location: str) -> None:
    emu.store.add_subscription(sub)
    if rg.lower() not in emu.store.subscription(sub).resource_groups:
        emu.store.put_resource_group(sub, rg, location)


class Arranger:
    def __init__(self, az, emu, compute):
        self.az, self.emu, self.compute = az, emu, compute

    def ensure(self, resource_id: str, location: str, attach: tuple[str, ...] = ()) -> None:
        """Make the resource an id names exist (with whatever it needs), in ``location``."""
        from azure.mgmt.compute.models import (
            CreationData,
            Disk,
            RestorePoint,
            RestorePointCollection,
            RestorePointCollectionSourceProperties,
            Snapshot,
        )

        if self.emu.store.get(resource_id):
            return
        parts = resource_id.split("/")
        sub, rg = parts[2], parts[4]
        _store_rg(self.emu, sub, rg, location)
        kinds = [p.lower() for p in parts[7::2]]
        names = parts[8::2]
        base = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute"
        if kinds == ["virtualmachines"]:
            for disk in attach:
                self.ensure(disk, location)
            _store_vm(self.emu, sub, rg, names[0], location, attach)
        elif kinds == ["disks"]:
            self.compute.disks.begin_create_or_update(rg, names[0], Disk(
                location=location, disk_size_gb=128, creation_data=CreationData(create_option="Empty"))).result()
        elif kinds == ["snapshots"]:
            disk = f"{base}/disks/{names[0]}-source"
            self.ensure(disk, location)
            self.compute.snapshots.begin_create_or_update(rg, names[0], Snapshot(
                location=location, incremental=True,
                creation_data=CreationData(create_option="Copy", source_resource_id=disk))).result()
        elif kinds == ["restorepointcollections"]:
            vm = _store_vm(self.emu, sub, rg, f"{names[0]}-vm", location, attach)
            self.compute.restore_point_collections.create_or_update(rg, names[0], RestorePointCollection(
                location=location, source=RestorePointCollectionSourceProperties(id=vm)))
        elif kinds == ["restorepointcollections", "restorepoints"]:
            self.ensure(f"{base}/restorePointCollections/{names[0]}", location)
            self.compute.restore_points.begin_create(rg, names[0], names[1], RestorePoint()).result()
        elif kinds == ["restorepointcollections", "restorepoints", "diskrestorepoints"]:
            from emulator.compute import models as cm

            rp_id = f"{base}/restorePointCollections/{names[0]}/restorePoints/{names[1]}"
            self.ensure(rp_id, location)
            with self.emu.lock:
                rp = self.emu.store.get(rp_id)
                disk = self.emu.store.get(self.emu.store.of_type(cm.DRP_TYPE, rp.id)[0].properties["sourceResourceId"])
                self.emu.store.put(cm.new_disk_restore_point(rp, names[2], disk, self.emu.clock.timestamp()))
        elif kinds == ["networkinterfaces"]:
            from emulator.network.responses import new_nic, new_vnet

            with self.emu.lock:
                now = self.emu.clock.timestamp()
                vnet = self.emu.store.put(new_vnet(sub, rg, f"vnet-{names[0]}", location, ["10.1.0.0/16"],
                                                   [{"name": "default"}], None, now))
                self.emu.store.put(new_nic(sub, rg, names[0], location, vnet.properties["subnets"][0]["id"], None, now))
        else:
            raise AssertionError(f"don't know how to arrange {resource_id}")


def _copy_tags(emu, resource_id: str, expected) -> None:
    """The example's resource carries user tags: arrange ours with the same ones."""
    res = emu.store.get(resource_id)
    if res is not None and isinstance(expected, dict) and expected.get("tags"):
        res.tags = dict(expected["tags"])


def _ids_in(obj) -> list[str]:
    if isinstance(obj, dict):
        return [i for v in obj.values() for i in _ids_in(v)]
    if isinstance(obj, list):
        return [i for v in obj for i in _ids_in(v)]
    if isinstance(obj, str) and obj.lower().lstrip("/").startswith(f"subscriptions/{SUB}/resourcegroups/"):
        return ["/" + obj.lstrip("/")]
    return []


def _norm(location: str | None) -> str:
    return (location or "westus").replace(" ", "").lower()


@pytest.mark.parametrize("path", FILES, ids=[_example_id(p) for p in FILES])
def test_replay_example(az, emu, path):
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.resourcegraph import ResourceGraphClient

    example = _load(path)
    op_id = _operation_id(path, example)
    method, template = OPS[op_id]
    params = dict(example["parameters"])
    body = next((v for k, v in params.items() if isinstance(v, dict)), None)
    responses = example["responses"]
    compute = az.client(ComputeManagementClient, SUB, polling_interval=0)
    az.admin("POST", "subscriptions", {"id": SUB})
    arranger = Arranger(az, emu, compute)

    url = template
    for name, value in params.items():
        if isinstance(value, str):
            url = url.replace("{" + name + "}", value)
    if "resourceGroupName" in params:
        _store_rg(emu, SUB, params["resourceGroupName"], "westus")
    expected = next((r.get("body") for code, r in sorted(responses.items()) if code in ("200", "201") and r.get("body")), None)
    target_location = _norm((body or {}).get("location") or (expected or {}).get("location") if isinstance(expected, dict) else None)

    if op_id == "Resources":
        client = az.client(ResourceGraphClient)
        az.seed(subscriptions=[SUB], resource_groups=2, vms=30, data_disks=[0, 2], regions=["westus", "eastus"],
                vm_prefix="test", tag_sets=[{"tag1": "Value1"}])
        if "subscriptions" in body:  # the example's subscription is ours here
            body = dict(body, subscriptions=[SUB])
        token = (body.get("options") or {}).get("$skipToken")
        if token:  # a real service's token is opaque: ask our emulator for the first page's
            first = dict(body, options={k: v for k, v in body["options"].items() if k != "$skipToken"})
            first["options"].setdefault("$top", 3)
            page = client._client.send_request(HttpRequest("POST", f"{az.base_url}{url}?api-version={params['api-version']}",
                                                           json=first)).json()
            body = dict(body, options=dict(body["options"], **{"$skipToken": page["$skipToken"]}))
    else:
        client = compute
        # The state the request presupposes: the target (for reads, updates and deletes) and what the body references.
        creates = method == "PUT"
        if op_id in POWER_ACTIONS:  # the VM the action acts on, in the state the action starts from
            vm_url = url.rsplit("/", 1)[0]
            arranger.ensure(vm_url, target_location)
            with emu.lock:
                emu.store.get(vm_url).internal["power"] = POWER_ACTIONS[op_id][0]
        elif op_id == "VirtualMachines_Update":  # the VM with a data disk at each LUN the request names
            luns = [d["lun"] for d in body["properties"]["storageProfile"].get("dataDisks", [])]
            base = url.split("/providers/")[0] + "/providers/Microsoft.Compute/disks/"
            arranger.ensure(url, target_location, tuple(f"{base}{params['vmName']}-data{lun}" for lun in luns if lun))
        elif not creates and op_id != "VirtualMachines_InstanceView" and url.count("/") >= 8 \
                and not op_id.endswith(("_List", "_ListByResourceGroup", "_ListByRestorePoint")):
            arranger.ensure(url, target_location)
            _copy_tags(emu, url, expected)
            for point in ((expected or {}).get("properties") or {}).get("restorePoints") or []:
                arranger.ensure(point["id"], target_location)  # $expand=restorePoints shows them
        cross_region = json.dumps(body or {}).find("CopyStart") >= 0 or "sourceRestorePoint" in json.dumps(body or {}) \
            or "ForCrossRegionCopy" in path.name
        for ref in _ids_in(body or {}):
            arranger.ensure(ref, "eastus" if cross_region and _norm(target_location) != "eastus" else target_location)
        if "sourceRestorePoint" in json.dumps(body or {}):  # the collection must point at the source's collection
            source_rpc = _ids_in(body)[0].split("/restorePoints/")[0]
            from azure.mgmt.compute.models import (
                RestorePointCollection,
                RestorePointCollectionSourceProperties,
            )

            compute.restore_point_collections.create_or_update(
                params["resourceGroupName"], params["restorePointCollectionName"],
                RestorePointCollection(location=target_location, source=RestorePointCollectionSourceProperties(id=source_rpc)))
        elif op_id == "RestorePoints_Create":  # the VM must hold the disks the request excludes
            arranger.ensure(url.rsplit("/restorePoints/", 1)[0], target_location,
                            tuple(d["id"] for d in (body.get("properties") or {}).get("excludeDisks", [])))
        elif op_id == "VirtualMachines_InstanceView":
            arranger.ensure(url.rsplit("/instanceView", 1)[0], target_location)
        elif op_id.endswith(("_List", "_ListAll", "_ListByResourceGroup", "_ListByRestorePoint")):
            ref = (expected or {}).get("value", [{}])[0].get("id") if isinstance(expected, dict) else None
            if ref:
                arranger.ensure(ref, _norm((expected["value"][0]).get("location")))
                _copy_tags(emu, ref, expected["value"][0])

    query = {"api-version": params["api-version"]}
    for key in ("$expand", "expand"):
        if key in params:
            query["$expand"] = params[key]
    if "forceDeletion" in params:
        query["forceDeletion"] = params["forceDeletion"]
    for key in BOOL_QUERY:
        if key in params:
            query[key] = str(params[key]).lower()
    resp = client._client.send_request(HttpRequest(method, az.base_url + url, params=query, json=body))
    assert str(resp.status_code) in responses, (resp.status_code, list(responses), resp.text()[:300])
    actual = resp.json() if resp.text() else None
    if method == "PUT" and resp.status_code in (201, 202):  # long-running: the final resource is what the example shows
        az.advance(600)
        actual = client._client.send_request(HttpRequest("GET", az.base_url + url, params=query)).json()
        if actual.get("properties", {}).get("provisioningState"):
            assert actual["properties"]["provisioningState"] == "Succeeded"
    if op_id in POWER_ACTIONS:  # the action took effect
        az.advance(600)
        view = client._client.send_request(HttpRequest("GET", az.base_url + url.rsplit("/", 1)[0] + "/instanceView",
                                                       params=query)).json()
        assert f"PowerState/{POWER_ACTIONS[op_id][1]}" in [s["code"] for s in view["statuses"]]
    if op_id == "VirtualMachines_Update":  # detached once the update ended: gone from the VM, the disk kept
        detached = [d["lun"] for d in body["properties"]["storageProfile"]["dataDisks"] if d.get("toBeDetached")]
        az.advance(600)
        vm = client._client.send_request(HttpRequest("GET", az.base_url + url, params=query)).json()
        assert vm["properties"]["provisioningState"] == "Succeeded"
        assert not {d["lun"] for d in vm["properties"]["storageProfile"]["dataDisks"]} & set(detached)
        disk = client._client.send_request(HttpRequest(
            "GET", az.base_url + url.split("/providers/")[0] + f"/providers/Microsoft.Compute/disks/{params['vmName']}-data0",
            params={"api-version": "2026-03-02"})).json()
        assert disk["properties"]["diskState"] == "Unattached" and "managedBy" not in disk
    if expected is not None and actual is not None and method != "DELETE":
        missing = _shape(expected) - _shape(actual) - STATE_DEPENDENT
        assert not missing, f"{path.name}: keys in the example the emulator doesn't return: {sorted(missing)}"
    if op_id == "Resources":
        import jsonschema

        spec = OPS["_rg_spec"]
        schema = dict(spec["definitions"]["QueryResponse"], definitions=spec["definitions"])
        schema = json.loads(json.dumps(schema).replace("#/definitions/", "#/definitions/"))
        jsonschema.validate(actual, schema)
        RESULTS["schema"] += 1
    RESULTS["Compute" if "Microsoft.Compute" in str(path) else "ResourceGraph"] += 1


def test_zz_conformance_summary(capsys):
    # test_recoveryservices.py replays the 2026-10-01 examples (2019-05-13 holds only a Learn body, *.docs.json).
    not_replayed = len([*EXAMPLES.glob("Microsoft.RecoveryServices/2026-10-01/**/*.json"),
                        *PENDING.glob("Microsoft.RecoveryServices/2026-10-01/**/*.json")])
    line = (f"conformance: replayed {RESULTS['Compute'] + RESULTS['ResourceGraph']} examples "
            f"({RESULTS['Compute']} Compute, {RESULTS['ResourceGraph']} Resource Graph), schema-validated "
            f"{RESULTS['schema']}; Recovery Services ({not_replayed}) are replayed in test_recoveryservices.py")
    with capsys.disabled():
        print("\n" + line)
    assert RESULTS["Compute"] + RESULTS["ResourceGraph"] == len(FILES)
