"""Role assignments, as ARM checks them: a principal may perform an action at a scope when one of its
assignments at that scope or above grants the action (``*`` wildcards, case-insensitive) and does not
exclude it (``notActions``).

The emulator holds no identity provider: a principal is the bearer token it presents. Permissive by
default: a principal with no assignment may do anything (every client of a fresh emulator is, in effect,
an Owner), so only a caller a test has given assignments is checked — its request's own action
(403 ``AuthorizationFailed``) and the linked access checks a request makes on resources it refers to
(403 ``LinkedAuthorizationFailed``; see ``core/arm.linked_access_checks``). The messages are ARM's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ArmError


class AuthorizationFailed(ArmError):
    status = 403
    code = "AuthorizationFailed"


class LinkedAuthorizationFailed(ArmError):
    status = 403
    code = "LinkedAuthorizationFailed"


def _actions(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(a, str) and a.strip() for a in value):
        raise ValueError(f"{field}: a list of action strings")
    return tuple(value)


def _scope(value: Any, field: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"/|(/[^/]+)+", value.rstrip("/") or "/"):
        raise ValueError(f"{field}: a scope such as /subscriptions/{{id}}[/resourceGroups/{{name}}[/providers/…]]")
    return value.rstrip("/") or "/"


def grants(pattern: str, action: str) -> bool:
    """Whether a role's action (perhaps with ``*``) grants an action; RBAC compares without case."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, action, re.IGNORECASE) is not None


def covers(scope: str, target: str) -> bool:
    """Whether an assignment at ``scope`` applies at ``target`` (the scope itself or anything under it)."""
    scope, target = scope.rstrip("/").lower(), target.rstrip("/").lower()
    return scope == "" or target == scope or target.startswith(scope + "/")


@dataclass(frozen=True)
class Assignment:
    principal: str  # the bearer token the principal presents
    scope: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()
    role: str = ""  # a name, for reading the list

    @classmethod
    def parse(cls, body: Any, where: str = "assignment") -> Assignment:
        if not isinstance(body, dict):
            raise ValueError(f"{where}: an object {{principal, scope, actions, notActions?, role?}}")
        unknown = set(body) - {"principal", "scope", "actions", "notActions", "role"}
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
        principal = body.get("principal")
        if not isinstance(principal, str) or not principal:
            raise ValueError(f"{where}.principal: required, the bearer token the principal presents")
        actions = _actions(body.get("actions"), f"{where}.actions")
        if not actions:
            raise ValueError(f"{where}.actions: required, at least one action")
        role = body.get("role", "")
        if not isinstance(role, str):
            raise ValueError(f"{where}.role: a string")
        return cls(principal, _scope(body.get("scope"), f"{where}.scope"), actions,
                   _actions(body.get("notActions"), f"{where}.notActions"), role)

    def to_dict(self) -> dict[str, Any]:
        return {"principal": self.principal, "scope": self.scope, "actions": list(self.actions),
                "notActions": list(self.not_actions), "role": self.role}

    def allows(self, action: str, scope: str) -> bool:
        return (covers(self.scope, scope) and any(grants(a, action) for a in self.actions)
                and not any(grants(a, action) for a in self.not_actions))


class RoleAssignments:
    def __init__(self) -> None:
        self.assignments: list[Assignment] = []

    def replace(self, bodies: Any) -> None:
        if not isinstance(bodies, list):
            raise ValueError("value: required, a list of role assignments")
        self.assignments = [Assignment.parse(b, f"value[{i}]") for i, b in enumerate(bodies)]

    def add(self, body: Any) -> None:
        self.assignments.append(Assignment.parse(body))

    def clear(self) -> None:
        self.assignments = []

    def checked(self, principal: str | None) -> bool:
        """Whether this principal's requests are checked: it has assignments (else it may do anything)."""
        return principal is not None and any(a.principal == principal for a in self.assignments)

    def allows(self, principal: str | None, action: str, scope: str) -> bool:
        if not self.checked(principal):
            return True
        return any(a.principal == principal and a.allows(action, scope) for a in self.assignments)

    def authorize(self, principal: str | None, action: str, scope: str) -> None:
        """ARM's check of a request's own action: 403 AuthorizationFailed when not granted."""
        if not self.allows(principal, action, scope):
            raise AuthorizationFailed(
                f"The client '{principal}' with object id '{principal}' does not have authorization to perform "
                f"action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, "
                "please refresh your credentials.")

    def refused(self, principal: str | None, action: str, scope: str, linked: list[tuple[str, str]]) -> ArmError:
        """ARM's answer to failed linked access checks (``linked``: the (action, scope) pairs not granted)."""
        actions = ",".join(a for a, _ in linked)
        scopes = ",".join(s for _, s in linked)
        return LinkedAuthorizationFailed(
            f"The client '{principal}' with object id '{principal}' has permission to perform action '{action}' on "
            f"scope '{scope}'; however, it does not have permission to perform action(s) '{actions}' on the linked "
            f"scope(s) '{scopes}' (respectively) or the linked scope(s) are invalid.")
