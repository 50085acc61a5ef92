"""The Function App: importing it stays light (no management SDK at import: cold start), and its
functions are registered from the blueprints in functions/."""

from __future__ import annotations

import json
import subprocess
import sys

import azure.functions as func

from tests.conftest import ROOT


def test_import_is_light():
    code = (
        "import sys, function_app\n"
        "heavy = sorted(m for m in sys.modules if m.startswith(('azure.mgmt', 'azure.identity', 'azure.storage', "
        "'azure.data', 'emulator')))\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_health_function_is_registered_and_answers():
    import importlib

    import function_app

    app = importlib.reload(function_app).app  # get_functions() works once per app object
    functions = {f.get_function_name(): f for f in app.get_functions()}
    assert "health" in functions
    handler = functions["health"].get_user_function()
    resp = handler(func.HttpRequest("GET", "/api/health", body=b""))
    assert resp.status_code == 200
    assert json.loads(resp.get_body())["status"] == "ok"


def test_auto_protect_functions_are_registered_with_their_triggers():
    import importlib

    import function_app

    app = importlib.reload(function_app).app
    triggers = {f.get_function_name(): f.get_trigger() for f in app.get_functions()}
    assert triggers["vm_events"].type == "eventGridTrigger"
    assert triggers["protect_worker"].type == "queueTrigger"
    assert triggers["protect_worker"].queue_name == "%VMKEEPER_PROTECT_QUEUE%"
    assert triggers["protect_sweep"].type == "timerTrigger"
    assert triggers["protect_sweep"].schedule == "%VMKEEPER_PROTECT_SCHEDULE%"


def test_poison_bound_matches_host_json():
    from shared.queue.runner import MAX_DEQUEUE_COUNT

    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensions"]["queues"]["maxDequeueCount"] == MAX_DEQUEUE_COUNT
