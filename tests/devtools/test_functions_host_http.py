"""The local Functions host's HTTP triggers, as the host serves them: routes and their precedence, methods,
auth levels and keys, a handler's exception, and the same over a loopback port."""

from __future__ import annotations

import json
import urllib.request

import azure.functions as func
import pytest

from devtools.functions_host import LocalFunctionsHost


def _app() -> func.FunctionApp:
    app = func.FunctionApp()

    @app.route(route="items", methods=["GET", "POST"], auth_level=func.AuthLevel.FUNCTION)
    def items(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps({"fn": "items", "method": req.method, "q": dict(req.params)}),
                                 mimetype="application/json")

    @app.route(route="items/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
    def item(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps({"fn": "item", "id": req.route_params["id"]}), mimetype="application/json")

    @app.route(route="items/special", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def special(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps({"fn": "special"}), mimetype="application/json", headers={"X-Seen": "1"})

    @app.route(route="numbers/{n:int}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def numbers(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(req.route_params["n"])

    @app.route(route="admin/thing", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
    def admin(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    @app.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("kaput")

    return app


@pytest.fixture
def host():
    h = LocalFunctionsHost(_app(), "UseDevelopmentStorage=true", function_key="fk", master_key="mk")
    yield h
    h.close()


def test_routes_params_and_precedence(host):
    key = {"x-functions-key": "fk"}
    assert host.http("GET", "/api/items?top=2", headers=key).json() == {"fn": "items", "method": "GET", "q": {"top": "2"}}
    assert host.http("GET", "/api/items/abc", headers=key).json() == {"fn": "item", "id": "abc"}
    special = host.http("GET", "/api/ITEMS/special")  # a literal beats a parameter; literals ignore case
    assert special.json() == {"fn": "special"} and special.headers["x-seen"] == "1"
    assert special.headers["Content-Type"].startswith("application/json")
    assert host.http("GET", "/api/numbers/42").body == b"42"
    assert host.http("GET", "/api/numbers/forty").status == 404  # the int constraint
    assert host.http("DELETE", "/api/items/abc", headers=key).status == 404  # no function takes DELETE there
    assert host.http("GET", "/api/nothing").status == 404
    assert host.http("GET", "/items").status == 404  # routes live under /api


def test_keys_by_auth_level(host):
    assert host.http("GET", "/api/items").status == 401
    assert host.http("GET", "/api/items", headers={"x-functions-key": "wrong"}).status == 401
    assert host.http("GET", "/api/items?code=fk").status == 200
    assert host.http("GET", "/api/items", headers={"X-Functions-Key": "mk"}).status == 200  # the master key too
    assert host.http("GET", "/api/admin/thing", headers={"x-functions-key": "fk"}).status == 401
    assert host.http("GET", "/api/admin/thing", headers={"x-functions-key": "mk"}).status == 200


def test_an_exception_is_a_500_recorded(host):
    answer = host.http("GET", "/api/boom")
    assert answer.status == 500 and answer.body == b""
    assert host.invocations[-1]["function"] == "boom" and "kaput" in host.invocations[-1]["error"]


def test_the_same_over_a_loopback_port(host):
    base = host.serve_http()
    assert base.startswith("http://127.0.0.1:")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"{base}/api/items", data=b"{}", method="POST", headers={"x-functions-key": "fk"})
    with opener.open(request) as response:
        assert response.status == 200 and json.loads(response.read())["method"] == "POST"
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(f"{base}/api/items")
    assert refused.value.code == 401


def test_the_app_health_route_is_anonymous():
    import function_app

    h = LocalFunctionsHost(function_app.app, "UseDevelopmentStorage=true")
    try:
        answer = h.http("GET", "/api/health")
        assert answer.status == 200 and answer.json()["status"] == "ok"
        assert h.http("GET", "/api/restores").status == 401  # the restore API needs the function key
    finally:
        h.close()
