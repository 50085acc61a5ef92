"""What every Site Recovery route shares: the route table, path templates, the api-version served, the
vault a path names, and how an accepted operation is answered and run as a job.

Every write is a long-running operation answered as the live service answers it (the A2A recording noted
in ../shared/azure-api/README.md): 202 with an empty body, ``Azure-AsyncOperation:
{vault}/replicationOperationStatus/{id}`` and ``Location: {resource}/operationresults/{id}`` (202 while
running, then what the synchronous call would have answered: the object, or 204 for a delete), plus
``Retry-After``. The operation runs a job in the vault (``replicationJobs``)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

from ..core.arm import get_resource, rid
from ..core.lro import Operation
from ..core.routing import Request, Response, Router
from ..core.state import Resource
from . import jobs
from . import models as m

router = Router()

# azure-mgmt-recoveryservicessiterecovery 2.0.0 sends 2025-08-01 (its default; the contracts' version).
VERSIONS = ("2025-08-01",)
RG = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.RecoveryServices"
VAULT = RG + "/vaults/{resourceName}"
FABRIC = VAULT + "/replicationFabrics/{fabricName}"
CONTAINER = FABRIC + "/replicationProtectionContainers/{protectionContainerName}"
MAPPING = CONTAINER + "/replicationProtectionContainerMappings/{mappingName}"
ITEM = CONTAINER + "/replicationProtectedItems/{replicatedProtectedItemName}"
NETWORK = FABRIC + "/replicationNetworks/{networkName}"
NETWORK_MAPPING = NETWORK + "/replicationNetworkMappings/{networkMappingName}"
POLICY = VAULT + "/replicationPolicies/{policyName}"
PLAN = VAULT + "/replicationRecoveryPlans/{recoveryPlanName}"
JOB = VAULT + "/replicationJobs/{jobName}"

OPS = "Microsoft.RecoveryServices/vaults"
FABRIC_OPS = OPS + "/replicationFabrics"
CONTAINER_OPS = FABRIC_OPS + "/replicationProtectionContainers"
MAPPING_OPS = CONTAINER_OPS + "/replicationProtectionContainerMappings"
ITEM_OPS = CONTAINER_OPS + "/replicationProtectedItems"
NETWORK_MAPPING_OPS = FABRIC_OPS + "/replicationNetworks/replicationNetworkMappings"
POLICY_OPS = OPS + "/replicationPolicies"
PLAN_OPS = OPS + "/replicationRecoveryPlans"


def store(req: Request):
    return req.emulator.store


def now(req: Request) -> float:
    return req.emulator.clock.timestamp()


def vault(req: Request) -> Resource:
    p = req.params
    vault_id = rid(p["subscriptionId"], p["resourceGroupName"], m.PROVIDER, "vaults", p["resourceName"])
    return get_resource(store(req), vault_id, m.VAULT_TYPE, p["resourceName"], p["resourceGroupName"])


def child(req: Request, parent: Resource, collection: str, param: str, kind: str, *, ready: bool = False) -> Resource:
    """A Site Recovery object under ``parent`` by the name in ``param``, or ASR's 404."""
    name = req.params[param]
    found = store(req).get(f"{parent.id}/{collection}/{name}")
    if found is None or (ready and found.internal.get("state") == "creating"):
        raise m.not_found(kind, name, vault(req))
    return found


def fabric(req: Request, v: Resource | None = None) -> Resource:
    return child(req, v or vault(req), "replicationFabrics", "fabricName", "fabric")


def container(req: Request, v: Resource | None = None) -> Resource:
    return child(req, fabric(req, v), "replicationProtectionContainers", "protectionContainerName", "protection container")


def quoted_version(req: Request) -> str:
    return urllib.parse.quote(req.api_version or VERSIONS[0])


def monitors(req: Request, v: Resource, target_id: str, op: Operation) -> dict[str, str]:
    base, version = req.base_url(), quoted_version(req)
    return {
        "Azure-AsyncOperation": f"{base}{m.wire_id(v.id)}/replicationOperationStatus/{op.id}?api-version={version}",
        "Location": f"{base}{m.wire_id(target_id)}/operationresults/{op.id}?api-version={version}",
        **req.emulator.operations.retry_headers(op),
    }


def run(req: Request, v: Resource, target: Resource, *, scenario: str, kind: str, tasks: list[str],
        done: Callable[[Operation], None] | None = None, failed: Callable[[Operation], None] | None = None,
        result: Callable[[], Response] | None = None, duration: float | None = None,
        job_target: Resource | None = None) -> tuple[Response, Operation, Resource]:
    """Accept an operation on ``target``: a job running ``tasks`` over the operation's span, ``done`` when it
    succeeds (it may raise core.lro.OperationFailed), ``failed`` when it fails; 202 with the monitors."""
    emulator = req.emulator
    op = emulator.start_operation(req, v.location or "", duration)
    job = jobs.new_job(store(req), v, scenario, job_target or target, kind, tasks, op.start, op.end)
    op.extra.update(vault=v.key, job=job.id)

    def on_success(o: Operation) -> None:
        if done is not None:
            done(o)
        jobs.finish(job, o.end)

    def on_failure(o: Operation) -> None:
        if failed is not None:
            failed(o)
        jobs.finish(job, o.end, o.error)

    op.on_success, op.on_failure, op.result = on_success, on_failure, result
    return Response(202, None, monitors(req, v, target.id, op)), op, job


def operation_of(req: Request) -> Operation:
    v = vault(req)
    op = req.emulator.operations.get(req.params["operationId"])
    if op is None or op.extra.get("vault") != v.key:
        raise m.AsrError(f"The operation '{req.params['operationId']}' was not found in vault '{v.name}'.",
                         code="NotFound", status=404)
    return op


def rendered(fn: Callable[..., dict[str, Any]], *args: Any) -> Callable[[], Response]:
    """The final answer of an operation's Location: the object as it is then (204 once it is gone)."""
    def answer() -> Response:
        return Response(200, fn(*args))
    return answer
