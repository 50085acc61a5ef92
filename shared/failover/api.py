"""The failover API over HTTP, next to the restore API and built as it is (shared/restore/api.py): functions/
failover.py hands each request in as headers, route values and body, and sends back the ``Answer``.

Order of checks, each refusing before anything is read or written: the caller (401), the app role (403:
``Failover.Operator`` for every action — an unplanned failover above all; no Restore role grants it), the body
(400, naming the field), then Azure as it is (the target found 400, the fleet and the allow-list 403, the state Site
Recovery allows 409). Errors are ``application/problem+json`` with ``errors: [{field, detail}]``. An accepted
failover is ``202`` with ``Location`` and ``Retry-After``; ``dry_run`` answers 200 with the boot order and what would
be sent, creating nothing.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from .. import access
from ..access import NotAuthenticated, Principal
from ..restore.api import IDEMPOTENCY_KEY, MAX_BODY, Answer, problem

log = logging.getLogger("vmkeeper.failover.api")
RETRY_AFTER = "5"  # seconds: Site Recovery's jobs take minutes
FAILOVER_ID = re.compile(r"^[0-9a-f]{16}$")


def _field(name: str, detail: str) -> list[dict[str, str]]:
    return [{"field": name, "detail": detail}]


class FailoverApi:
    def __init__(self, failovers: Callable[[], Any]):
        self._failovers = failovers  # built on first use (cold start), by shared/wiring.py

    @staticmethod
    def authorize(headers: Mapping[str, str], operator: bool) -> Principal | Answer:
        try:
            who = access.principal(headers.get("x-ms-client-principal"))
        except NotAuthenticated as exc:
            return problem(401, "Not authenticated", str(exc), _field("X-MS-CLIENT-PRINCIPAL", str(exc)),
                           headers={"WWW-Authenticate": 'Bearer realm="vmkeeper"'})
        if not (who.can_fail_over() if operator else who.can_read_failovers()):
            role = access.FAILOVER if operator else f"{access.READER}, {access.OPERATOR} or {access.FAILOVER}"
            detail = f"this needs the app role {role}" + (" (a Restore role does not grant it)" if operator else "")
            return problem(403, "Forbidden", detail, _field("X-MS-CLIENT-PRINCIPAL.roles", f"{role} required"))
        return who

    def _guarded(self, operator: bool, headers: Mapping[str, str], work: Callable[[Principal], Answer]) -> Answer:
        headers = {k.lower(): v for k, v in headers.items()}
        who = self.authorize(headers, operator)
        if isinstance(who, Answer):
            return who
        try:
            return work(who)
        except Exception as exc:  # noqa: BLE001  (an answer, never a trace)
            from azure.core.exceptions import AzureError

            if isinstance(exc, AzureError):
                log.warning("Azure refused or failed: %s", exc)
                return problem(502, "Azure error", f"Azure answered: {str(exc)[:500]}")
            log.exception("failover API")
            return problem(500, "Internal error", "the request could not be handled; nothing was created")

    # --- POST /api/failovers ----------------------------------------------------------------------
    def create(self, headers: Mapping[str, str], body: bytes) -> Answer:
        from ..restore.request import BadRequest
        from .request import parse
        from .service import KeyReused, Refused, body_hash

        def work(who: Principal) -> Answer:
            key = next((v for k, v in headers.items() if k.lower() == "idempotency-key"), None)
            if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
                return problem(400, "Invalid header", "Idempotency-Key: 1-255 printable ASCII characters",
                               _field("Idempotency-Key", "1-255 printable ASCII characters"))
            if len(body or b"") > MAX_BODY:
                return problem(413, "Body too large", f"at most {MAX_BODY} bytes", _field("body", "too large"))
            try:
                doc = json.loads(body or b"")
            except (ValueError, UnicodeDecodeError, RecursionError):
                return problem(400, "Invalid body", "the body is not JSON", _field("body", "must be a JSON object"))
            try:
                request = parse(doc)
            except BadRequest as exc:
                return problem(400, "Invalid body", str(exc)[:2000], [p.to_json() for p in exc.problems])
            failovers = self._failovers()
            if request.vm is not None and not failovers.in_fleet(request.vm):
                return problem(403, "Out of scope", f"subscription {request.vm.subscription} is not one vmkeeper "
                               "protects", _field("vm", "not in VMKEEPER_SUBSCRIPTIONS"))
            try:
                if request.dry_run:
                    prepared = failovers.prepare(request)
                    return Answer(200, {"dry_run": True, "valid": True, "request": request.to_json(),
                                        **_shown(prepared.to_json())})
                record, new = failovers.submit(who, request, body_hash(doc), key)
            except Refused as exc:
                return problem(exc.status, exc.title, str(exc)[:2000],
                               [{"field": f, "detail": d} for f, d in exc.problems])
            except KeyReused:
                return problem(422, "Idempotency-Key reused", "this Idempotency-Key was used with another body",
                               _field("Idempotency-Key", "already used with another body"))
            return Answer(202, record.to_json(), {"Location": f"/api/failovers/{record.id}", "Retry-After": RETRY_AFTER,
                                                  **({} if new else {"Idempotent-Replayed": "true"})})
        return self._guarded(True, headers, work)

    # --- GET /api/failovers/{id} --------------------------------------------------------------------
    def get(self, headers: Mapping[str, str], failover_id: str) -> Answer:
        from .records import TERMINAL
        from .service import NotFound

        def work(who: Principal) -> Answer:
            if not FAILOVER_ID.fullmatch(failover_id or ""):
                return problem(400, "Invalid id", "a failover id is 16 hex digits", _field("id", "16 hex digits"))
            try:
                record = self._failovers().get(failover_id)
            except NotFound:
                return problem(404, "Not found", f"no failover {failover_id}", instance=f"/api/failovers/{failover_id}")
            return Answer(200, record.to_json(), {} if record.state in TERMINAL else {"Retry-After": RETRY_AFTER})
        return self._guarded(False, headers, work)


def _shown(target: dict[str, Any]) -> dict[str, Any]:
    """A dry run's answer: the target, the operation and its input, the boot order, the groups written into."""
    return {"target": {k: target.get(k) for k in ("kind", "app", "plan", "plan_id", "item_id", "vm", "vault_id")},
            "operation": target["operation"], "direction": target["direction"], "input": target["input"],
            "order": target["order"], "writes": target["writes"]}
