"""The restore API's refusals that need no backing service: 401, 403, 400, 413 as problem+json,
each valid against the OpenAPI document's Problem schema, and the service never built for them."""

from __future__ import annotations

import base64
import json

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from shared import access
from shared.restore.api import MAX_BODY, OPENAPI, PROBLEM, Answer, RestoreApi, problem

OID = "11111111-2222-3333-4444-555555555555"
READER = {"X-MS-CLIENT-PRINCIPAL": access.encode_principal(OID, [access.READER])}
OPERATOR = {"X-MS-CLIENT-PRINCIPAL": access.encode_principal(OID, [access.OPERATOR])}
NOBODY = {"X-MS-CLIENT-PRINCIPAL": access.encode_principal(OID, [])}
SUB = "6d4a5a5c-2f4e-4c5e-9f5b-3c3f2d1e0a9b"

DOC = json.loads(OPENAPI.read_text())
REGISTRY = Registry().with_resource("urn:vmkeeper:openapi",
                                    Resource.from_contents(DOC, default_specification=DRAFT202012))
PROBLEM_SCHEMA = Draft202012Validator({"$ref": "urn:vmkeeper:openapi#/components/schemas/Problem"}, registry=REGISTRY)


def never() -> None:
    pytest.fail("the restores service was built for a request refused before it")


API = RestoreApi(never)


def assert_problem(answer: Answer, status: int, field: str | None = None) -> dict:
    assert answer.status == status and answer.content_type == PROBLEM
    body = json.loads(answer.text())
    PROBLEM_SCHEMA.validate(body)
    assert body["status"] == status and body["type"].startswith("urn:vmkeeper:problem:")
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body


def test_problem_shape():
    answer = problem(409, "Target out of scope!", "nope", [{"field": "vm", "detail": "x"}], instance="/api/restores/1",
                     headers={"Retry-After": "2"})
    assert answer.body == {"type": "urn:vmkeeper:problem:target-out-of-scope", "title": "Target out of scope!",
                           "status": 409, "detail": "nope", "errors": [{"field": "vm", "detail": "x"}],
                           "instance": "/api/restores/1"}
    assert answer.headers == {"Retry-After": "2"}
    assert_problem(answer, 409, "vm")
    assert set(problem(400, "Bad", "d").body) == {"type", "title", "status", "detail"}


def test_the_problem_schema_is_strict_enough_to_fail():
    assert not PROBLEM_SCHEMA.is_valid({"type": "t", "title": "t", "status": 200, "detail": "d"})
    assert not PROBLEM_SCHEMA.is_valid({"type": "t", "title": "t", "status": 400, "detail": "d",
                                        "errors": [{"field": "x", "detail": "y", "extra": 1}]})
    assert not PROBLEM_SCHEMA.is_valid({"title": "t", "status": 400, "detail": "d"})


CALLS = {
    "recovery_points": lambda h: API.recovery_points(h, SUB, "rg", "web-01"),
    "create": lambda h: API.create(h, b"{}"),
    "get": lambda h: API.get(h, "0123456789abcdef"),
    "cancel": lambda h: API.cancel(h, "0123456789abcdef"),
    "recent": lambda h: API.recent(h, {}),
}


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("headers", [{}, {"X-MS-CLIENT-PRINCIPAL": "garbage!"},
                                     {"x-ms-client-principal": access.encode_principal("", [access.OPERATOR])},
                                     {"X-MS-CLIENT-PRINCIPAL": base64.b64encode(b"[" * 5000).decode()},
                                     # valid JSON ("\\ud800"), no text: hashing it for a restore id answered 500
                                     {"X-MS-CLIENT-PRINCIPAL": access.encode_principal("\ud800", [access.OPERATOR])}],
                         ids=["absent", "garbage", "no-object-id", "deeply-nested", "lone-surrogate"])
def test_no_principal_is_401_with_www_authenticate(call, headers):
    answer = CALLS[call](headers)
    assert_problem(answer, 401, "X-MS-CLIENT-PRINCIPAL")
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("call", ["create", "cancel"])
@pytest.mark.parametrize("headers", [READER, NOBODY], ids=["reader", "no-role"])
def test_writing_needs_the_operator_role(call, headers):
    body = assert_problem(CALLS[call](headers), 403, "X-MS-CLIENT-PRINCIPAL.roles")
    assert access.OPERATOR in body["detail"]


@pytest.mark.parametrize("call", ["recovery_points", "get", "recent"])
def test_reading_needs_a_role(call):
    assert_problem(CALLS[call](NOBODY), 403, "X-MS-CLIENT-PRINCIPAL.roles")


@pytest.mark.parametrize("key", ["", "a" * 256, "key with space", "clé", "tab\tkey", "line\nkey"])
def test_a_bad_idempotency_key(key):
    assert_problem(API.create(OPERATOR | {"Idempotency-Key": key}, b"{}"), 400, "Idempotency-Key")


@pytest.mark.parametrize("body", [b"", b"not json", b"{", b"\xff\xfe\x00", b'{"vm": }'])
def test_a_body_that_is_not_json(body):
    assert_problem(API.create(OPERATOR, body), 400, "body")


@pytest.mark.parametrize("body", [b"[]", b'"x"', b"null", b"3"])
def test_a_json_body_that_is_no_object(body):
    assert_problem(API.create(OPERATOR, body), 400, "body")


def test_an_invalid_body_names_each_field():
    answer = API.create(OPERATOR, json.dumps({"vm": "x", "target": {"type": "disks"}, "extra": 1}).encode())
    body = assert_problem(answer, 400)
    assert {e["field"] for e in body["errors"]} == {"vm", "recovery_point", "extra"}


def test_an_oversized_body_is_413_before_it_is_read():
    body = b'{"vm": "' + b"a" * MAX_BODY + b'"}'
    assert_problem(API.create(OPERATOR | {"Idempotency-Key": "k-1"}, body), 413, "body")


@pytest.mark.parametrize("restore_id", ["", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", "../x",
                                        "0123456789abcdeg", "0123456789abcdef\n"])
@pytest.mark.parametrize("call", ["get", "cancel"])
def test_a_bad_restore_id(call, restore_id):
    method = getattr(API, call)
    assert_problem(method(OPERATOR, restore_id), 400, "id")


@pytest.mark.parametrize("query", [{"top": "0"}, {"top": "101"}, {"top": "x"}, {"top": "-1"}, {"top": "²"},
                                   {"top": "٣"}, {"top": " 5"},  # str.isdigit took '²' and '٣'

                                   {"skiptoken": "!!!"}, {"skiptoken": "LTE"}])  # LTE: base64 of "-1"
def test_a_bad_listing_query(query):
    assert_problem(API.recent(READER, query), 400, next(iter(query)))


def test_a_bad_vm_in_the_route():
    assert_problem(API.recovery_points(READER, "not-a-guid", "rg", "web-01"), 400, "vm")
    assert_problem(API.recovery_points(READER, SUB, "rg", "web-01/../x"), 400, "vm")


def test_the_openapi_document_is_served():
    answer = RestoreApi.openapi()
    assert answer.status == 200 and answer.body["components"]["schemas"]["Problem"] == DOC["components"]["schemas"]["Problem"]


def test_a_deeply_nested_body_is_400_not_500():
    # 60000 '[' fit under MAX_BODY; json.loads raised RecursionError, answered 500 "Internal error".
    assert_problem(API.create(OPERATOR, b"[" * 60000), 400, "body")
