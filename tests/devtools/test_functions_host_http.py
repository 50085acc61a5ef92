"""LocalFunctionsHost's HTTP triggers, against a small FunctionApp built here: the host's routing
(route prefix, templates and constraints, literal before parameter, methods), its authorization
levels and keys, a raising function as a 500, and the same over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import azure.functions as func
import pytest

from devtools.functions_host import LocalFunctionsHost

GUID = "0b8f8e5e-3c1a-4a53-9d51-6f2a4d0c2e11"


def echo(req: func.HttpRequest, name: str) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"function": name, "route": dict(req.route_params), "params": dict(req.params),
                                         "method": req.method, "url": req.url,
                                         "caller": req.headers.get("X-Caller"),
                                         "body": req.get_body().decode()}),
                             mimetype="application/json", headers={"X-Served-By": name})


def build_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="items", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
    def items(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "items")

    @app.route(route="items/{id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def item(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "item")

    @app.route(route="items/special", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def special(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "special")

    @app.route(route="orders/{n:int}", auth_level=func.AuthLevel.ANONYMOUS)
    def order(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "order")

    @app.route(route="orders/{name:alpha}", auth_level=func.AuthLevel.ANONYMOUS)
    def order_by_name(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "order_by_name")

    @app.route(route="runs/{id:guid}/{part?}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def run(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "run")

    @app.route(route="things/{sub}/{rg}/{name}/points", methods=["GET", "POST"])  # the app's default: FUNCTION
    def points(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "points")

    @app.route(route="admin-only", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
    def admin_only(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req, "admin_only")

    @app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("kaput")

    @app.route(route="nothing", auth_level=func.AuthLevel.ANONYMOUS)
    def nothing(req: func.HttpRequest) -> None:
        return None

    @app.route(route="text", auth_level=func.AuthLevel.ANONYMOUS)
    def text(req: func.HttpRequest) -> str:
        return "plain"

    return app


@pytest.fixture
def host(monkeypatch):
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)  # the host sets it; put it back afterwards
    h = LocalFunctionsHost(build_app(), "UseDevelopmentStorage=true")
    yield h
    h.close()


def test_routes_and_route_params(host):
    a = host.http("GET", "/api/items/42", headers={"X-Caller": "me"})
    assert a.status == 200
    assert a.headers["content-type"] == "application/json" and a.headers["X-SERVED-BY"] == "item"
    assert a.json()["route"] == {"id": "42"} and a.json()["caller"] == "me"
    assert host.http("GET", "/api/items").json()["function"] == "items"
    assert host.http("GET", "/API/Items/").json()["function"] == "items"  # literals in any case, trailing slash
    assert host.http("GET", "/api/items/a%20b").json()["route"] == {"id": "a b"}  # values percent-decoded


def test_query_url_and_body_reach_the_function(host):
    a = host.http("POST", "/api/items?x=1&x=2", query={"y": "3"}, body=b"hello").json()
    assert a["params"] == {"x": "1,2", "y": "3"}  # a repeated parameter comma-joined, as the host does
    assert a["url"] == "http://localhost/api/items?x=1&x=2&y=3"
    assert a["body"] == "hello" and a["method"] == "POST"


def test_a_literal_route_beats_a_parameter_one(host):
    assert host.http("GET", "/api/items/special").json()["function"] == "special"
    assert host.http("GET", "/api/items/SPECIAL").json()["function"] == "special"
    assert host.http("GET", "/api/items/specials").json()["function"] == "item"


def test_constraints_and_optional_segments(host):
    assert host.http("GET", "/api/orders/12").json()["function"] == "order"
    assert host.http("GET", "/api/orders/abc").json()["function"] == "order_by_name"
    assert host.http("GET", "/api/orders/a1").status == 404  # neither int nor alpha
    assert host.http("GET", "/api/orders/99999999999").status == 404  # beyond int32
    assert host.http("GET", f"/api/runs/{GUID}").json()["route"] == {"id": GUID}
    assert host.http("GET", f"/api/runs/{GUID}/log").json()["route"] == {"id": GUID, "part": "log"}
    assert host.http("GET", "/api/runs/not-a-guid").status == 404


def test_not_found_and_methods(host):
    assert host.http("GET", "/api/nowhere").status == 404
    assert host.http("GET", "/items").status == 404  # the route prefix is required
    assert host.http("GET", "/api/items/1/2").status == 404
    assert host.http("DELETE", "/api/items").status == 404  # an unlisted method matches no route: 404
    assert host.http("POST", "/api/items/1").status == 404
    head = host.http("HEAD", "/api/items/1")  # HEAD goes where GET does, without a body
    assert head.status == 200 and head.body == b""
    assert host.http("PUT", "/api/orders/1").status == 200  # no methods listed: every method
    assert [i["status"] for i in host.invocations] == [200, 200]  # a request no function took is no invocation


def test_function_level_needs_a_key(host):
    path = "/api/things/s1/rg1/vm1/points"
    for answer in (host.http("GET", path), host.http("GET", path, headers={"x-functions-key": "wrong"}),
                   host.http("GET", path, query={"code": "wrong"})):
        assert (answer.status, answer.body) == (401, b"")
    a = host.http("GET", path, headers={"X-Functions-Key": host.function_key})
    assert a.status == 200 and a.json()["route"] == {"sub": "s1", "rg": "rg1", "name": "vm1"}
    assert host.http("GET", f"{path}?code={host.function_key}").status == 200
    assert host.http("GET", path, query={"code": host.host_key}).status == 200
    assert host.http("GET", path, query={"code": host.master_key}).status == 200
    # the header, when sent, is the key the host reads: a right code doesn't make up for a wrong header
    assert host.http("GET", path, headers={"x-functions-key": "wrong"}, query={"code": host.function_key}).status == 401
    assert host.http("GET", "/api/nowhere").status == 404  # routing comes first: 404, not 401


def test_admin_level_needs_the_master_key(host):
    assert host.http("POST", "/api/admin-only").status == 401
    assert host.http("POST", "/api/admin-only", headers={"x-functions-key": host.function_key}).status == 401
    assert host.http("POST", "/api/admin-only", headers={"x-functions-key": host.host_key}).status == 401
    assert host.http("POST", "/api/admin-only", headers={"x-functions-key": host.master_key}).status == 200


def test_keys_from_the_constructor(monkeypatch):
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    h = LocalFunctionsHost(build_app(), "UseDevelopmentStorage=true", function_keys={"default": "fk"},
                           host_keys={"ops": "hk"}, master_key="mk")
    assert (h.function_key, h.host_key, h.master_key) == ("fk", "hk", "mk")
    for key, status in (("fk", 200), ("hk", 200), ("mk", 200), ("nope", 401)):
        assert h.http("GET", "/api/things/a/b/c/points", query={"code": key}).status == status
    h.close()


def test_a_raising_function_is_a_500_and_a_failed_invocation(host):
    a = host.http("GET", "/api/boom")
    assert (a.status, a.body) == (500, b"")
    assert host.invocations[-1] == {"function": "boom", "ok": False, "error": "RuntimeError: kaput", "method": "GET",
                                    "path": "/api/boom", "status": 500}
    assert host.http("GET", "/api/nothing").status == 500  # no HttpResponse: the worker can't answer
    assert host.invocations[-1]["ok"] is False
    t = host.http("GET", "/api/text")
    assert (t.status, t.body) == (200, b"plain")
    assert host.invocations[-1] == {"function": "text", "ok": True, "error": None, "method": "GET", "path": "/api/text",
                                    "status": 200}


def test_serve_http_over_real_http(host):
    base = host.serve_http()
    assert base.startswith("http://127.0.0.1:")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy from the environment
    req = urllib.request.Request(f"{base}/api/things/s/r/n/points?z=9", data=b'{"a": 1}', method="POST",
                                 headers={"x-functions-key": host.function_key, "X-Caller": "curl"})
    with opener.open(req, timeout=10) as resp:
        assert resp.status == 200 and resp.headers["X-Served-By"] == "points"
        body = json.loads(resp.read())
    assert body["route"] == {"sub": "s", "rg": "r", "name": "n"} and body["params"] == {"z": "9"}
    assert body["caller"] == "curl" and body["body"] == '{"a": 1}'
    assert body["url"] == f"{base}/api/things/s/r/n/points?z=9"
    for path, status in (("/api/things/s/r/n/points", 401), ("/api/nowhere", 404), ("/api/boom", 500)):
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(f"{base}{path}", timeout=10)
        assert err.value.code == status and err.value.read() == b""
    assert host.serve_http() == base  # one server per host


def test_bad_route_templates_fail_at_start(monkeypatch):
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    app = func.FunctionApp()

    @app.route(route="x/{id:nosuch}", auth_level=func.AuthLevel.ANONYMOUS)
    def x(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("")

    with pytest.raises(ValueError, match="nosuch"):
        LocalFunctionsHost(app, "UseDevelopmentStorage=true")


def test_the_apps_health_endpoint(monkeypatch):
    import importlib

    import function_app

    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    h = LocalFunctionsHost(importlib.reload(function_app).app, "UseDevelopmentStorage=true")
    try:
        a = h.http("GET", "/api/health")
        assert a.status == 200 and a.json()["status"] == "ok"
        assert h.http("POST", "/api/health").status == 404
    finally:
        h.close()


def test_app_settings_override_host_json_as_the_host_reads_them(monkeypatch):
    """``AzureFunctionsJobHost__<path>`` app settings (keys in any case) override host.json's values."""
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    monkeypatch.delenv("AzureFunctionsJobHost__extensions__queues__maxPollingInterval", raising=False)  # conftest's
    plain = LocalFunctionsHost(build_app(), "UseDevelopmentStorage=true")
    plain.close()
    assert (plain.max_polling_interval, plain.batch_size, plain.route_prefix) == (1.0, 32, "api")  # host.json's
    monkeypatch.setenv("AzureFunctionsJobHost__extensions__queues__maxPollingInterval", "00:00:00.100")
    monkeypatch.setenv("AzureFunctionsJobHost__Extensions__Queues__BatchSize", "4")
    monkeypatch.setenv("AzureFunctionsJobHost__extensions__http__routePrefix", "v1")
    h = LocalFunctionsHost(build_app(), "UseDevelopmentStorage=true")
    try:
        assert (h.max_polling_interval, h.batch_size) == (0.1, 4)
        assert h.http("GET", "/v1/items").json()["function"] == "items" and h.http("GET", "/api/items").status == 404
    finally:
        h.close()
