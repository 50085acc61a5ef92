"""Site Recovery (Azure-to-Azure) over HTTP, as azure-mgmt-recoveryservicessiterecovery 2.0.0 calls it
(api-version 2025-08-01): the routes of infrastructure.py, protection.py, plans.py and eligibility.py,
the ``siterecovery`` setting and the admin endpoint that stalls an item's replication."""

from __future__ import annotations

from typing import Any

from ..core.providers import AdminRoute, Setting
from . import eligibility, infrastructure, items, plans, protection  # noqa: F401 (they register their routes)
from . import models as m
from .http import router

__all__ = ["router", "ADMIN", "SETTINGS"]


def _merge(current: dict[str, Any], value: Any) -> dict[str, Any]:
    """``{"initial_replication_seconds": s}``: how long (emulated) an item's initial replication takes."""
    if not isinstance(value, dict) or set(value) - {"initial_replication_seconds"}:
        raise ValueError("settings.siterecovery: an object such as {\"initial_replication_seconds\": 60}")
    if "initial_replication_seconds" in value:
        seconds = value["initial_replication_seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError("settings.siterecovery.initial_replication_seconds: a number of seconds >= 0")
        current["initial_replication_seconds"] = float(seconds)
    return current


SETTINGS = [Setting(protection.SETTING, {"initial_replication_seconds": items.DEFAULT_INITIAL_REPLICATION_SECONDS}, _merge)]


def _stall(emulator: Any, body: dict[str, Any]) -> tuple[int, Any]:
    """``{"protectedItemId": id, "stalled": bool}``: replication of the item stops producing recovery points (its RPO
    grows until replication health turns Warning) or resumes, as when a source VM loses its path to the cache."""
    item_id = body.get("protectedItemId")
    item = emulator.store.get(item_id) if isinstance(item_id, str) else None
    if item is None or item.type.lower() != m.ITEM_TYPE.lower():
        raise ValueError(f"protectedItemId: '{item_id}' is not a replicated item")
    stalled = body.get("stalled", True)
    if not isinstance(stalled, bool):
        raise ValueError("stalled: true or false")
    item.internal["stalled"] = stalled
    items.observe(emulator.store, item, emulator.clock.timestamp())
    return 200, {"protectedItemId": item.id, "stalled": stalled}


ADMIN = [AdminRoute("POST", r"siterecovery/stall", _stall)]
