"""The emulator as one object: state, clock, throttle, faults, events, call log, role assignments, and the request
pipeline every ARM call goes through. Transport-free: ``handle()`` takes a request and returns a
response, so the HTTPS server (server.py) is a thin shell around it."""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

from . import errors
from .calllog import CallLog
from .clock import Clock
from .events import EventBus, build_event
from .faults import KINDS, Faults
from .lro import Operation, Operations
from .rbac import RoleAssignments
from .routing import Request, Response
from .state import Store
from .throttle import Throttle, retry_after_header

log = logging.getLogger("emulator")

DEFAULT_LRO_SECONDS = 1.0
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@dataclass
class Outcome:
    """What the transport does: send ``response``, or reset the connection, after ``delay`` s."""

    response: Response
    reset: bool = False
    delay: float = 0.0


def subscription_of(params: dict[str, str]) -> str | None:
    """The subscription a request addresses: a path parameter, or the head of a scope."""
    if "subscriptionId" in params:
        return params["subscriptionId"]
    parts = [p for p in params.get("scope", "").split("/") if p]
    if len(parts) >= 2 and parts[0].lower() == "subscriptions":
        return parts[1]
    return None


class Emulator:
    def __init__(self, *, speed: float = 1.0, seed: int | None = None):
        from . import admin
        from .providers import load_providers

        providers = load_providers()
        self.lock = threading.RLock()
        self.clock = Clock(speed)
        self.store = Store(TENANT_ID)
        self.throttle = Throttle(self.clock)
        self.faults = Faults(seed, KINDS + providers.fault_kinds)
        self.events = EventBus()
        self.calls = CallLog()
        self.rbac = RoleAssignments()
        self.operations = Operations(self.clock)
        self.router, self.guards, self.data_plane = providers.router, providers.guards, providers.data_plane
        self.admin = admin.AdminApi(self, providers.admin, providers.settings)
        self.base_url = "https://127.0.0.1"
        self.latency_ms = 0.0
        self.require_auth = True
        self.lro_seconds_default = DEFAULT_LRO_SECONDS
        self.lro_seconds_by_type: dict[str, float] = {}
        self.setting_defs = {s.name: s for s in providers.settings}
        self.provider_settings: dict[str, dict[str, Any]] = {}  # providers' settings by name (Compute's vm_agent…)
        self._default_provider_settings()
        self.ext: dict[str, Any] = {}  # provider-owned state that is not a resource, saved with --state
        self.transient: dict[str, Any] = {}  # caches that need not survive a restart (query pages)
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    # --- settings used by providers --------------------------------------------------------------
    def _default_provider_settings(self) -> None:
        self.provider_settings = {name: json.loads(json.dumps(s.default)) for name, s in self.setting_defs.items()}

    def lro_seconds(self, resource_type: str) -> float:
        return self.lro_seconds_by_type.get(resource_type.lower(), self.lro_seconds_default)

    def start_operation(self, req: Request, location: str, duration: float | None = None, **kwargs: Any) -> Operation:
        """Start a long-running operation for this request, failing it if a fault rule says so."""
        rt = req.route.resource_type if req.route else ""
        if duration is None:
            duration = self.lro_seconds(rt)
        rule = self.faults.pick(req.method, req.path, req.route.operation if req.route else "", ("lro_failed",))
        if rule:
            kwargs["fail_with"] = {"code": "InternalOperationError",
                                   "message": f"Injected fault: the operation '{req.route.operation}' ended Failed."}
        return self.operations.start(subscription_of(req.params) or "", location, duration, **kwargs)

    # --- the pipeline -------------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Outcome:
        # An origin-form request target (RFC 9112 §3.2.1): path and query only. Not urlsplit, which
        # would read a path starting "//" as a host (and raise on "//[").
        raw_path, _, raw_query = target.split("#", 1)[0].partition("?")
        path = urllib.parse.unquote(raw_path) or "/"
        query = {k: v for k, v in urllib.parse.parse_qsl(raw_query, keep_blank_values=True)}
        headers = {k.lower(): v for k, v in headers.items()}
        if path.lower().startswith("/_emulator/") or path.lower() == "/_emulator":
            return Outcome(self.admin.handle(method, path, query, body))
        request_id = str(uuid.uuid4())
        req = Request(method, path, query, headers, body, emulator=self)
        extra_headers: dict[str, str] = {}
        outcome = Outcome(Response(500))
        try:
            route, params, path_known = self.data_plane.match(method, path)
            if route is not None or path_known:
                outcome = self._dispatch_data_plane(req, route, params)
            else:
                outcome = self._dispatch(req, extra_headers)
        except errors.ArmError as exc:
            outcome = Outcome(Response(exc.status, exc.body(), dict(exc.headers)))
        except Exception:  # a bug in the emulator must look like ARM's 500, never a traceback
            log.error("internal error on %s %s\n%s", method, path, traceback.format_exc())
            outcome = Outcome(Response(500, errors.InternalServerError("An internal error occurred in the emulator.").body()))
        resp = outcome.response
        resp.headers.update(extra_headers)
        resp.headers.setdefault("x-ms-request-id", request_id)
        resp.headers.setdefault("x-ms-correlation-request-id", headers.get("x-ms-correlation-request-id", request_id))
        resp.headers.setdefault("x-ms-routing-request-id", f"LOCAL:{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}:{request_id}")
        route = req.route
        self.calls.record(method, path, route.operation if route else None, resp.status, self.clock.timestamp(),
                          headers.get("user-agent"))
        if self.latency_ms:
            outcome.delay += self.latency_ms / 1000.0
        return outcome

    def _dispatch(self, req: Request, extra_headers: dict[str, str]) -> Outcome:
        route, params, path_known = self.router.match(req.method, req.path)
        if route is None:
            raise self._unknown_path(req, path_known)
        req.route, req.params = route, params
        if self.require_auth and req.bearer_token() is None:
            raise errors.AuthenticationFailed("Authentication failed. The 'Authorization' header is missing.")
        self._check_api_version(req, route)
        scope = "tenant"
        sub_id = subscription_of(params)
        if sub_id:
            with self.lock:
                self.store.subscription(sub_id)  # 400 malformed / 404 unknown
            scope = sub_id.lower()
            # A caller with role assignments needs its request's own action at the request's scope (tenant-level
            # requests such as a Resource Graph query are not checked: no assignment is made there).
            # The scope as the router reads the path: empty segments are none (the locks client asks
            # "/{scope}/providers/…" of a scope that starts with "/": "//subscriptions/…").
            self.rbac.authorize(req.bearer_token(), route.operation, "/" + "/".join(p for p in req.path.split("/") if p))
        allowed, remaining, wait = self.throttle.take(scope, route.kind)
        header_scope = "subscription" if scope != "tenant" else "tenant"
        if remaining >= 0:
            extra_headers[f"x-ms-ratelimit-remaining-{header_scope}-{route.kind}"] = str(remaining)
        if not allowed:
            seconds = retry_after_header(self.clock, wait)
            raise errors.Throttled(
                f"Number of '{route.kind[:-1]}' requests for subscription '{scope}' actor '{TENANT_ID}' exceeded. "
                f"Please try again after '{seconds}' seconds after additional tokens are available.",
                headers={"Retry-After": seconds},
            )
        reset, delay = self._inject_fault(req, route.operation)
        if reset is not None:
            return reset
        with self.lock:
            self.operations.settle()
            for guard in self.guards:
                guard(req)
            resp = route.handler(req)
        if 200 <= resp.status < 300 and route.kind in ("writes", "deletes") and resp.headers.pop("x-emulator-event", "1") == "1":
            self._publish(req, route)
        resp.headers.pop("x-emulator-event", None)
        return Outcome(resp, delay=delay)

    def _dispatch_data_plane(self, req: Request, route: Any, params: dict[str, str]) -> Outcome:
        """A data-plane request: its handler checks auth and api-version in its service's own terms; faults
        apply as to ARM, and operations due are settled first (a resource just created is usable)."""
        if route is None:
            message = f"The requested resource does not support http method '{req.method}'."
            raise errors.ArmError(message, code="MethodNotAllowed", status=405,
                                  details=[{"code": "MethodNotAllowed", "message": message}])
        req.route, req.params = route, params
        reset, delay = self._inject_fault(req, route.operation)
        if reset is not None:
            return reset
        with self.lock:
            self.operations.settle()
            resp = route.handler(req)
        return Outcome(resp, delay=delay)

    def _inject_fault(self, req: Request, operation: str) -> tuple[Outcome | None, float]:
        """A fault rule matching this request: raises its error, or returns (a connection reset, or None,
        and the delay of a slow response)."""
        rule = self.faults.pick(req.method, req.path, operation, ("429", "500", "503", "reset", "slow"))
        if rule is None:
            return None, 0.0
        if rule.kind == "reset":
            return Outcome(Response(0), reset=True), 0.0
        if rule.kind == "429":
            raise errors.Throttled(
                f"Injected throttling: please try again after '{rule.retry_after}' seconds.",
                headers={"Retry-After": str(max(1, rule.retry_after))},
            )
        if rule.kind == "500":
            raise errors.InternalServerError("Injected fault: an internal error occurred.")
        if rule.kind == "503":
            raise errors.ServiceUnavailable("Injected fault: the service is temporarily unavailable.",
                                            headers={"Retry-After": "1"})
        return None, rule.delay_ms / 1000.0  # slow

    def _publish(self, req: Request, route: Any) -> None:
        kind = {"PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(req.method, "action")
        resource_id = req.path.rstrip("/")
        if kind == "action":  # the action's scope is the resource it acts on
            resource_id = resource_id.rsplit("/", 1)[0]
        operation = route.operation
        sub = subscription_of(req.params) or ""
        event = build_event(kind, resource_id, operation, sub, self.clock.timestamp(), req.method,
                            f"https://management.azure.com{req.path}?api-version={req.api_version}")
        self.events.publish(event, sub)

    def _check_api_version(self, req: Request, route: Any) -> None:
        if route.api_versions is None:
            return
        version = req.query.get("api-version")
        if not version:
            raise errors.MissingApiVersion()
        if version not in route.api_versions:
            supported = "', '".join(sorted(route.api_versions, reverse=True))
            raise errors.NoRegisteredProviderFound(
                f"No registered resource provider found for API version '{version}' and type "
                f"'{route.resource_type}'. The supported api-versions are '{supported}'."
            )

    def _unknown_path(self, req: Request, path_known: bool) -> errors.ArmError:
        if path_known:
            return errors.ArmError(f"The requested resource does not support http method '{req.method}'.",
                                   code="MethodNotAllowed", status=405)
        parts = [p for p in req.path.split("/") if p]
        lower = [p.lower() for p in parts]
        if len(parts) >= 2 and lower[0] == "subscriptions":
            with self.lock:
                self.store.subscription(parts[1])
        if "providers" in lower:
            i = lower.index("providers")
            if i + 1 < len(parts):
                namespace = parts[i + 1]
                if not any(f"/providers/{namespace.lower()}/" in r.template.lower() for r in self.router.routes):
                    return errors.ArmError(f"The resource namespace '{namespace}' is invalid.",
                                           code="InvalidResourceNamespace", status=400)
                rtype = "/".join(parts[i + 2::2]) or "(none)"
                return errors.InvalidResourceType(
                    f"The resource type '{rtype}' could not be found in the namespace '{namespace}' "
                    f"for api version '{req.api_version}'."
                )
        return errors.ArmError(f"No HTTP resource was found that matches the request URI '{req.path}'.",
                               code="InvalidRequestUri", status=404)

    # --- background completion of long-running operations -------------------------------------
    def start_ticker(self) -> None:
        if self._ticker and self._ticker.is_alive():
            return
        self._stop.clear()
        self._ticker = threading.Thread(target=self._tick, name="emulator-lro", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                self.operations.settle()
                due = self.operations.next_due()
            wait = 0.05 if due is None else max(0.005, min(0.05, self.clock.real_seconds(due - self.clock.timestamp())))
            self._stop.wait(wait)

    def stop(self) -> None:
        self._stop.set()
        self.events.close()

    # --- state --------------------------------------------------------------------------------
    def save_state(self, path: str) -> None:
        with self.lock:
            self.operations.settle_all()
            state = {"clock": self.clock.timestamp(), "store": self.store.to_state(), "ext": self.ext}
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(state, fh)

    def load_state(self, path: str) -> None:
        with open(path, encoding="utf-8") as fh:
            state = json.load(fh)
        with self.lock:
            self.store.load_state(state.get("store", {}))
            self.ext = state.get("ext", {})
            ahead = state.get("clock", 0) - self.clock.timestamp()
            if ahead > 0:
                self.clock.advance(ahead)

    def reset(self) -> None:
        """Back to a fresh emulator: no state, default settings, no faults (the clock keeps going)."""
        with self.lock:
            self.store = Store(TENANT_ID)
            self.operations = Operations(self.clock)
            self.throttle = Throttle(self.clock)
            self.faults.set_rules([])
            self.calls.clear()
            self.calls.enabled = True
            self.rbac.clear()
            self.events.subscriptions.clear()
            self.events.published.clear()
            self.latency_ms = 0.0
            self.require_auth = True
            self.lro_seconds_default = DEFAULT_LRO_SECONDS
            self.lro_seconds_by_type = {}
            self._default_provider_settings()
            self.ext = {}
            self.transient = {}
