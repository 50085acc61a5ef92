"""Paths → handlers. ARM paths are case-insensitive; each route names the RBAC operation it
performs (for the call log) and the api-versions its resource type accepts."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidRequestContent

_PARAM = re.compile(r"\{(\w+)(\*?)\}")


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    raw_body: bytes
    params: dict[str, str] = field(default_factory=dict)
    emulator: Any = None
    route: Route | None = None
    _json: Any = None

    @property
    def api_version(self) -> str:
        return self.query.get("api-version", "")

    def json(self, required: bool = True) -> Any:
        if self._json is None:
            if not self.raw_body.strip():
                if required:
                    raise InvalidRequestContent("The request content was invalid and could not be deserialized: the body is empty.")
                return {}
            try:
                self._json = json.loads(self.raw_body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidRequestContent(
                    f"The request content was invalid and could not be deserialized: '{exc}'."
                ) from None
            if not isinstance(self._json, dict):
                raise InvalidRequestContent("The request content was invalid and could not be deserialized: expected a JSON object.")
        return self._json

    def base_url(self) -> str:
        return self.emulator.base_url

    def bearer_token(self) -> str | None:
        """The token of an ``Authorization: Bearer …`` header (what the emulator accepts as a signed-in
        caller: it holds no identity provider, so any bearer token is one), else None."""
        scheme, space, token = self.headers.get("authorization", "").partition(" ")
        return token if space and scheme.lower() == "bearer" else None


Handler = Callable[[Request], Response]


@dataclass
class Route:
    method: str
    template: str
    handler: Handler
    operation: str  # RBAC action, e.g. "Microsoft.Compute/snapshots/write"
    api_versions: frozenset[str] | None  # None: any api-version (or none) is accepted
    kind: str  # throttle bucket: "reads" | "writes" | "deletes" | "none"
    regex: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        # "{name}" is one path segment; "{name*}" spans several (a scope such as a resource id).
        escaped = re.escape(self.template).replace(r"\{", "{").replace(r"\}", "}").replace(r"\*", "*")
        pattern = "^" + _PARAM.sub(self._group, escaped) + "/?$"
        self.regex = re.compile(pattern, re.IGNORECASE)

    @staticmethod
    def _group(m: re.Match[str]) -> str:
        return f"(?P<{m.group(1)}>.+?)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)"

    @property
    def resource_type(self) -> str:
        return self.operation.rsplit("/", 1)[0] if "/" in self.operation else self.operation


_KIND_BY_METHOD = {"GET": "reads", "HEAD": "reads", "PUT": "writes", "PATCH": "writes", "POST": "writes", "DELETE": "deletes"}


class Router:
    """Collects routes from provider modules; the first template that matches wins, so a route
    table can't silently shadow another (duplicates are refused when registered)."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self._seen: set[tuple[str, str]] = set()
        # The backends of long-running deletes by resource type (lower-case), which a resource group's
        # delete runs for what it holds (resource.add_long_running_delete registers them).
        self.deletions: dict[str, Callable[..., Any]] = {}

    def add(
        self,
        method: str,
        template: str,
        handler: Handler,
        *,
        operation: str,
        api_versions: Iterable[str] | None,
        kind: str | None = None,
    ) -> None:
        key = (method, template.lower())
        if key in self._seen:
            raise ValueError(f"route registered twice: {method} {template}")
        self._seen.add(key)
        self.routes.append(
            Route(
                method,
                template,
                handler,
                operation,
                frozenset(api_versions) if api_versions is not None else None,
                kind or _KIND_BY_METHOD[method],
            )
        )

    def route(self, method: str, template: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add(method, template, handler, **kwargs)
            return handler

        return register

    def extend(self, other: Router) -> None:
        for r in other.routes:
            self.add(r.method, r.template, r.handler, operation=r.operation, api_versions=r.api_versions, kind=r.kind)
        self.deletions.update(other.deletions)

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """Returns (route, params, path_known). path_known is True when the path matched some
        route under another method (→ 405), False when no route knows it (→ 404)."""
        path_known = False
        for r in self.routes:
            m = r.regex.match(path)
            if m:
                if r.method == method:
                    return r, m.groupdict(), True
                path_known = True
        return None, {}, path_known
