"""Event Grid: a subscriber registered through the admin API receives the Azure-subscription
system-topic events, shaped like the official samples, in both schemas."""

from __future__ import annotations

import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from azure.mgmt.compute.models import VirtualMachineUpdate

from tests.conftest import SHARED


class Subscriber:
    """A webhook on 127.0.0.1 that records what Event Grid delivers."""

    def __init__(self) -> None:
        self.received: queue.Queue = queue.Queue()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.put(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self, timeout: float = 10.0):
        return self.received.get(timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def subscriber():
    s = Subscriber()
    yield s
    s.close()


def keys(obj) -> set[str]:
    return set(obj.keys())


def test_vm_write_event_has_the_samples_shape(az, compute, sub, subscriber):
    az.admin("POST", "eventSubscriptions", {"endpoint": subscriber.url,
                                            "includedEventTypes": ["Microsoft.Resources.ResourceWriteSuccess"]})
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00000")
    compute.virtual_machines.begin_update("rg-vm-00", "vm-00000", VirtualMachineUpdate(tags={"a": "b"})).result()
    headers, body = subscriber.next()
    assert headers["aeg-event-type"] == "Notification"
    assert isinstance(body, list) and len(body) == 1
    event = body[0]
    sample = json.loads((SHARED / "events/event-grid-schema/subscription-topic_ResourceWriteSuccess.docs.json").read_text())[0]
    derived = json.loads((SHARED / "events/derived/vm_write_success.subscription-topic.eventgrid.derived.json").read_text())[0]
    assert keys(event) == keys(sample) == keys(derived)
    assert keys(derived["data"]) <= keys(event["data"])
    assert keys(sample["data"]["authorization"]) <= keys(event["data"]["authorization"])
    assert event["eventType"] == "Microsoft.Resources.ResourceWriteSuccess"
    assert event["subject"] == event["data"]["resourceUri"] == vm.id
    assert event["data"]["operationName"] == "Microsoft.Compute/virtualMachines/write"
    assert event["data"]["authorization"]["action"] == "Microsoft.Compute/virtualMachines/write"
    assert event["data"]["status"] == "Succeeded"
    assert event["topic"] == f"/subscriptions/{sub}"
    assert event["dataVersion"] == "2" and event["metadataVersion"] == "1"
    assert event["eventTime"].endswith("Z")


def test_delete_and_action_events_in_cloud_events_schema(az, compute, sub, subscriber):
    az.admin("POST", "eventSubscriptions", {"endpoint": subscriber.url, "schema": "CloudEventSchemaV1_0",
                                            "subjectBeginsWith": f"/subscriptions/{sub}/resourceGroups/rg-vm-00"})
    compute.virtual_machines.begin_deallocate("rg-vm-00", "vm-00000").result()
    compute.virtual_machines.begin_delete("rg-vm-00", "vm-00000").result()
    headers, action = subscriber.next()
    _, delete = subscriber.next()
    assert headers["content-type"].startswith("application/cloudevents+json")
    sample = json.loads((SHARED / "events/cloud-events-schema/resource_write_success.json").read_text())
    sample = sample[0] if isinstance(sample, list) else sample
    assert keys(sample) - {"specVersion"} <= keys(action) | {"datacontenttype"}
    assert action["specversion"] == "1.0"
    assert action["type"] == "Microsoft.Resources.ResourceActionSuccess"
    assert action["data"]["operationName"] == "Microsoft.Compute/virtualMachines/deallocate/action"
    assert action["subject"].endswith("/virtualMachines/vm-00000")
    assert delete["type"] == "Microsoft.Resources.ResourceDeleteSuccess"
    assert delete["source"] == f"/subscriptions/{sub}"


def test_filters_and_no_event_for_reads_or_for_deleting_nothing(az, compute, subscriber):
    az.admin("POST", "eventSubscriptions", {"endpoint": subscriber.url, "subjectEndsWith": "/snapshots/never"})
    compute.snapshots.begin_delete("rg-vm-00", "never").result()  # nothing there: 204, no event
    compute.virtual_machines.get("rg-vm-00", "vm-00000")
    with pytest.raises(queue.Empty):
        subscriber.next(timeout=0.5)


def test_endpoints_must_be_loopback(az):
    with pytest.raises(RuntimeError, match="loopback"):
        az.admin("POST", "eventSubscriptions", {"endpoint": "https://example.com/hook"})
