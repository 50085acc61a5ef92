"""The admin API under /_emulator/ (documented in emulator/README.md): settings, clock, faults, call
log, role assignments, event subscriptions, state and reset, plus the endpoints providers add (such as
a fleet seed). JSON in, JSON out."""

from __future__ import annotations

import json
import re
import resource as _resource
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .routing import Response

if TYPE_CHECKING:
    from .app import Emulator
    from .providers import AdminRoute, Setting


class AdminError(ValueError):
    pass


def _ok(body: Any = None, status: int = 200) -> Response:
    return Response(status, body if body is not None else {})


class AdminApi:
    def __init__(self, emulator: Emulator, provided: Iterable[AdminRoute] = (), settings: Iterable[Setting] = ()):
        self.emu = emulator
        self._settings = {s.name: s for s in settings}
        self._routes = [
            ("GET", r"health", self.health),
            ("POST", r"reset", self.reset),
            ("GET", r"settings", self.get_settings),
            ("PUT", r"settings", self.put_settings),
            ("PATCH", r"settings", self.put_settings),
            ("GET", r"clock", self.get_clock),
            ("POST", r"clock", self.post_clock),
            ("GET", r"subscriptions", self.list_subscriptions),
            ("POST", r"subscriptions", self.add_subscription),
            ("GET", r"faults", self.get_faults),
            ("PUT", r"faults", self.put_faults),
            ("POST", r"faults", self.add_fault),
            ("DELETE", r"faults", self.delete_faults),
            ("GET", r"calls", self.get_calls),
            ("DELETE", r"calls", self.delete_calls),
            ("GET", r"roleAssignments", self.get_role_assignments),
            ("PUT", r"roleAssignments", self.put_role_assignments),
            ("POST", r"roleAssignments", self.add_role_assignment),
            ("DELETE", r"roleAssignments", self.delete_role_assignments),
            ("GET", r"eventSubscriptions", self.list_event_subscriptions),
            ("POST", r"eventSubscriptions", self.add_event_subscription),
            ("DELETE", r"eventSubscriptions/(?P<id>[^/]+)", self.delete_event_subscription),
            ("GET", r"events", self.get_events),
            ("POST", r"state/save", self.save_state),
            ("GET", r"stats", self.stats),
        ]
        self._routes += [(r.method, r.path, self._provided(r.handler, r.locked)) for r in provided]

    def handle(self, method: str, path: str, query: dict[str, str], raw: bytes) -> Response:
        sub = path[len("/_emulator/"):].strip("/")
        for m, pattern, fn in self._routes:
            match = re.fullmatch(pattern, sub, re.IGNORECASE)
            if match and m == method:
                try:
                    body = json.loads(raw) if raw.strip() else {}
                except ValueError as exc:
                    return Response(400, {"error": {"code": "InvalidRequestContent", "message": f"body: not JSON ({exc})"}})
                try:
                    return fn(body=body, query=query, **match.groupdict())
                except (AdminError, ValueError, TypeError, KeyError) as exc:
                    return Response(400, {"error": {"code": "InvalidAdminRequest", "message": str(exc)}})
        return Response(404, {"error": {"code": "NotFound", "message": f"no admin endpoint {method} {path}"}})

    # --- endpoints ---------------------------------------------------------------------------
    def health(self, **_: Any) -> Response:
        return _ok({"status": "ok", "baseUrl": self.emu.base_url})

    def reset(self, **_: Any) -> Response:
        self.emu.reset()
        return _ok({"reset": True})

    def get_settings(self, **_: Any) -> Response:
        e = self.emu
        return _ok({
            "latency_ms": e.latency_ms,
            "require_auth": e.require_auth,
            "lro": {"default_seconds": e.lro_seconds_default, "per_type": e.lro_seconds_by_type,
                    "retry_after_ms": e.operations.retry_after_ms},
            "throttle": e.throttle.settings(),
            "clock": {"speed": e.clock.speed},
            "calllog": {"enabled": e.calls.enabled},
            **e.provider_settings,
        })

    def put_settings(self, body: dict[str, Any], **_: Any) -> Response:
        e = self.emu
        known = {"latency_ms", "require_auth", "lro", "throttle", "clock", "calllog"} | set(self._settings)
        unknown = set(body) - known
        if unknown:
            raise AdminError(f"settings: unknown field(s) {sorted(unknown)} (known: {sorted(known)})")
        provided = {name: self._settings[name].merge(dict(e.provider_settings[name]), body[name])
                    for name in self._settings if name in body}  # all checked before any is changed
        if "latency_ms" in body:
            value = float(body["latency_ms"])
            if value < 0:
                raise AdminError("settings.latency_ms: must be >= 0")
            e.latency_ms = value
        if "require_auth" in body:
            e.require_auth = bool(body["require_auth"])
        lro = body.get("lro") or {}
        if "default_seconds" in lro:
            e.lro_seconds_default = _non_negative("settings.lro.default_seconds", lro["default_seconds"])
        for rtype, seconds in (lro.get("per_type") or {}).items():
            e.lro_seconds_by_type[rtype.lower()] = _non_negative(f"settings.lro.per_type.{rtype}", seconds)
        if "retry_after_ms" in lro:
            value = lro["retry_after_ms"]
            if value is not None and int(value) <= 0:
                raise AdminError("settings.lro.retry_after_ms: must be > 0 (a zero delay reads as absent)")
            e.operations.retry_after_ms = None if value is None else int(value)
        throttle = body.get("throttle") or {}
        e.throttle.configure(enabled=throttle.get("enabled"), limits=throttle.get("limits"))
        clock = body.get("clock") or {}
        if "speed" in clock:
            e.clock.set_speed(float(clock["speed"]))
        if "calllog" in body:
            e.calls.enabled = bool(body["calllog"].get("enabled", True))
        e.provider_settings.update(provided)
        return self.get_settings()

    def get_clock(self, **_: Any) -> Response:
        return _ok({"now": self.emu.clock.now().isoformat(), "timestamp": self.emu.clock.timestamp(),
                    "speed": self.emu.clock.speed})

    def post_clock(self, body: dict[str, Any], **_: Any) -> Response:
        if "advance_seconds" in body:
            self.emu.clock.advance(_non_negative("clock.advance_seconds", body["advance_seconds"]))
        if "speed" in body:
            self.emu.clock.set_speed(float(body["speed"]))
        with self.emu.lock:
            self.emu.operations.settle()
        return self.get_clock()

    def list_subscriptions(self, **_: Any) -> Response:
        with self.emu.lock:
            return _ok({"value": [s.to_arm() for s in self.emu.store.subscriptions.values()]})

    def add_subscription(self, body: dict[str, Any], **_: Any) -> Response:
        with self.emu.lock:
            sub = self.emu.store.add_subscription(body.get("id"), body.get("displayName"))
        return _ok(sub.to_arm(), 201)

    def _provided(self, handler: Any, locked: bool) -> Any:
        """A provider's admin endpoint, run with the state lock held unless it waits on other threads."""
        def endpoint(body: dict[str, Any], **_: Any) -> Response:
            if not locked:
                status, out = handler(self.emu, body)
                return _ok(out, status)
            with self.emu.lock:
                status, out = handler(self.emu, body)
            return _ok(out, status)
        return endpoint

    def get_faults(self, **_: Any) -> Response:
        return _ok({"rules": [r.to_dict() for r in self.emu.faults.rules]})

    def put_faults(self, body: dict[str, Any], **_: Any) -> Response:
        rules = body.get("rules")
        if not isinstance(rules, list):
            raise AdminError("faults.rules: required, a list of fault rules")
        self.emu.faults.set_rules(rules, seed=body.get("seed"))
        return self.get_faults()

    def add_fault(self, body: dict[str, Any], **_: Any) -> Response:
        self.emu.faults.add_rule(body)
        return self.get_faults()

    def delete_faults(self, **_: Any) -> Response:
        self.emu.faults.set_rules([])
        return _ok({"rules": []})

    def get_calls(self, query: dict[str, str], **_: Any) -> Response:
        since = int(query.get("since", "0"))
        entries = self.emu.calls.entries(since)
        return _ok({"next": since + len(entries), "value": entries})

    def delete_calls(self, **_: Any) -> Response:
        self.emu.calls.clear()
        return _ok({"value": []})

    def get_role_assignments(self, **_: Any) -> Response:
        return _ok({"value": [a.to_dict() for a in self.emu.rbac.assignments]})

    def put_role_assignments(self, body: dict[str, Any], **_: Any) -> Response:
        with self.emu.lock:
            self.emu.rbac.replace(body.get("value"))
        return self.get_role_assignments()

    def add_role_assignment(self, body: dict[str, Any], **_: Any) -> Response:
        with self.emu.lock:
            self.emu.rbac.add(body)
        return self.get_role_assignments()

    def delete_role_assignments(self, **_: Any) -> Response:
        with self.emu.lock:
            self.emu.rbac.clear()
        return _ok({"value": []})

    def list_event_subscriptions(self, **_: Any) -> Response:
        return _ok({"value": [s.to_dict() for s in self.emu.events.subscriptions.values()]})

    def add_event_subscription(self, body: dict[str, Any], **_: Any) -> Response:
        return _ok(self.emu.events.subscribe(body).to_dict(), 201)

    def delete_event_subscription(self, id: str, **_: Any) -> Response:  # noqa: A002
        if not self.emu.events.unsubscribe(id):
            return Response(404, {"error": {"code": "NotFound", "message": f"no event subscription '{id}'"}})
        return Response(204)

    def get_events(self, query: dict[str, str], **_: Any) -> Response:
        since = int(query.get("since", "0"))
        events = list(self.emu.events.published)[since:]
        return _ok({"next": since + len(events), "value": events})

    def save_state(self, body: dict[str, Any], **_: Any) -> Response:
        path = body.get("path")
        if not isinstance(path, str) or not path:
            raise AdminError("state.path: required")
        self.emu.save_state(path)
        return _ok({"saved": path})

    def stats(self, **_: Any) -> Response:
        with self.emu.lock:
            by_type = Counter(r.type for r in self.emu.store.resources.values())
            pending = sum(1 for op in self.emu.operations._ops.values() if op.status == "InProgress")
        peak_kib = _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss
        return _ok({"resources": dict(by_type), "operationsInProgress": pending, "calls": len(self.emu.calls),
                    "peakRssBytes": peak_kib * 1024})


def _non_negative(field: str, value: Any) -> float:
    number = float(value)
    if number < 0:
        raise AdminError(f"{field}: must be >= 0")
    return number
