"""The restore HTTP API as the CLI calls it (shared/restore/api.py, openapi.json): POST a request, then
follow its ``Location`` until the restore ends. Errors are ``application/problem+json``; each field the
API names is told as the CLI option that sets it.

Credentials: the function key (``x-functions-key``), and, behind App Service authentication, a bearer
token for the app's scope from the CLI's credential. The local Functions host has no App Service
authentication in front: there ``X-MS-CLIENT-PRINCIPAL`` is sent as given (in Azure, App Service drops
a client's own copy of that header, so it grants nothing there).

``requests`` with ``trust_env`` off: no proxy or netrc from the environment, and ``REQUESTS_CA_BUNDLE``
cannot override the CA bundle chosen here (``--ca-bundle``, else the system's trust via certifi).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

from .context import LOOPBACK, CliError

TERMINAL = ("succeeded", "failed", "cancelled")
# Where following stops: the end, or a file recovery or export made and ready to use (until done or its expiry).
STOPS = TERMINAL + ("ready",)
# The API's field names → the CLI's options (so a problem names what the operator typed).
OPTIONS = {"vm": "VM_ID", "recovery_point": "POINT_ID", "target.type": "--target-type",
           "target.resource_group": "--target-resource-group", "target.subnet": "--subnet", "target.vm_name": "--vm-name",
           "target.vm_size": "--vm-size", "target.vm": "--target-vm",
           "target.staging_storage_account": "--staging-storage-account", "Idempotency-Key": "--idempotency-key",
           "X-MS-CLIENT-PRINCIPAL": "--scope / --principal", "X-MS-CLIENT-PRINCIPAL.roles": "--scope / --principal",
           "body": "the request"}


def base_url(value: str) -> str:
    """The app's URL (``https://<app>.azurewebsites.net``; a trailing ``/api`` is allowed): https, or
    http for a loopback host only (a function key must not cross a network in the clear)."""
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise CliError(f"--api: {value!r} is not an http(s) URL", "--api")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise CliError(f"--api: {value!r} must be https (plain http only for a loopback host)", "--api")
    if parts.query or parts.fragment:
        raise CliError(f"--api: {value!r} must not carry a query or fragment", "--api")
    return url[: -len("/api")] if url.endswith("/api") else url


def problem_error(status: int, body: Any, url: str, options: dict[str, str] | None = None) -> CliError:
    """A problem+json answer (or a bare status) as an exit-1 error naming the options at fault (``options``: the
    command's own fields → options, else the restore command's)."""
    options = OPTIONS if options is None else options
    if not isinstance(body, dict) or "title" not in body:
        if status == 401:
            return CliError(f"HTTP 401 from {url}: the function key was refused or missing (--key / VMKEEPER_API_KEY)",
                            "--key", status=401)
        return CliError(f"HTTP {status} from {url}", None, status=status)
    errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
    named = [{"field": e.get("field"), "option": options.get(str(e.get("field")), e.get("field")),
              "detail": e.get("detail")} for e in errors]
    lines = [f"{body.get('title')} (HTTP {body.get('status', status)}): {body.get('detail', '')}"]
    lines += [f"  {n['option']}: {n['detail']}" for n in named]
    return CliError("\n".join(lines), named[0]["option"] if named else None, status=body.get("status", status),
                    problem=body)


class RestoreClient:
    """The restore API's client; ``path``, ``options`` and ``what`` make it another asynchronous API's of the app
    (the failover API: /api/failovers, its fields' options)."""

    def __init__(self, url: str, *, key: str | None = None, token: Callable[[], str] | None = None,
                 principal: str | None = None, ca_bundle: str | None = None, timeout: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep, path: str = "/api/restores",
                 options: dict[str, str] | None = None, what: str = "restore"):
        import requests

        self.url, self.timeout, self.sleep = base_url(url), timeout, sleep
        self.path, self.options, self.what = path, options, what
        self.key, self.token, self.principal = key, token, principal
        self.session = requests.Session()
        self.session.trust_env = False  # else REQUESTS_CA_BUNDLE and proxies from the environment win
        self.session.verify = ca_bundle or True

    def headers(self) -> dict[str, str]:
        h = {"Accept": "application/json"}
        if self.key:
            h["x-functions-key"] = self.key
        if self.token is not None:
            h["Authorization"] = f"Bearer {self.token()}"
        if self.principal:
            h["X-MS-CLIENT-PRINCIPAL"] = self.principal
        return h

    def _json(self, answer: Any) -> Any:
        try:
            return answer.json()
        except ValueError:
            return None

    def create(self, body: dict[str, Any], idempotency_key: str | None = None) -> tuple[int, dict[str, Any], str | None]:
        """POST /api/restores: (status, body, Location). A key makes a retried POST the same restore."""
        url = f"{self.url}{self.path}"
        headers = {**self.headers(), "Content-Type": "application/json",
                   "Idempotency-Key": idempotency_key or f"vmkeeper-cli-{uuid.uuid4()}"}
        answer = self.session.post(url, json=body, headers=headers, timeout=self.timeout)
        doc = self._json(answer)
        if answer.status_code not in (200, 202) or not isinstance(doc, dict):
            raise problem_error(answer.status_code, doc, url, self.options)
        location = answer.headers.get("Location")
        return answer.status_code, doc, urljoin(self.url + "/", location) if location else None

    def end(self, restore_id: str) -> tuple[int, dict[str, Any], str | None]:
        """DELETE {path}/{id}: cancel a restore, or end a file recovery or export (202 + Location while it ends)."""
        url = f"{self.url}{self.path}/{restore_id}"
        answer = self.session.delete(url, headers=self.headers(), timeout=self.timeout)
        doc = self._json(answer)
        if answer.status_code not in (200, 202) or not isinstance(doc, dict):
            raise problem_error(answer.status_code, doc, url, self.options)
        location = answer.headers.get("Location")
        return answer.status_code, doc, urljoin(self.url + "/", location) if location else None

    def take_access(self, restore_id: str) -> dict[str, Any]:
        """POST {path}/{id}/access: an export's read SAS, handed once (the caller shows it; nobody keeps it)."""
        url = f"{self.url}{self.path}/{restore_id}/access"
        answer = self.session.post(url, headers=self.headers(), timeout=self.timeout)
        doc = self._json(answer)
        if answer.status_code != 200 or not isinstance(doc, dict):
            raise problem_error(answer.status_code, doc, url, self.options)
        return doc

    def location_of(self, restore_id: str) -> str:
        return f"{self.url}{self.path}/{restore_id}"

    def recent(self, top: int = 20) -> dict[str, Any]:
        """GET {path}?top=N: the newest first (``value``; ``nextLink`` when there are more)."""
        url = f"{self.url}{self.path}"
        answer = self.session.get(url, params={"top": top}, headers=self.headers(), timeout=self.timeout)
        doc = self._json(answer)
        if answer.status_code != 200 or not isinstance(doc, dict):
            raise problem_error(answer.status_code, doc, url, self.options)
        return doc

    def get(self, url: str) -> tuple[dict[str, Any], float | None]:
        answer = self.session.get(url, headers=self.headers(), timeout=self.timeout)
        doc = self._json(answer)
        if answer.status_code != 200 or not isinstance(doc, dict):
            raise problem_error(answer.status_code, doc, url, self.options)
        retry = answer.headers.get("Retry-After")
        return doc, float(retry) if retry and retry.isdigit() else None

    def follow(self, location: str, on_update: Callable[[dict[str, Any]], None], *, interval: float | None = None,
               wait: float = 3600.0) -> dict[str, Any]:
        """GET ``location`` until the restore ends or is ready (Retry-After apart, or every ``interval`` seconds)."""
        deadline = time.monotonic() + wait
        while True:
            record, retry = self.get(location)
            on_update(record)
            if record.get("state") in STOPS:
                return record
            pause = interval if interval is not None else (retry or 2.0)
            if time.monotonic() + pause > deadline:
                raise CliError(f"--wait: {self.what} {record.get('id')} is still {record.get('state')} after {wait:g} s; "
                               f"follow it at {location}", "--wait", **{self.what: record})
            self.sleep(pause)
