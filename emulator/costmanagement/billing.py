"""What the emulated fleet costs, day by day: usage lines (a resource, a meter, a quantity, from when) priced from
the price sheet (prices.py) for each day of existence.

- a snapshot: its used bytes (compute/usage.py) in GB on the snapshot meter of its SKU (ZRS or LRS), from its
  creation;
- a restore point collection: each disk restore point's used bytes on the LRS snapshot meter (Learn: restore
  points are stored as incremental snapshots), from the point's creation, charged to the collection;
- a Recovery Services vault: per protected item one protected instance and its VM's disks' used bytes on the
  vault's GRS storage meter, from the item's creation, charged to the vault (Azure Backup bills the vault, not the
  VM: the vault's tags are what a tag grouping sees).

A day's cost is price × quantity × the seconds the resource existed that day / (86,400 × the days in that month):
a month's price spread over its days. Usage is counted only up to ``now - data_lag_hours`` (Cost Management's
data lags usage). Resources deleted are gone from the store and from the cost data (not modelled: Azure keeps
their past cost).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ..compute import models as cm
from ..compute import usage
from ..recoveryservices import models as rm
from . import prices

GB = 1024**3


@dataclass(frozen=True)
class Line:
    resource: Any  # the Resource charged (its id, type, group, location, tags)
    meter: prices.Meter
    quantity: float
    start: float  # emulated seconds


def lines(emulator: Any, subscription: str, group: str | None = None) -> list[Line]:
    store = emulator.store
    scope = f"/subscriptions/{subscription}" + (f"/resourceGroups/{group}" if group else "")
    out: list[Line] = []
    for snap in store.of_type(cm.SNAPSHOT_TYPE, scope):
        if snap.properties.get("provisioningState") == "Failed":
            continue
        sku = str((snap.extra.get("sku") or {}).get("name", "")).upper()
        meter = prices.SNAPSHOT_ZRS if sku.endswith("ZRS") else prices.SNAPSHOT_LRS
        out.append(Line(snap, meter, snap.internal.get("usedBytes", 0) / GB, snap.created))
    for rpc in store.of_type(cm.RPC_TYPE, scope):
        for drp in store.of_type(cm.DRP_TYPE, rpc.id):
            out.append(Line(rpc, prices.SNAPSHOT_LRS, drp.internal.get("usedBytes", 0) / GB, drp.created))
    for vault in store.of_type(rm.VAULT_TYPE, scope):
        for item in store.of_type(rm.ITEM_TYPE, vault.id):
            out.append(Line(vault, prices.PROTECTED_INSTANCE, 1.0, item.created))
            vm = store.get(item.internal.get("vmId") or "")
            used = sum(usage.disk_used_bytes(emulator, d) for d in (store.get(i) for i in cm.vm_disk_ids(vm)) if d) if vm else 0
            out.append(Line(vault, prices.BACKUP_GRS, used / GB, item.created))
    return out


def day_of(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


def daily(line: Line, first: date, last: date, until: float) -> dict[date, float]:
    """The line's cost per day from ``first`` to ``last`` (inclusive), usage counted up to ``until``."""
    out: dict[date, float] = {}
    price = prices.price(line.meter, line.resource.location or "")
    start = max(line.start, datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp())
    end = min(until, datetime(last.year, last.month, last.day, tzinfo=UTC).timestamp() + 86400)
    day = day_of(start) if start < end else None
    while day is not None and day <= last:
        day_start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        seconds = min(end, day_start + 86400) - max(start, day_start)
        if seconds > 0:
            days_in_month = calendar.monthrange(day.year, day.month)[1]
            out[day] = price * line.quantity * seconds / (86400.0 * days_in_month)
        if day_start + 86400 >= end:
            break
        day += timedelta(days=1)
    return out
