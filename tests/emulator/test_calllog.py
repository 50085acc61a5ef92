"""The call log: each ARM request with its operation, status and the caller's User-Agent (the
emulator records the header, whoever sent it), including throttled calls and unknown routes."""

from __future__ import annotations

import urllib.request

from azure.mgmt.compute import ComputeManagementClient


def test_each_call_is_logged_with_its_callers_user_agent(az, fleet):
    sub = fleet["subscriptions"][0]
    ours = az.client(ComputeManagementClient, sub, user_agent="someone/1.2", retry_backoff_factor=0.01)
    theirs = az.client(ComputeManagementClient, sub)
    az.faults([{"kind": "429", "method": "GET", "path": "/virtualMachines/vm-00000$", "count": 1, "retry_after": 0}])
    since = len(az.calls())
    ours.virtual_machines.get("rg-vm-00", "vm-00000")
    list(theirs.disks.list())
    calls = az.calls(since)
    assert [(c["operation"], c["status"]) for c in calls] == [
        ("Microsoft.Compute/virtualMachines/read", 429), ("Microsoft.Compute/virtualMachines/read", 200),
        ("Microsoft.Compute/disks/read", 200)]
    assert all("someone/1.2" in c["userAgent"] for c in calls[:2])
    assert "someone/1.2" not in calls[2]["userAgent"] and "azsdk-python-mgmt-compute" in calls[2]["userAgent"]
    assert {"method", "resourceType", "action", "operation", "status", "path", "time", "userAgent"} <= set(calls[0])


def test_a_call_to_an_unknown_route_is_logged_without_an_operation(az, fleet):
    sub = fleet["subscriptions"][0]
    req = urllib.request.Request(f"{az.base_url}/subscriptions/{sub}/providers/Microsoft.Compute/gadgets?api-version=1",
                                 headers={"User-Agent": "probe/0", "Authorization": "Bearer x"})
    since = len(az.calls())
    try:
        urllib.request.urlopen(req, context=az._ssl, timeout=30)  # noqa: S310 (loopback)
    except urllib.error.HTTPError as exc:
        assert exc.code in (400, 404)
    (call,) = az.calls(since)
    assert call["operation"] is None and call["userAgent"] == "probe/0"
