"""``replicationEligibilityResults/default`` of a VM: whether Site Recovery can replicate it, and if not, why
and what to do, in the shape of the official ReplicationEligibilityResults_Get example.

Rules modelled: the VM's OS image is one Azure-to-Azure replication does not support (the example's
``A2AOperatingSystemNotSupported``, e.g. Ubuntu 16.04/18.04, Windows Server 2008: the image reference's
SKU says which). Enabling replication of such a VM is refused with the same error."""

from __future__ import annotations

import uuid
from typing import Any

from ..compute import models as compute
from ..core.arm import get_resource, rid
from ..core.routing import Request, Response
from ..core.state import Resource, Store
from .http import VERSIONS, router

# (publisher, SKU prefix) → (OS name, version) of images outside the A2A support matrix.
UNSUPPORTED = {
    ("canonical", "16.04"): ("ubuntu", "16.04"),
    ("canonical", "18.04"): ("ubuntu", "18.04"),
    ("microsoftwindowsserver", "2008"): ("windows server", "2008"),
}
SUPPORT_MATRIX = "https://aka.ms/a2a-os-support-matrix"


def problems(store: Store, vm: Resource) -> list[dict[str, Any]]:
    image = (vm.properties.get("storageProfile") or {}).get("imageReference") or {}
    publisher, sku = str(image.get("publisher", "")).lower(), str(image.get("sku", "")).lower()
    for (pub, prefix), (os_name, version) in UNSUPPORTED.items():
        if publisher == pub and sku.startswith(prefix):
            return [{
                "code": "A2AOperatingSystemNotSupported",
                "message": f"The A2A operation could not be completed as the virtual machine is running OS '{os_name}' "
                           f"with version '{version}' which is not supported for replication.",
                "possibleCauses": "OS version not supported.",
                "recommendedAction": "The virtual machine is running unsupported Operating system. Refer to the "
                                     f"documentation for supported OS versions - {SUPPORT_MATRIX}.",
                "status": "Error",
            }]
    return []


@router.route("GET", "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/"
              "virtualMachines/{virtualMachineName}/providers/Microsoft.RecoveryServices/replicationEligibilityResults/default",
              operation="Microsoft.RecoveryServices/replicationEligibilityResults/read", api_versions=VERSIONS)
def get_eligibility(req: Request) -> Response:
    p = req.params
    vm_id = rid(p["subscriptionId"], p["resourceGroupName"], compute.PROVIDER, "virtualMachines", p["virtualMachineName"])
    vm = get_resource(req.emulator.store, vm_id, compute.VM_TYPE, p["virtualMachineName"], p["resourceGroupName"])
    return Response(200, {
        "name": "default", "type": "Microsoft.RecoveryServices/replicationEligibilityResults",
        "id": f"{vm.id}/providers/Microsoft.RecoveryServices/replicationEligibilityResults/default",
        "properties": {"clientRequestId": req.headers.get("x-ms-client-request-id") or str(uuid.uuid4()),
                       "errors": problems(req.emulator.store, vm)},
    })
