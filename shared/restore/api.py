"""The restore API over HTTP, free of any trigger type: functions/restore.py hands each request in as
headers, route values, query and body, and sends back the ``Answer``.

Order of checks, each refusing before anything is read or written: the caller (401), their role (403),
the body (400, naming the field), the target scopes (403), then Azure as it is (400/409). Errors are
``application/problem+json`` (RFC 9457) with ``errors: [{field, detail}]``. An accepted restore is
``202`` with ``Location`` and ``Retry-After`` (the asynchronous request-reply pattern).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import access
from ..access import BadId, NotAuthenticated, Principal, parse_id

log = logging.getLogger("vmkeeper.restore.api")
PROBLEM = "application/problem+json"
JSON = "application/json"
RETRY_AFTER = "2"  # seconds: a restore's steps take seconds to minutes
RESTORE_ID = re.compile(r"^[0-9a-f]{16}$")
TOP = re.compile(r"[0-9]{1,3}")  # ASCII digits: str.isdigit takes '²', which int() then refuses
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
MAX_BODY = 64 * 1024
OPENAPI = Path(__file__).with_name("openapi.json")


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON

    def text(self) -> str:
        if isinstance(self.body, str) and self.content_type.startswith("text/"):
            return self.body  # a page, as it is
        return "" if self.body is None else json.dumps(self.body)


def problem(status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None,
            instance: str | None = None, headers: dict[str, str] | None = None) -> Answer:
    kind = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    body: dict[str, Any] = {"type": f"urn:vmkeeper:problem:{kind}", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    if instance:
        body["instance"] = instance
    return Answer(status, body, headers or {}, PROBLEM)


def _field(name: str, detail: str) -> list[dict[str, str]]:
    return [{"field": name, "detail": detail}]


class RestoreApi:
    def __init__(self, restores: Callable[[], Any]):
        self._restores = restores  # built on first use (cold start), by shared/wiring.py

    # --- gatekeeping ---------------------------------------------------------------------------------
    @staticmethod
    def authorize(headers: Mapping[str, str], operator: bool) -> Principal | Answer:
        try:
            who = access.principal(headers.get("x-ms-client-principal"))
        except NotAuthenticated as exc:
            return problem(401, "Not authenticated", str(exc), _field("X-MS-CLIENT-PRINCIPAL", str(exc)),
                           headers={"WWW-Authenticate": 'Bearer realm="vmkeeper"'})
        if not (who.can_restore() if operator else who.can_read()):
            role = access.OPERATOR if operator else f"{access.READER} or {access.OPERATOR}"
            return problem(403, "Forbidden", f"this needs the app role {role}",
                           _field("X-MS-CLIENT-PRINCIPAL.roles", f"{role} required"))
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
            log.exception("restore API")
            return problem(500, "Internal error", "the request could not be handled; nothing was created")

    # --- GET /api/vms/{subscription}/{resourceGroup}/{vm}/recovery-points ----------------------------
    def recovery_points(self, headers: Mapping[str, str], subscription: str, group: str, vm: str) -> Answer:
        def work(who: Principal) -> Answer:
            try:
                vm_id = parse_id(f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/"
                                 f"virtualMachines/{vm}", "vm")
            except BadId as exc:
                return problem(400, "Invalid VM", str(exc), _field("vm", str(exc)))
            restores = self._restores()
            if not restores.in_fleet(vm_id):
                return problem(403, "Out of scope", f"subscription {vm_id.subscription} is not one vmkeeper protects",
                               _field("subscription", "not in VMKEEPER_SUBSCRIPTIONS"))
            return Answer(200, restores.catalogue(vm_id))
        return self._guarded(False, headers, work)

    # --- POST /api/restores -------------------------------------------------------------------------
    def create(self, headers: Mapping[str, str], body: bytes) -> Answer:
        from .plan import Conflict
        from .request import BadRequest, parse
        from .service import KeyReused, OutOfScope, body_hash

        def work(who: Principal) -> Answer:
            # As given (the host's mapping is case-insensitive, a plain dict is not): lower-cased like _guarded's.
            key = next((v for k, v in headers.items() if k.lower() == "idempotency-key"), None)
            if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
                return problem(400, "Invalid header", "Idempotency-Key: 1-255 printable ASCII characters",
                               _field("Idempotency-Key", "1-255 printable ASCII characters"))
            if len(body or b"") > MAX_BODY:
                return problem(413, "Body too large", f"at most {MAX_BODY} bytes", _field("body", "too large"))
            try:
                doc = json.loads(body or b"")
            except (ValueError, UnicodeDecodeError, RecursionError):  # nesting deeper than the stack
                return problem(400, "Invalid body", "the body is not JSON", _field("body", "must be a JSON object"))
            try:
                request = parse(doc)
            except BadRequest as exc:
                return problem(400, "Invalid body", str(exc)[:2000], [p.to_json() for p in exc.problems])
            restores = self._restores()
            if not restores.in_fleet(request.vm):
                return problem(403, "Out of scope", f"subscription {request.vm.subscription} is not one vmkeeper "
                               "protects", _field("vm", "not in VMKEEPER_SUBSCRIPTIONS"))
            outside = [(name, p) for name, p in request.target_ids() if not restores.scopes.allows(p)]
            if outside:
                return problem(403, "Target out of scope", "restores may only write to the allowed subscriptions and "
                               "resource groups (VMKEEPER_RESTORE_SCOPES)",
                               [{"field": name, "detail": f"{p.group_id} is not in the allow-list"} for name, p in outside])
            staging = restores.settings.staging_accounts
            ungranted = [(name, p) for name, p in request.target_ids()
                         if p.kind == "storage_account" and staging is not None and p.id.lower() not in staging]
            if ungranted:  # Azure Backup would refuse it mid-restore (403): refused now, with what to do
                return problem(403, "Staging account not granted", "a vault restore stages through a storage account "
                               "vmkeeper's staging role is assigned on (infra parameter restoreStagingAccountIds, "
                               "VMKEEPER_RESTORE_STAGING_ACCOUNTS)",
                               [{"field": name, "detail": f"{p.id} is not one of VMKEEPER_RESTORE_STAGING_ACCOUNTS"}
                                for name, p in ungranted])
            try:
                if request.dry_run:
                    from .service import restore_id_for

                    planned = restores.prepare(restore_id_for(who, key or "dry-run:" + body_hash(doc)), request,
                                               restores.scopes)
                    return Answer(200, {"dry_run": True, "valid": True, "request": request.to_json(),
                                        "plan": planned.to_json()})
                record, new = restores.submit(who, request, body_hash(doc), key, restores.scopes)
            except OutOfScope as exc:
                return problem(403, "Target out of scope", "restores may only write to the allowed subscriptions and "
                               f"resource groups (VMKEEPER_RESTORE_SCOPES): {exc}"[:2000], [p.to_json() for p in exc.problems])
            except BadRequest as exc:
                return problem(400, "Invalid restore", str(exc)[:2000], [p.to_json() for p in exc.problems])
            except Conflict as exc:
                return problem(409, "Conflict", str(exc), _field(exc.field, exc.detail))
            except KeyReused:
                return problem(422, "Idempotency-Key reused", "this Idempotency-Key was used with another body",
                               _field("Idempotency-Key", "already used with another body"))
            location = f"/api/restores/{record.id}"
            return Answer(202, record.to_json(), {"Location": location, "Retry-After": RETRY_AFTER,
                                                  **({} if new else {"Idempotent-Replayed": "true"})})
        return self._guarded(True, headers, work)

    # --- one restore by id: GET, DELETE, POST …/access, POST …/script --------------------------------------
    def _one(self, write: bool, headers: Mapping[str, str], restore_id: str, act: Any) -> Answer:
        """``act(who)`` on restore ``restore_id``, behind the role check (``write``: Restore.Operator): a malformed id
        is 400, an unknown one 404, a state the action does not fit 409."""
        from .service import NotFound, StateConflict

        def work(who: Principal) -> Answer:
            if not RESTORE_ID.fullmatch(restore_id or ""):
                return problem(400, "Invalid id", "a restore id is 16 hex digits", _field("id", "16 hex digits"))
            try:
                return act(who)
            except NotFound:
                return problem(404, "Not found", f"no restore {restore_id}", instance=f"/api/restores/{restore_id}")
            except StateConflict as exc:
                return problem(409, "Conflict", str(exc), _field("state", str(exc)))
        return self._guarded(write, headers, work)

    def get(self, headers: Mapping[str, str], restore_id: str) -> Answer:
        from .records import TERMINAL

        def act(who: Principal) -> Answer:
            record = self._restores().get(restore_id)
            return Answer(200, record.to_json(), {} if record.state in TERMINAL else {"Retry-After": RETRY_AFTER})
        return self._one(False, headers, restore_id, act)

    def cancel(self, headers: Mapping[str, str], restore_id: str) -> Answer:
        def act(who: Principal) -> Answer:
            record = self._restores().cancel(restore_id)
            if record.state == "ending":  # a file recovery or an export being undone: follow it at its Location
                return Answer(202, record.to_json(), {"Location": f"/api/restores/{record.id}",
                                                      "Retry-After": RETRY_AFTER})
            return Answer(200, record.to_json())
        return self._one(True, headers, restore_id, act)

    def access(self, headers: Mapping[str, str], restore_id: str) -> Answer:
        """An export's read SAS, to the Restore.Operator who asked for the export, once; ``no-store`` (the answer
        is the only copy: vmkeeper neither stores nor logs it)."""
        from .service import NotYours

        def act(who: Principal) -> Answer:
            try:
                taken = self._restores().take_access(who, restore_id)
            except NotYours:
                return problem(403, "Forbidden", "an export's SAS is handed to the caller who asked for the export",
                               _field("X-MS-CLIENT-PRINCIPAL", "not the principal of this export"))
            return Answer(200, taken, {"Cache-Control": "no-store", "Pragma": "no-cache"})
        return self._one(True, headers, restore_id, act)

    def script(self, headers: Mapping[str, str], restore_id: str) -> Answer:
        """The mount script(s) of a vault file recovery's session, fetched from Azure Backup for this Restore.Operator
        now; ``no-store`` (the answer is the only copy: vmkeeper neither stores nor logs it)."""
        def act(who: Principal) -> Answer:
            return Answer(200, self._restores().scripts(who, restore_id), {"Cache-Control": "no-store",
                                                                           "Pragma": "no-cache"})
        return self._one(True, headers, restore_id, act)

    # --- GET /api/restores ----------------------------------------------------------------------------
    def recent(self, headers: Mapping[str, str], query: Mapping[str, str]) -> Answer:
        def work(who: Principal) -> Answer:
            top_text, token = query.get("top", "20"), query.get("skiptoken")
            if not TOP.fullmatch(top_text) or not 1 <= int(top_text) <= 100:
                return problem(400, "Invalid query", "top: 1-100", _field("top", "a whole number from 1 to 100"))
            top, start = int(top_text), 0
            if token is not None:
                try:
                    start = int(base64.urlsafe_b64decode(token.encode() + b"==").decode())
                except (ValueError, UnicodeDecodeError):
                    start = -1
                if start < 0:
                    return problem(400, "Invalid query", "skiptoken: use the nextLink as given",
                                   _field("skiptoken", "not a token this API gave"))
            records = self._restores().recent()
            page = records[start:start + top]
            out: dict[str, Any] = {"value": [r.to_json() for r in page]}
            if start + top < len(records):
                nxt = base64.urlsafe_b64encode(str(start + top).encode()).decode().rstrip("=")
                out["nextLink"] = f"/api/restores?top={top}&skiptoken={nxt}"
            return Answer(200, out)
        return self._guarded(False, headers, work)

    # --- GET /api/openapi.json ------------------------------------------------------------------------
    @staticmethod
    def openapi() -> Answer:
        return Answer(200, json.loads(OPENAPI.read_text()))
