"""The resource providers the emulator serves, imported when the emulator is built (not when
``emulator`` is imported), each contributing its own route table."""

from __future__ import annotations

from .routing import Router

PROVIDERS = (
    "emulator.authorization.responses",
    "emulator.resources.responses",
    "emulator.network.responses",
    "emulator.compute.responses",
    "emulator.resourcegraph.responses",
    "emulator.recoveryservices.responses",
)


def build_router() -> tuple[Router, list]:
    """The combined route table, and the guards (checks every request passes before its handler,
    such as management locks) that providers declare with a module-level ``guard``."""
    import importlib

    router, guards = Router(), []
    for name in PROVIDERS:
        module = importlib.import_module(name)
        router.extend(module.router)
        if hasattr(module, "guard"):
            guards.append(module.guard)
    return router, guards
