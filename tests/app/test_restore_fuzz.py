"""Fuzzed restore requests through the local Functions host: whatever the body or the principal header,
the API answers with a status it documents and never a 500, and creates nothing it was not asked to."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.app import openapi_check
from tests.app.restore_world import OPERATOR_PRINCIPAL, protect_once, start

FIELDS = ["vm", "recovery_point", "target", "dry_run", "type", "resource_group", "vm_name", "subnet", "vm_size",
          "staging_storage_account"]
SUB = "00000000-0000-0000-0000-000000000000"
IDS = st.sampled_from([
    "/subscriptions/{sub}/resourceGroups/rg-restore",
    "/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000",
    "/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Network/virtualNetworks/vnet-westeurope/subnets/default",
    "/subscriptions/{sub}/resourceGroups/rg-restore/providers/Microsoft.Storage/storageAccounts/vmkstaging",
    "/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/restorePointCollections/c/restorePoints/p",
    "snapshot-set:0123456789abcdef:westeurope", "/subscriptions/{sub}/resourceGroups/../x", "",
])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40), IDS)
JSONISH = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                       max_leaves=12)
TARGETS = st.fixed_dictionaries({}, optional={
    "type": st.one_of(st.sampled_from(["disks", "vm", "os_disk", "original_location"]), SCALARS),
    "resource_group": st.one_of(IDS, JSONISH), "vm_name": st.one_of(st.text(max_size=70), JSONISH),
    "subnet": st.one_of(IDS, JSONISH), "vm": st.one_of(IDS, JSONISH), "vm_size": st.one_of(st.text(max_size=20), SCALARS),
    "staging_storage_account": IDS})
BODIES = st.one_of(
    JSONISH,
    st.fixed_dictionaries({}, optional={"vm": st.one_of(IDS, JSONISH), "recovery_point": st.one_of(IDS, JSONISH),
                                        "target": st.one_of(TARGETS, JSONISH), "dry_run": st.one_of(st.booleans(), SCALARS)}),
)
PRINCIPALS = st.one_of(st.just(OPERATOR_PRINCIPAL), st.text(max_size=60),
                       st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode()),
                       JSONISH.map(lambda v: base64.b64encode(json.dumps(v).encode()).decode()))
DOCUMENTED = {200, 202, 400, 401, 403, 409, 413, 422}


@pytest.fixture(scope="module")
def fuzz_world(request, tmp_path_factory, azurite, _local_azure):
    az, emu = _local_azure
    az.reset()
    from tests.conftest import FAST

    az.settings(**FAST)
    mp = pytest.MonkeyPatch()
    w = start(az, emu, azurite, tmp_path_factory.mktemp("fuzz"), mp)
    protect_once(w)
    yield w
    w["host"].close()
    mp.undo()


def _post(world, body, principal):
    raw = body if isinstance(body, bytes) else json.dumps(body).replace("{sub}", world["sub"]).encode()
    headers = {"x-functions-key": world["host"].function_key, "X-MS-CLIENT-PRINCIPAL": principal}
    answer = world["host"].http("POST", "/api/restores", headers=headers, body=raw)
    assert answer.status in DOCUMENTED, (body, answer.status, answer.body)
    openapi_check.check("POST", "/api/restores", answer.status, answer.headers, answer.body, request=raw)
    return answer


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(body=BODIES)
def test_fuzzed_bodies_never_make_a_500(fuzz_world, body):
    answer = _post(fuzz_world, body, OPERATOR_PRINCIPAL)
    if answer.status == 400:
        assert all(e["field"] and e["detail"] for e in answer.json()["errors"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(principal=PRINCIPALS, raw=st.binary(max_size=200))
def test_fuzzed_principals_and_raw_bytes_never_make_a_500(fuzz_world, principal, raw):
    _post(fuzz_world, raw, principal)
