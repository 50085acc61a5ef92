"""Real responses checked against shared/restore/openapi.json: the operation found by method and path,
the status declared, the content type and the body valid against its schema, declared headers present. And
real requests: a body the API took (2xx) valid against the operation's request schema (restore targets and
failover actions are oneOf variants: what the API takes, the document must say)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

DOC = json.loads((Path(__file__).resolve().parents[2] / "shared" / "restore" / "openapi.json").read_text())
PREFIX = "/api"


def operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """(the doc's path template, its operation) for a concrete request path."""
    bare = path.split("?", 1)[0][len(PREFIX):]
    for template, item in DOC["paths"].items():
        pattern = "^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, bare) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"{method} {path}: not in the OpenAPI document")


def check(method: str, path: str, status: int, headers: Any, body: bytes, request: bytes | None = None) -> None:
    """The answer; with ``request``, the body sent too, when the API took it (2xx) and the operation takes one."""
    template, op = operation(method, path)
    if request and 200 <= status < 300 and "requestBody" in op:
        check_request(method, path, request)
    spec = op["responses"].get(str(status))
    assert spec is not None, f"{method} {template}: status {status} is not declared"
    spec = _resolve(spec)
    for name, header in (spec.get("headers") or {}).items():
        if header.get("required"):
            assert _header(headers, name), f"{method} {template} {status}: header {name} missing"
    content = spec.get("content")
    if not content:
        return
    kind = (_header(headers, "content-type") or "").split(";")[0].strip()
    assert kind in content, f"{method} {template} {status}: content type {kind!r}, declared {sorted(content)}"
    schema = {**content[kind]["schema"], "components": DOC["components"]}  # so "#/components/…" resolves
    Draft202012Validator(schema).validate(json.loads(body))


def check_request(method: str, path: str, body: bytes) -> None:
    """A request body the API took, valid against the operation's documented request schema."""
    template, op = operation(method, path)
    content = (op.get("requestBody") or {}).get("content") or {}
    assert "application/json" in content, f"{method} {template}: no JSON request body documented"
    schema = {**content["application/json"]["schema"], "components": DOC["components"]}
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(json.loads(body))]
    assert not errors, f"{method} {template}: a body the API took is not what the document says: {errors}"


def _resolve(spec: dict[str, Any]) -> dict[str, Any]:
    ref = spec.get("$ref")
    if not ref:
        return spec
    node: Any = DOC
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def _header(headers: Any, name: str) -> str | None:
    for key, value in dict(headers).items():
        if key.lower() == name.lower():
            return value
    return None
