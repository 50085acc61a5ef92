"""What pins are read from: the restores table and the schedule's ledger (their writers own their
shapes: shared/restore/records.py, shared/schedule/service.py; shared/points/pins.py names the fields).
Reads only. A table that does not exist yet holds nothing; any other failure is raised: the caller
keeps what it was about to delete (nothing is deleted on doubt)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ..instants import parse_instant
from . import pins as P

RESTORES_IN_USE = (f"PartitionKey eq '{P.RESTORE_PARTITION}' and ("
                   + " or ".join(f"state eq '{state}'" for state in P.IN_USE) + ")")


def restores_in_use(table: Any) -> list[P.Restore]:
    """Every restore (and drill restore) pending or running, and every file recovery or export not ended yet: one
    query of the restores table."""
    from azure.core.exceptions import ResourceNotFoundError

    if table is None:
        return []
    try:
        return [P.restore_from_entity(e) for e in table.query_entities(RESTORES_IN_USE)]
    except ResourceNotFoundError:  # no restore was ever made: no table yet
        return []


def scheduled_jobs(ledger: Any, wanted: Iterable[tuple[str, str, datetime, int]], since: datetime) -> list[P.Job]:
    """The jobs (vm id, kind, slot, disks) among ``wanted`` handed to the queue at or after ``since``, with
    their outcome: one query per slot (the enqueues of that slot since then: few, for an old slot none),
    and one read per job found."""
    by_slot: dict[datetime, dict[str, tuple[str, str, int]]] = defaultdict(dict)
    for vm, kind, slot, disks in wanted:
        key = P.job_key(vm, kind, slot).lower()
        held = by_slot[slot].get(key)
        by_slot[slot][key] = (vm.lower(), kind, max(disks, held[2] if held else 0))
    out = []
    for slot, keys in sorted(by_slot.items()):
        # (The ledger makes its table on first use: a fleet that never ran a job reads an empty partition.)
        rows = ledger.rows(P.enqueued_partition(slot), f"at ge {since.timestamp():.3f}", select=["item", "at", "copies"])
        for row in rows:
            job = keys.get(str(row.get("item", "")).lower())
            if job is None or not isinstance(row.get("at"), int | float):
                continue
            outcome = ledger.get(P.jobs_partition(slot), P.job_key(job[0], job[1], slot)) or {}
            copies = row.get("copies")
            out.append(P.Job(job[0], job[1], slot, datetime.fromtimestamp(float(row["at"]), UTC),
                             outcome.get("outcome") or None, parse_instant(outcome.get("updated")), job[2],
                             int(copies) if isinstance(copies, int | float) else None))
    return out
