"""The OpenAPI document (shared/restore/openapi.json) against the code it describes: a valid OpenAPI 3.1 document;
every example valid against its schema and, for requests, accepted by the API's own parsers; the restore targets'
and failover actions' oneOf variants taking exactly the fields the parsers take; Entra ID as an oauth2 scheme and
X-MS-CLIENT-PRINCIPAL never something a client is asked to send."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from shared import access
from shared.failover import request as failover_request
from shared.restore import request as restore_request
from shared.restore.api import OPENAPI

DOC = json.loads(OPENAPI.read_text())
SCHEMAS = DOC["components"]["schemas"]
REGISTRY = Registry().with_resource("urn:vmkeeper:openapi", Resource.from_contents(DOC, default_specification=DRAFT202012))
METHODS = ("get", "put", "post", "patch", "delete")


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A media type's schema, its "#/components/…" references resolved in the document."""
    return Draft202012Validator({**_rebased(schema)}, registry=REGISTRY)


def _rebased(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (f"urn:vmkeeper:openapi{v}" if k == "$ref" and v.startswith("#") else _rebased(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rebased(v) for v in node]
    return node


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in DOC["paths"].items() for m, op in item.items() if m in METHODS]


def examples(op: dict[str, Any]) -> list[tuple[str, dict[str, Any], Any]]:
    """(where, schema, value) of every example of the operation's request and responses."""
    out = []
    media = [("request", op.get("requestBody", {}).get("content", {}))]
    media += [(f"response {status}", r.get("content", {})) for status, r in op["responses"].items()]
    for where, content in media:
        for kind, m in content.items():
            for name, ex in (m.get("examples") or {}).items():
                out.append((f"{op['operationId']} {where} {kind} {name}", m["schema"], ex["value"]))
    return out


def request_examples(path: str) -> dict[str, Any]:
    return {n: e["value"] for n, e in
            DOC["paths"][path]["post"]["requestBody"]["content"]["application/json"]["examples"].items()}


def test_the_document_is_valid_openapi_3_1():
    assert DOC["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(DOC).validate()


def test_every_example_is_valid_against_its_schema():
    found = [e for _, _, op in operations() for e in examples(op)]
    assert len(found) >= 20  # every request, and the main answers
    for where, schema, value in found:
        errors = [e.message for e in validator(schema).iter_errors(value)]
        assert not errors, (where, errors)


def test_every_post_with_a_body_has_examples():
    for method, path, op in operations():
        if "requestBody" in op:
            assert op["requestBody"]["content"]["application/json"].get("examples"), f"{method} {path}"


def test_the_restore_examples_are_requests_the_api_takes_one_per_target_and_kind_of_point():
    seen = set()
    for name, body in request_examples("/restores").items():
        parsed = restore_request.parse(body)  # BadRequest names the field the document got wrong
        assert parsed.target_type == body["target"]["type"], name
        seen.add(("vault" if parsed.source_kind == "vault" else "disk", parsed.target_type))
    assert seen == set(restore_request.TARGET_FIELDS)


def test_the_failover_examples_are_requests_the_api_takes_one_per_action():
    actions = {failover_request.parse(body).action for body in request_examples("/failovers").values()}
    assert actions == set(failover_request.ACTIONS)


def _variants(name: str) -> dict[str, dict[str, Any]]:
    """A oneOf schema's variants by discriminator value."""
    schema = SCHEMAS[name]
    mapping = schema["discriminator"]["mapping"]
    assert sorted({v for v in mapping.values()}) == sorted(v["$ref"] for v in schema["oneOf"])
    return {value: SCHEMAS[ref.rsplit("/", 1)[-1]] for value, ref in mapping.items()}


def test_each_restore_target_variant_takes_the_fields_the_parser_takes():
    variants = _variants("RestoreTarget")
    assert SCHEMAS["RestoreTarget"]["discriminator"]["propertyName"] == "type"
    assert set(variants) == set(restore_request.TARGET_TYPES)
    for kind, schema in variants.items():
        per_family = [fields for (_, t), fields in restore_request.TARGET_FIELDS.items() if t == kind]
        taken = set().union(*(required | optional for required, optional in per_family))
        always = set.intersection(*(set(required) for required, _ in per_family))
        assert schema["properties"]["type"] == {"type": "string", "const": kind}
        assert schema["additionalProperties"] is False
        assert set(schema["properties"]) - {"type"} == taken, kind
        assert set(schema["required"]) - {"type"} == always, kind


def test_each_failover_variant_takes_the_fields_the_parser_takes_for_its_action():
    variants = _variants("FailoverRequest")
    assert SCHEMAS["FailoverRequest"]["discriminator"]["propertyName"] == "action"
    assert set(variants) == set(failover_request.ACTIONS)
    for action, schema in variants.items():
        own = {name for name, actions in failover_request.TAKES.items() if action in actions}
        assert set(schema["properties"]) == {"action", "plan", "vm", "dry_run"} | own, action
        assert action in schema["properties"]["action"].get("enum", [schema["properties"]["action"].get("const")])
        assert schema["additionalProperties"] is False


def test_entra_id_is_an_oauth2_scheme_and_the_principal_header_no_parameter():
    schemes = DOC["components"]["securitySchemes"]
    entra = schemes["entraId"]
    assert entra["type"] == "oauth2"
    flows = entra["flows"]
    assert set(flows) == {"authorizationCode", "clientCredentials"}
    for flow in flows.values():
        assert flow["tokenUrl"] == "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
        assert list(flow["scopes"]) == ["api://{client-id}/.default"]
    assert {(s["in"], s["name"]) for s in schemes.values() if s["type"] == "apiKey"} == {
        ("header", "x-functions-key"), ("query", "code")}
    for method, path, op in operations():
        names = {p["name"].lower() for p in op.get("parameters", [])}
        assert "x-ms-client-principal" not in names, f"{method} {path}"
    assert "X-MS-CLIENT-PRINCIPAL" in entra["description"] and "X-MS-CLIENT-PRINCIPAL" in DOC["info"]["description"]


@pytest.mark.parametrize("method,path,op", operations(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_operation_is_tagged_and_names_its_app_roles(method, path, op):
    assert op["tags"] and set(op["tags"]) <= {t["name"] for t in DOC["tags"]}
    if op.get("security") == []:
        assert "x-app-roles" not in op
        return
    roles = op["x-app-roles"]
    assert roles and set(roles) <= {access.READER, access.OPERATOR, access.FAILOVER}
    assert op["description"].startswith("App role: " + " or ".join(roles) + ".")


def test_the_server_is_a_url_template_with_the_app_name():
    server = DOC["servers"][0]
    assert server["url"] == "https://{app}.azurewebsites.net/api" and server["variables"]["app"]["default"]
