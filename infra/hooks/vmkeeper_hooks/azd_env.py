"""What azd hands a hook: its environment's values as environment variables — main.bicep's outputs (arrays and
objects as JSON) and azd's own (``AZURE_ENV_NAME``, ``AZURE_SUBSCRIPTION_ID``). Every value a hook reads goes
through :class:`AzdEnv`, so tests/infra/test_hooks.py can check each one is an output main.bicep declares."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

# azd's own values (not main.bicep outputs).
AZD = frozenset({"AZURE_ENV_NAME", "AZURE_SUBSCRIPTION_ID"})
# Outputs naming what vmkeeper assigned or defined in Azure RBAC outside rg-<env> (azd down deletes rg-<env>
# only): every output so named is read by the teardown (a string id, or a JSON array of ids; '' for none).
ROLE_ASSIGNMENTS = re.compile(r"^VMKEEPER_\w*ROLE_ASSIGNMENT_IDS?$")
ROLE_DEFINITIONS = re.compile(r"^VMKEEPER_\w*ROLE_DEFINITION_IDS?$")


class HookError(Exception):
    """A hook can't go on: the message says what to do."""


class AzdEnv:
    def __init__(self, values: Mapping[str, str]):
        self._values = values

    def require(self, name: str) -> str:
        value = self._values.get(name, "").strip()
        if not value:
            raise HookError(f"{name} is not set: it is {'azd' if name in AZD else 'a main.bicep output'} "
                            f"({'azd env new / azd auth login' if name in AZD else 'run azd provision first'}).")
        return value

    def optional(self, name: str) -> str:
        return self._values.get(name, "").strip()

    def array(self, name: str) -> list[str]:
        """A JSON array output (azd writes arrays as JSON); an element must be a non-empty string."""
        raw = self.require(name)
        try:
            value = json.loads(raw)
        except ValueError:
            raise HookError(f"{name}: not a JSON array ({raw[:80]!r}); run azd provision again.") from None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise HookError(f"{name}: a JSON array of resource ids expected, got {raw[:80]!r}.")
        return value

    def ids_named(self, pattern: re.Pattern[str]) -> list[str]:
        """The resource ids of every output whose name matches: a JSON array or a single id ('' for none)."""
        found: list[str] = []
        for name in sorted(n for n in self._values if pattern.match(n)):
            raw = self._values[name].strip()
            if raw.startswith("["):
                found += self.array(name)
            elif raw:
                found.append(raw)
        return found
