"""Helpers for using local Azure from tests, the demo and benchmarks: a static credential (no
real Azure credential is ever constructed), SDK client construction, and the admin API."""

from __future__ import annotations

import contextlib
import json
import re
import ssl
import time
import urllib.request
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class StaticCredential:
    """A TokenCredential that hands out a fixed bearer token. Local only: the emulator accepts any
    bearer token, and nothing here reaches an identity endpoint."""

    def __init__(self, token: str = "local-emulator-token"):
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any):
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None):
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token, int(time.time()) + 3600)


class LocalAzure:
    """A running emulator, reached at ``base_url`` over HTTPS trusted through ``ca_path``."""

    def __init__(self, base_url: str, ca_path: str):
        self.base_url = base_url.rstrip("/")
        self.ca_path = ca_path
        self.credential = StaticCredential()
        self._ssl = ssl.create_default_context(cafile=ca_path)

    def client(self, client_cls: type[T], subscription_id: str | None = None, *, credential: Any = None,
               **kwargs: Any) -> T:
        """An SDK client of local Azure; ``credential``: another principal's (``StaticCredential(token)``)."""
        kwargs.setdefault("base_url", self.base_url)
        kwargs.setdefault("connection_verify", self.ca_path)
        kwargs.setdefault("credential_scopes", ["https://management.azure.com/.default"])
        credential = credential or self.credential
        if subscription_id is None:
            return client_cls(credential, **kwargs)
        return client_cls(credential, subscription_id, **kwargs)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base_url}/_emulator/{path.lstrip('/')}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=120) as resp:  # noqa: S310 (loopback)
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"admin {method} {path} → {exc.code}: {exc.read().decode(errors='replace')}") from None
        return json.loads(raw) if raw else None

    # Shorthands for the admin API.
    def reset(self) -> None:
        self.admin("POST", "reset")

    def settings(self, **values: Any) -> dict:
        return self.admin("PATCH", "settings", values)

    def seed(self, **spec: Any) -> dict:
        return self.admin("POST", "seed", spec)

    def faults(self, rules: list[dict], seed: int | None = None) -> dict:
        return self.admin("PUT", "faults", {"rules": rules, "seed": seed})

    def vm_agent_fault(self, vm: str, *, count: int | None = None, probability: float | None = None) -> dict:
        """VMs whose agent never reports Ready: ``vm`` is a VM name prefix ("drill-" matches every VM whose
        name starts so) or a VM's full resource id. Decided when a VM boots (its create, start or restart
        ends): every matching boot by default, else the next ``count`` of them or each with ``probability``.
        Added to the fault rules already set; returns them all (``az.faults([])`` clears them)."""
        if vm.lower().startswith("/subscriptions/"):
            path = "^" + re.escape(vm.rstrip("/")) + "$"
        else:
            path = "/virtualMachines/" + re.escape(vm) + "[^/]*$"
        rule: dict[str, Any] = {"kind": "vm_agent_not_ready", "path": path}
        if count is None and probability is None:
            probability = 1.0
        if count is not None:
            rule["count"] = count
        if probability is not None:
            rule["probability"] = probability
        return self.admin("POST", "faults", rule)

    def role_assignments(self, assignments: list[dict]) -> list[dict]:
        """Replace the role assignments: each ``{principal, scope, actions, notActions?, role?}``, the principal
        being the bearer token its client presents (``StaticCredential(token)``). A principal with none may do
        anything; ``[]`` (or a reset) makes every caller unrestricted again."""
        return self.admin("PUT", "roleAssignments", {"value": assignments})["value"]

    def calls(self, since: int = 0) -> list[dict]:
        return self.admin("GET", f"calls?since={since}")["value"]

    def advance(self, seconds: float) -> dict:
        return self.admin("POST", "clock", {"advance_seconds": seconds})

    # Event Grid custom topics: what their publish endpoints accepted, delivered to event subscriptions.
    def topic_deliveries(self) -> dict:
        """``{pending, delivered, failed, notDelivered, eventSubscriptions: {id: counts}, dropped: [...]}``."""
        return self.admin("GET", "eventgrid/deliveries")

    def wait_for_topic_deliveries(self, timeout: float = 10.0) -> dict:
        """Returns (the counts above) once every event published so far is delivered or dropped after its
        retries; TimeoutError if deliveries are still going after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:  # in steps well inside admin()'s own HTTP timeout
            step = max(0.0, min(60.0, deadline - time.monotonic()))
            out = self.admin("POST", "eventgrid/deliveries/wait", {"timeout_seconds": step})
            if out["idle"]:
                return out
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Event Grid deliveries still pending after {timeout} s: {out['pending']}")


@contextlib.contextmanager
def in_process(speed: float = 1.0, seed: int | None = None) -> Iterator[tuple[LocalAzure, Any]]:
    """Start the emulator in this process on a free port; yields (LocalAzure, Emulator)."""
    from .core.app import Emulator
    from .core.server import EmulatorServer

    server = EmulatorServer(Emulator(speed=speed, seed=seed)).start()
    try:
        yield LocalAzure(server.base_url, server.ca_path), server.emulator
    finally:
        server.stop()
