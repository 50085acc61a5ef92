"""The resource providers the emulator serves, imported when the emulator is built (not when
``emulator`` is imported), each contributing its own route table."""

from __future__ import annotations

from .routing import Router

PROVIDERS = (
    "emulator.resources.responses",
    "emulator.network.responses",
    "emulator.compute.responses",
    "emulator.resourcegraph.responses",
)


def build_router() -> Router:
    import importlib

    router = Router()
    for name in PROVIDERS:
        router.extend(importlib.import_module(name).router)
    return router
