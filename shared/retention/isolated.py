"""Isolated copies' part in retention (docs/isolated-copies.md).

- Their own pass runs with the second identity's clients over the backup subscription alone (shared/wiring.py
  ``isolated_retention``): the production identity has no role there and never lists, marks or deletes them. Its
  VMs are the fleet's (read with the app's identity: the second one has no role in production), so a live VM's
  copies keep their newest good set as its snapshots do.
- The fleet's pass learns from the backup subscription which copies are in flight (``in_flight``, read with the
  second identity): each pins its source (shared/points/pins.py), which retention never deletes while Azure copies
  it. Azure's word, read afresh every pass; unreadable, the pass fails and deletes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..azure.graph import query_all
from ..instants import parse_instant
from ..points import pins as P

IN_FLIGHT_QUERY = (
    "Resources | where type =~ 'microsoft.compute/snapshots' and resourceGroup =~ '{group}' "
    "| project id, created = tostring(properties.timeCreated), state = tostring(properties.provisioningState), "
    "option = tostring(properties.creationData.createOption), completion = properties.completionPercent, "
    "copyError = properties.copyCompletionError, source = tostring(properties.creationData.sourceResourceId)"
)


def copying(row: dict[str, Any]) -> bool:
    """A copy Azure still makes: not Succeeded nor Failed yet (Copy), or a CopyStart's background copy under 100 %."""
    state = str(row.get("state") or "").lower()
    if state == "failed" or not row.get("source"):
        return False
    if state != "succeeded":
        return True
    return str(row.get("option") or "").lower() == "copystart" and not row.get("copyError") \
        and (row.get("completion") or 0) < 100


def in_flight(graph: Any, subscription: str, resource_group: str, now: datetime | None = None) -> list[P.Copy]:
    """The copies in flight in the backup group, each with its source (in production)."""
    now = now or datetime.now(UTC)
    query = IN_FLIGHT_QUERY.format(group=resource_group.replace("'", ""))
    return [P.Copy(row["id"], str(row["source"]), parse_instant(row.get("created")) or now)
            for row in query_all(graph, [subscription], query) if copying(row)]
