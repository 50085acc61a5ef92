"""The resource providers the emulator serves, imported when the emulator is built (not when
``emulator`` is imported). Each provider module contributes, by module-level names that core reads
here and never the other way round:

- ``router``: its route table (required);
- ``guard``: a check every request passes before its handler, such as management locks;
- ``ADMIN``: admin endpoints of its own under ``/_emulator/`` (e.g. a fleet seed), as
  :class:`AdminRoute` entries;
- ``data_plane``: routes of a service's data plane (e.g. publishing to an Event Grid topic), which in
  Azure live on hosts of their own: they skip ARM's pipeline (bearer check, api-version, throttling,
  locks, system-topic events) and answer in their service's own error envelope;
- ``SETTINGS``: settings of its own under ``/_emulator/settings``, as :class:`Setting` entries (e.g.
  Compute's ``vm_agent``);
- ``FAULT_KINDS``: fault rule kinds it acts on itself (e.g. Compute's ``vm_agent_not_ready``), beside
  core's kinds, which the request pipeline acts on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .routing import Request, Router

PROVIDERS = (
    "emulator.authorization.responses",
    "emulator.authorization.roles",
    "emulator.resources.responses",
    "emulator.network.responses",
    "emulator.compute.responses",
    "emulator.resourcegraph.responses",
    "emulator.recoveryservices.responses",
    "emulator.siterecovery.responses",
    "emulator.eventgrid.responses",
    "emulator.costmanagement.responses",
)


@dataclass(frozen=True)
class AdminRoute:
    """An admin endpoint a provider adds: ``method`` and ``path`` (a regex under /_emulator/), and a
    handler taking the emulator and the JSON body, returning (status, body). It runs with the state
    lock held unless ``locked`` is False (an endpoint that waits on other threads); a ValueError is a
    400 naming the problem."""

    method: str
    path: str
    handler: Callable[[Any, dict[str, Any]], tuple[int, Any]]
    locked: bool = True


@dataclass(frozen=True)
class Setting:
    """A settings object a provider adds: ``name`` (its key in the settings), ``default`` (a JSON object,
    the value after a reset) and ``merge`` (the current value and the value a PATCH sent → the new value;
    a ValueError naming the field is a 400)."""

    name: str
    default: dict[str, Any]
    merge: Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class Providers:
    router: Router = field(default_factory=Router)
    guards: list[Callable[[Request], None]] = field(default_factory=list)
    admin: list[AdminRoute] = field(default_factory=list)
    data_plane: Router = field(default_factory=Router)
    settings: list[Setting] = field(default_factory=list)
    fault_kinds: tuple[str, ...] = ()


def load_providers(names: tuple[str, ...] = PROVIDERS) -> Providers:
    """The combined route table, guards, admin endpoints, settings and fault kinds of the provider modules."""
    import importlib

    found = Providers()
    for name in names:
        module = importlib.import_module(name)
        found.router.extend(module.router)
        if hasattr(module, "guard"):
            found.guards.append(module.guard)
        found.admin.extend(getattr(module, "ADMIN", ()))
        if hasattr(module, "data_plane"):
            found.data_plane.extend(module.data_plane)
        found.settings.extend(getattr(module, "SETTINGS", ()))
        found.fault_kinds += tuple(getattr(module, "FAULT_KINDS", ()))
    return found
