"""Bad input gets the ARM error a real client would see (status, code, message), never a 500 or
a traceback: unknown or missing api-version, malformed JSON, bad resource ids and names."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from emulator.core.app import Emulator

VM = "/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000"


def call(az, method: str, path: str, body: bytes | None = None, auth: bool = True):
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Bearer local"
    req = urllib.request.Request(az.base_url + path, data=body, method=method, headers=headers)
    ctx = ssl.create_default_context(cafile=az.ca_path)
    try:
        with urllib.request.urlopen(req, context=ctx) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


@pytest.mark.parametrize("path, status, code", [
    (VM + "?api-version=2099-01-01", 400, "NoRegisteredProviderFound"),
    (VM, 400, "MissingApiVersionParameter"),
    ("/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x?api-version=2026-04-01",
     400, "InvalidSubscriptionId"),
    ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x"
     "?api-version=2026-04-01", 404, "SubscriptionNotFound"),
    ("/subscriptions/{sub}/resourceGroups/nope/providers/Microsoft.Compute/virtualMachines/x?api-version=2026-04-01",
     404, "ResourceGroupNotFound"),
    ("/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/x?api-version=2026-04-01",
     404, "ResourceNotFound"),
    ("/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/gadgets/x?api-version=2026-04-01",
     404, "InvalidResourceType"),
    ("/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Nonsense/things/x?api-version=2026-04-01",
     400, "InvalidResourceNamespace"),
])
def test_reads_with_bad_ids_and_versions(az, sub, path, status, code):
    got, body = call(az, "GET", path.format(sub=sub))
    assert (got, body["error"]["code"]) == (status, code)
    assert body["error"]["message"]


def test_missing_token_is_401(az, sub):
    got, body = call(az, "GET", VM.format(sub=sub) + "?api-version=2026-04-01", auth=False)
    assert got == 401 and body["error"]["code"] == "AuthenticationFailed"


@pytest.mark.parametrize("body, code", [
    (b"{not json", "InvalidRequestContent"),
    (b"[1, 2]", "InvalidRequestContent"),
    (b"", "InvalidRequestContent"),
    (b'{"properties": {}}', "LocationRequired"),
    (b'{"location": "westeurope", "tags": {"a": 1}, "properties": {}}', "InvalidTag"),
])
def test_malformed_bodies(az, sub, body, code):
    path = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/snapshots/s1?api-version=2026-03-02"
    got, answer = call(az, "PUT", path, body)
    assert got == 400 and answer["error"]["code"] == code


def test_bad_names_name_the_rule(az, sub):
    path = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/snapshots/-bad-?api-version=2026-03-02"
    got, answer = call(az, "PUT", path, b'{"location": "westeurope"}')
    assert got == 400 and answer["error"]["code"] == "InvalidResourceName" and "1-80" in answer["error"]["message"]


def test_unsupported_method_is_405(az, sub):
    got, answer = call(az, "POST", VM.format(sub=sub) + "?api-version=2026-04-01", b"{}")
    assert got == 405 and answer["error"]["code"] == "MethodNotAllowed"


@pytest.fixture(scope="module")
def bare():
    emulator = Emulator()
    emulator.store.add_subscription("11111111-1111-1111-1111-111111111111")
    return emulator


segment = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"), min_size=0, max_size=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "PUT", "PATCH", "POST", "DELETE"]),
    parts=st.lists(st.one_of(segment, st.sampled_from([
        "subscriptions", "11111111-1111-1111-1111-111111111111", "resourceGroups", "providers", "Microsoft.Compute",
        "virtualMachines", "snapshots", "restorePointCollections", "restorePoints", "disks", "Microsoft.Resources",
        "tags", "default", "Microsoft.ResourceGraph", "resources", "locations", "operations"])), max_size=10),
    version=st.sampled_from(["", "2026-04-01", "2026-03-02", "2021-03-01", "2025-04-01", "x"]),
    body=st.one_of(st.binary(max_size=64), st.builds(lambda d: json.dumps(d).encode(), st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=8))),
)
@example(method="GET", parts=["", "["], version="", body=b"")  # "//[": once read as a host, and a ValueError
def test_no_input_makes_a_500(bare, method, parts, version, body):
    path = "/" + "/".join(parts) + (f"?api-version={version}" if version else "")
    outcome = bare.handle(method, path, {"Authorization": "Bearer x"}, body)
    resp = outcome.response
    assert resp.status != 500, (method, path, body, resp.body)
    if resp.status >= 400:
        assert set(resp.body["error"]) >= {"code", "message"}
