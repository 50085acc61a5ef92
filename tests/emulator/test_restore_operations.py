"""The operations an on-demand restore uses, through the real SDK clients (azure-mgmt-compute 39.0.0,
azure-mgmt-recoveryservicesbackup 11.2.0): a VM PATCH swapping the OS disk and each way it is refused, a VM
create attaching an OS disk, Azure Backup's ValidateOperation (sync and the trigger LRO with its results and
status) and an OriginalLocation restore end to end.

No official example swaps an OS disk, attaches one at create or restores to the original location: these
follow the REST reference and Learn pages named in emulator/README.md.
"""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute.models import (
    CreationData,
    Disk,
    HardwareProfile,
    ManagedDiskParameters,
    NetworkInterfaceReference,
    NetworkProfile,
    OSDisk,
    OSProfile,
    Snapshot,
    StorageProfile,
    VirtualMachine,
)
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
from azure.mgmt.recoveryservicesbackup.models import (
    IaasVMRestoreRequest,
    RestoreRequestResource,
    ValidateIaasVMRestoreOperationRequest,
    ValidateOperationRequestResource,
)

from emulator.recoveryservices import models as rs
from emulator.recoveryservices.models import seed_protected_item, seed_recovery_point, seed_vault

RG, NAME = "rg-vm-00", "vm-00000"
OS_TARGET = "storageProfile.osDisk.managedDisk.id"
VAULT_RG, VAULT = "rg-backup", "vault-weu"


def _error(err: pytest.ExceptionInfo) -> tuple[int, str, str | None]:
    e = err.value
    return e.status_code, e.error.code if e.error else "", e.error.target if e.error else None


def _swap(compute, disk_id: str, rg: str = RG, name: str = NAME):
    return compute.virtual_machines.begin_update(rg, name, {"properties": {"storageProfile": {"osDisk": {
        "managedDisk": {"id": disk_id}}}}})


def _os_disk(compute, rg: str = RG, name: str = NAME) -> Disk:
    vm = compute.virtual_machines.get(rg, name)
    return compute.disks.get(rg, vm.storage_profile.os_disk.managed_disk.id.rsplit("/", 1)[1])


def _disk(compute, name: str, *, size: int, location: str = "westeurope", os_type: str | None = "Linux",
          source: str | None = None, rg: str = RG) -> Disk:
    creation = CreationData(create_option="Copy", source_resource_id=source) if source else CreationData(create_option="Empty")
    return compute.disks.begin_create_or_update(rg, name, Disk(
        location=location, os_type=os_type, disk_size_gb=None if source else size, creation_data=creation)).result()


def _power(compute, rg: str = RG, name: str = NAME) -> str:
    view = compute.virtual_machines.instance_view(rg, name)
    return next(s.code for s in view.statuses if s.code.startswith("PowerState/"))


# --- VM PATCH swapping the OS disk ---------------------------------------------------------------------
def test_os_disk_swap_of_a_deallocated_vm_keeps_the_old_disk(compute, fleet):
    old = _os_disk(compute)
    compute.virtual_machines.begin_deallocate(RG, NAME).result()
    assert _power(compute) == "PowerState/deallocated"
    snap = compute.snapshots.begin_create_or_update(RG, "os-snap", Snapshot(
        location="westeurope", incremental=True,
        creation_data=CreationData(create_option="Copy", source_resource_id=old.id))).result()
    new = _disk(compute, "os-restored", size=old.disk_size_gb, source=snap.id)
    assert new.disk_size_gb == old.disk_size_gb and new.disk_state == "Unattached"

    vm = _swap(compute, new.id).result()

    assert vm.provisioning_state == "Succeeded"
    assert vm.storage_profile.os_disk.managed_disk.id.lower() == new.id.lower()
    assert vm.storage_profile.os_disk.name == new.name
    kept = compute.disks.get(RG, old.name)
    assert kept.disk_state == "Unattached" and kept.managed_by is None
    swapped = compute.disks.get(RG, new.name)
    assert swapped.disk_state == "Attached" and swapped.managed_by.lower() == vm.id.lower()
    assert _power(compute) == "PowerState/deallocated"  # the swap doesn't start the VM
    compute.virtual_machines.begin_start(RG, NAME).result()
    assert _power(compute) == "PowerState/running"


def test_os_disk_swap_of_a_running_vm_is_refused_with_409(compute, fleet):
    old = _os_disk(compute)
    new = _disk(compute, "os-new", size=old.disk_size_gb)
    with pytest.raises(HttpResponseError) as err:
        _swap(compute, new.id)
    assert _error(err) == (409, "OperationNotAllowed", OS_TARGET)
    assert compute.disks.get(RG, new.name).disk_state == "Unattached"


@pytest.mark.parametrize("problem", ["size", "region", "no-os-type"])
def test_os_disk_swap_refuses_an_unfit_disk_with_400(compute, fleet, problem):
    old = _os_disk(compute)
    compute.virtual_machines.begin_deallocate(RG, NAME).result()
    size = old.disk_size_gb * 2 if problem == "size" else old.disk_size_gb
    location = "northeurope" if problem == "region" else "westeurope"
    new = _disk(compute, f"os-{problem}", size=size, location=location,
                os_type=None if problem == "no-os-type" else "Linux")
    with pytest.raises(HttpResponseError) as err:
        _swap(compute, new.id)
    assert _error(err) == (400, "InvalidParameter", OS_TARGET)
    assert compute.virtual_machines.get(RG, NAME).storage_profile.os_disk.managed_disk.id.lower() == old.id.lower()


def test_os_disk_swap_refuses_a_missing_disk_with_400(compute, fleet, sub):
    compute.virtual_machines.begin_deallocate(RG, NAME).result()
    missing = f"/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.Compute/disks/no-such-disk"
    with pytest.raises(HttpResponseError) as err:
        _swap(compute, missing)
    status, _code, target = _error(err)
    assert (status, target) == (400, OS_TARGET)


def test_os_disk_swap_refuses_a_disk_attached_to_another_vm(compute, fleet):
    """A disk serves one VM: 409 OperationNotAllowed, as for any attach (emulator/README.md), naming the field."""
    compute.virtual_machines.begin_deallocate(RG, NAME).result()
    other = _os_disk(compute, RG, "vm-00002")  # same group, size and region; attached to vm-00002
    assert other.disk_state == "Attached"
    with pytest.raises(HttpResponseError) as err:
        _swap(compute, other.id)
    assert _error(err) == (409, "OperationNotAllowed", OS_TARGET)


def test_os_disk_swap_refuses_a_data_disk_without_os_type(compute, fleet):
    """A detached data disk of the right size is still no OS disk."""
    compute.virtual_machines.begin_deallocate(RG, NAME).result()
    old = _os_disk(compute)
    data = _disk(compute, "data-free", size=old.disk_size_gb, os_type=None)
    with pytest.raises(HttpResponseError) as err:
        _swap(compute, data.id)
    assert _error(err) == (400, "InvalidParameter", OS_TARGET)


# --- VM create attaching an OS disk ------------------------------------------------------------------
def test_vm_create_attaching_an_os_disk_refuses_an_os_profile(compute, fleet):
    source = compute.virtual_machines.get(RG, NAME)
    disk = _disk(compute, "os-attach", size=64)
    nic = source.network_profile.network_interfaces[0].id

    def vm(os_profile):
        return VirtualMachine(
            location="westeurope", hardware_profile=HardwareProfile(vm_size="Standard_D2s_v5"),
            storage_profile=StorageProfile(os_disk=OSDisk(create_option="Attach", os_type="Linux",
                                                          managed_disk=ManagedDiskParameters(id=disk.id))),
            os_profile=os_profile, network_profile=NetworkProfile(network_interfaces=[NetworkInterfaceReference(id=nic)]))

    with pytest.raises(HttpResponseError) as err:
        compute.virtual_machines.begin_create_or_update(RG, "vm-attached", vm(OSProfile(
            computer_name="vm-attached", admin_username="azureuser")))
    assert _error(err) == (400, "InvalidParameter", "osProfile")
    assert compute.disks.get(RG, disk.name).disk_state == "Unattached"


# --- Azure Backup: ValidateOperation and an OriginalLocation restore ---------------------------------------
@pytest.fixture
def backup(az, sub):
    return az.client(RecoveryServicesBackupClient, sub, polling_interval=0)


@pytest.fixture
def point(emu, compute, sub, fleet) -> dict:
    """vm-00000 protected by a vault in its region, with one recovery point."""
    vault = seed_vault(emu, sub, VAULT_RG, VAULT, "westeurope")
    vm = compute.virtual_machines.get(RG, NAME)
    item = seed_protected_item(emu, vault, vm.id)
    name = seed_recovery_point(emu, item, age_seconds=3600)
    return {"vault": vault, "item": item, "name": name, "id": f"{item}/recoveryPoints/{name}", "vm": vm,
            "container": rs.container_name(RG, NAME), "item_name": rs.item_name(RG, NAME)}


def _request(sub: str, point: dict, **kwargs) -> IaasVMRestoreRequest:
    fields = {"recovery_point_id": point["name"], "recovery_type": "RestoreDisks", "region": "westeurope",
              "source_resource_id": point["vm"].id, "target_resource_group_id": f"/subscriptions/{sub}/resourceGroups/rg-vm-01"}
    return IaasVMRestoreRequest(**{**fields, **kwargs})


def _validate(backup, point: dict, request: IaasVMRestoreRequest) -> list[dict]:
    result = backup.operation.validate(VAULT, VAULT_RG, ValidateOperationRequestResource(
        id=point["id"], properties=ValidateIaasVMRestoreOperationRequest(restore_request=request)))
    return (result.as_dict().get("validateOperationResponse") or {}).get("validationResults") or []


def _subnet(sub: str, rg: str = "rg-vm-01", vnet: str = "vnet-westeurope") -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/{vnet}/subnets/default"


def _staging(sub: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/rg-vm-01/providers/Microsoft.Storage/storageAccounts/staging"


def test_validate_a_sound_restore_answers_no_results(backup, point, sub):
    assert _validate(backup, point, _request(sub, point)) == []
    alternate = _request(sub, point, recovery_type="AlternateLocation", subnet_id=_subnet(sub),
                         target_virtual_machine_id=f"/subscriptions/{sub}/resourceGroups/rg-vm-01/providers/"
                                                   "Microsoft.Compute/virtualMachines/vm-00000-restored")
    assert _validate(backup, point, alternate) == []
    original = _request(sub, point, recovery_type="OriginalLocation", target_resource_group_id=None,
                        storage_account_id=_staging(sub), original_storage_account_option=False,
                        create_new_cloud_service=False, affinity_group="")
    assert _validate(backup, point, original) == []


def test_validate_reports_each_problem(backup, compute, point, sub):
    def codes(**kwargs) -> list[str]:
        return [r["code"] for r in _validate(backup, point, _request(sub, point, **kwargs))]

    target = f"/subscriptions/{sub}/resourceGroups/rg-vm-01/providers/Microsoft.Compute/virtualMachines/vm-new"
    assert codes(recovery_type="AlternateLocation", target_virtual_machine_id=target,
                 subnet_id=_subnet(sub, vnet="no-such-vnet")) == ["UserErrorSubnetNotFound"]
    existing = compute.virtual_machines.get("rg-vm-01", "vm-00001").id
    assert codes(recovery_type="AlternateLocation", target_virtual_machine_id=existing,
                 subnet_id=_subnet(sub)) == ["UserErrorVmNameAlreadyExists"]
    assert codes(region="northeurope") == ["UserErrorCrossRegionRestoreNotEnabled"]
    compute.virtual_machines.begin_delete(RG, NAME).result()
    assert codes(recovery_type="OriginalLocation", target_resource_group_id=None,
                 storage_account_id=_staging(sub)) == ["UserErrorOriginalVmNotFound"]
    # Nothing was created by any of it.
    assert {vm.name for vm in compute.virtual_machines.list("rg-vm-01")} == {"vm-00001", "vm-00003"}


def test_trigger_validate_then_read_its_results_and_status(az, backup, point, sub):
    headers: dict = {}
    poller = backup.validate_operation.begin_trigger(VAULT, VAULT_RG, ValidateOperationRequestResource(
        id=point["id"], properties=ValidateIaasVMRestoreOperationRequest(
            restore_request=_request(sub, point, region="northeurope"))),
        raw_response_hook=lambda r: headers.setdefault("location", r.http_response.headers.get("Location")))
    assert poller.result() is None
    op_id = headers["location"].split("/backupValidateOperationResults/")[1].split("?")[0]
    results = backup.validate_operation_results.get(VAULT, VAULT_RG, op_id).as_dict()
    assert [r["code"] for r in results["validateOperationResponse"]["validationResults"]] == [
        "UserErrorCrossRegionRestoreNotEnabled"]
    status = backup.validate_operation_statuses.get(VAULT, VAULT_RG, op_id).as_dict()
    assert status["status"] == "Succeeded"
    assert status["properties"]["objectType"] == "OperationStatusValidateOperationExtendedInfo"
    assert status["properties"]["validateOperationResponse"] == results["validateOperationResponse"]


def test_original_location_restore_replaces_the_disks_lun_for_lun(az, backup, compute, point, sub):
    vm = point["vm"]
    before = {None: vm.storage_profile.os_disk.managed_disk.id.lower()}
    before.update({d.lun: d.managed_disk.id.lower() for d in vm.storage_profile.data_disks})
    request = RestoreRequestResource(properties=_request(
        sub, point, recovery_type="OriginalLocation", target_resource_group_id=None, storage_account_id=_staging(sub),
        original_storage_account_option=False, create_new_cloud_service=False, affinity_group=""))

    backup.restores.begin_trigger(VAULT, VAULT_RG, "Azure", point["container"], point["item_name"], point["name"],
                                  request).result()

    (job,) = list(backup.backup_jobs.list(VAULT, VAULT_RG, filter="operation eq 'Restore'"))
    assert job.properties.status == "Completed"
    after_vm = compute.virtual_machines.get(RG, NAME)
    assert after_vm.vm_id == vm.vm_id  # the same VM, its disks replaced
    after = {None: after_vm.storage_profile.os_disk.managed_disk.id.lower()}
    after.update({d.lun: d.managed_disk.id.lower() for d in after_vm.storage_profile.data_disks})
    assert set(after) == set(before) and not set(after.values()) & set(before.values())
    for lun, old_id in before.items():
        old = compute.disks.get(RG, old_id.rsplit("/", 1)[1])
        assert old.disk_state == "Unattached" and old.managed_by is None  # kept
        new = compute.disks.get(RG, after[lun].rsplit("/", 1)[1])
        assert new.disk_state == "Attached" and new.managed_by.lower() == vm.id.lower()
        assert new.disk_size_gb == old.disk_size_gb
        assert new.tags["RSVaultBackup"] == job.name
    restored = job.properties.extended_info.property_bag["Restored disk ids"].lower().split(",")
    assert set(restored) == set(after.values())
