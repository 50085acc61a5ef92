"""The OpenAPI document as a client author uses it: a Python client generated from it (openapi-python-client,
warnings failing the generation) reads a VM's catalogue and makes a dry-run restore against the local host over
real HTTP (devtools/functions_host.py serve_http), with the function key and the caller App Service would write
(X-MS-CLIENT-PRINCIPAL: no App Service here). And the app roles the document gives each operation are the ones
the app enforces."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from shared import access
from shared.access import encode_principal
from shared.restore.api import OPENAPI
from tests.app import openapi_check
from tests.app.restore_world import OPERATOR_PRINCIPAL, REGION, protected, start

PACKAGE = "vmkeeper_api_client"
WRITES = ("PUT", "PATCH", "DELETE", "POST")


@pytest.fixture(scope="session")
def generated_client(tmp_path_factory):
    """The client package, generated once per session into a temporary directory (nothing generated is kept)."""
    root = tmp_path_factory.mktemp("generated")
    config = root / "config.json"
    config.write_text(json.dumps({"post_hooks": [], "package_name_override": PACKAGE}))  # no formatter run
    done = subprocess.run([sys.executable, "-m", "openapi_python_client", "generate", "--path", str(OPENAPI),
                           "--meta", "none", "--config", str(config), "--output-path", str(root / PACKAGE),
                           "--fail-on-warning"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr  # a warning: a schema or an operation left out
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def saved(_local_azure, azurite, tmp_path_factory):
    return protected(_local_azure, azurite, tmp_path_factory.mktemp("protected"))


@pytest.fixture
def world(az, emu, azurite, tmp_path, monkeypatch, saved):
    w = start(az, emu, azurite, tmp_path, monkeypatch, saved=saved)
    yield w
    w["host"].close()


def test_a_generated_client_makes_a_dry_run_restore_against_the_local_host(generated_client, world, az):
    from vmkeeper_api_client import Client
    from vmkeeper_api_client.api.recovery_points import list_recovery_points
    from vmkeeper_api_client.api.restores import create_restore
    from vmkeeper_api_client.models import Catalogue, DryRun, RestoreRequest, VmTarget

    base = world["host"].serve_http() + "/api"  # the document's servers: https://{app}.azurewebsites.net/api
    client = Client(base_url=base, headers={"x-functions-key": world["host"].function_key,
                                            "X-MS-CLIENT-PRINCIPAL": OPERATOR_PRINCIPAL}, raise_on_unexpected_status=True)
    sub, group, vm = world["vm_id"].split("/")[2], "rg-vm-00", "vm-00000"
    catalogue = list_recovery_points.sync(sub, group, vm, client=client)
    assert isinstance(catalogue, Catalogue) and catalogue.vm.exists
    point = next(p for p in catalogue.value if p.kind.value == "snapshot_set" and not p.copy)
    assert "vm" in point.targets
    mark = len(az.calls())
    group_id = f"/subscriptions/{sub}/resourceGroups/rg-restore"
    answer = create_restore.sync_detailed(client=client, body=RestoreRequest(
        vm=world["vm_id"], recovery_point=point.id, dry_run=True,
        target=VmTarget(type_="vm", resource_group=group_id, vm_name="from-client", subnet=world["subnet"][REGION])))
    assert answer.status_code == 200, answer.content
    dry = answer.parsed
    assert isinstance(dry, DryRun) and dry.dry_run and dry.valid
    assert dry.plan.target_type == "vm" and dry.plan.steps == ["create_disks", "create_nic", "create_vm"]
    creates = [(c.type_, c.id) for c in dry.plan.creates]
    assert (("Microsoft.Compute/virtualMachines", f"{group_id}/providers/Microsoft.Compute/virtualMachines/from-client")
            in creates), creates
    assert [t for t, _ in creates].count("Microsoft.Compute/disks") == len(point.disks)
    assert dry.request.target.additional_properties["vm_name"] == "from-client"
    written = [c for c in az.calls(mark) if c["method"] in WRITES
               and "Microsoft.ResourceGraph/resources/read" not in (c.get("operation") or "") + c["path"]]
    assert written == []  # a dry run creates nothing
    # What the generated client sent, as the API read it, is what the document's request schema says.
    openapi_check.check_request("POST", "/api/restores", json.dumps(dry.request.to_dict()).encode())


OTHER_ID = "0123456789abcdef"
CALLS = {  # operationId: a call no role can make write anything (ids that do not exist; bodies refused)
    "listRecoveryPoints": ("GET", "/api/vms/{sub}/rg-vm-00/vm-00000/recovery-points"),
    "createRestore": ("POST", "/api/restores"),
    "listRestores": ("GET", "/api/restores"),
    "getRestore": ("GET", f"/api/restores/{OTHER_ID}"),
    "cancelRestore": ("DELETE", f"/api/restores/{OTHER_ID}"),
    "takeExportAccess": ("POST", f"/api/restores/{OTHER_ID}/access"),
    "takeFileRecoveryScript": ("POST", f"/api/restores/{OTHER_ID}/script"),
    "getReport": ("GET", "/api/report"),
    "createFailover": ("POST", "/api/failovers"),
    "getFailover": ("GET", f"/api/failovers/{OTHER_ID}"),
}


def test_the_app_roles_each_operation_documents_are_the_ones_it_enforces(world):
    doc = json.loads(OPENAPI.read_text())
    documented = {op["operationId"]: op.get("x-app-roles") for item in doc["paths"].values() for op in item.values()
                  if isinstance(op, dict) and "operationId" in op and op.get("security") != []}
    assert set(documented) == set(CALLS)
    for operation, (method, path) in CALLS.items():
        path = path.format(sub=world["sub"])
        for role in (access.READER, access.OPERATOR, access.FAILOVER):
            answer = world["host"].http(method, path, body=b"{}", headers={
                "x-functions-key": world["host"].function_key,
                "X-MS-CLIENT-PRINCIPAL": encode_principal("00000000-0000-0000-0000-0000000000cc", [role])})
            refused = answer.status == 403 and any(e["field"] == "X-MS-CLIENT-PRINCIPAL.roles"
                                                   for e in answer.json().get("errors", []))
            assert refused == (role not in documented[operation]), (operation, role, answer.status, answer.body[:300])

