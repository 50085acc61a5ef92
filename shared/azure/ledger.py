"""Records in Azure Tables: what happened to each VM and each job, so operators (and tests) can
see outcomes and reasons; and which events were handed on, so duplicate deliveries are dropped cheaply."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..instants import now_text
from .tables import OnFirstUse

BATCH_THREADS = 8  # record_many's batches in flight at once


def row_key(value: str) -> str:
    """Table keys can't hold '/', '\\', '#', '?': a stable digest of the (lower-case) id."""
    return hashlib.sha256(value.lower().encode()).hexdigest()[:40]


class Ledger(OnFirstUse):

    def delivered(self, event_key: str) -> bool:
        """Whether a delivery of this event was already handed on (Event Grid delivers at least once)."""
        from azure.core.exceptions import ResourceNotFoundError

        self._ensure()
        try:
            self.table.get_entity("event", row_key(event_key), select=["eventId"])
        except ResourceNotFoundError:
            return False
        return True

    def record_delivery(self, event_key: str) -> None:
        """Record an event as handed on: only once its work is safely queued, so that a delivery
        that failed half-way is taken again when Event Grid retries it."""
        self._ensure()
        self.table.upsert_entity({"PartitionKey": "event", "RowKey": row_key(event_key), "eventId": event_key,
                                  "seen": now_text()})

    def record_vm(self, vm_id: str, outcome: str, detail: dict[str, Any], event_id: str | None = None) -> None:
        self._ensure()
        self.table.upsert_entity({
            "PartitionKey": "vm", "RowKey": row_key(vm_id), "vmId": vm_id.lower(), "outcome": outcome,
            "detail": json.dumps(detail, sort_keys=True), "eventId": event_id or "",
            "updated": now_text(),
        })

    def record(self, partition: str, key: str, fields: dict[str, Any]) -> None:
        """One row per (run, item): what was decided or done, and why."""
        self._ensure()
        self.table.upsert_entity({"PartitionKey": partition, "RowKey": row_key(key), "item": key, **fields,
                                  "updated": now_text()})

    def record_many(self, partition: str, items: list[tuple[str, dict[str, Any]]]) -> None:
        """``record`` for many rows of one partition, in batches of 100 (one round trip each, side by side)."""
        self._ensure()
        updated = now_text()
        rows = [("upsert", {"PartitionKey": partition, "RowKey": row_key(key), "item": key, **fields, "updated": updated})
                for key, fields in dict(items).items()]  # a batch may not touch a row twice
        batches = [rows[start:start + 100] for start in range(0, len(rows), 100)]
        if len(batches) <= 1:
            for batch in batches:
                self.table.submit_transaction(batch)
            return
        from concurrent.futures import ThreadPoolExecutor

        # Side by side: each batch is its own transaction on rows no other batch touches (3,000 rows
        # one after the other held a slot's planning 4.5 s).
        with ThreadPoolExecutor(min(BATCH_THREADS, len(batches))) as pool:
            list(pool.map(self.table.submit_transaction, batches))

    def claim(self, partition: str, key: str, owner: str, now: float, stale_after: float) -> bool:
        """Whether ``owner`` holds the claim on ``key`` (to make something only one of several racing jobs may
        write): claimed now (an insert, which only one racer's succeeds), held already (the owner's step again), or
        taken over from a claim older than ``stale_after`` seconds (its owner died before writing: an update on the
        row's ETag, which only one taker's succeeds)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        self._ensure()
        row = {"PartitionKey": partition, "RowKey": row_key(key), "item": key, "owner": owner, "claimed": float(now)}
        try:
            self.table.create_entity(row)
            return True
        except ResourceExistsError:
            pass
        try:
            found = self.table.get_entity(partition, row_key(key))
        except ResourceNotFoundError:
            return False  # released between the two calls: looked at again by the caller's next step
        if found.get("owner") == owner:
            return True
        if now - float(found.get("claimed") or 0) <= stale_after:
            return False
        try:
            self.table.update_entity(row, mode=UpdateMode.REPLACE, etag=found.metadata["etag"],
                                     match_condition=MatchConditions.IfNotModified)
        except HttpResponseError:  # another taker was first (412), or the row went (404)
            return False
        return True

    def get(self, partition: str, key: str) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        self._ensure()
        try:
            return dict(self.table.get_entity(partition, row_key(key)))
        except ResourceNotFoundError:
            return None

    def delete(self, partition: str, key: str) -> None:
        self._ensure()
        self.table.delete_entity(partition, row_key(key))

    def rows(self, partition: str, where: str = "", select: list[str] | None = None) -> list[dict[str, Any]]:
        """A partition's rows (``where``: an extra OData condition on fields written by us)."""
        self._ensure()
        query = f"PartitionKey eq '{partition}'" + (f" and {where}" if where else "")
        return [dict(e) for e in self.table.query_entities(query, select=select)]

    def existing_rows(self, partition: str, select: list[str] | None = None) -> list[dict[str, Any]]:
        """``rows``, without making the table: none when it is not there yet (a read that writes nothing)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return [dict(e) for e in self.table.query_entities(f"PartitionKey eq '{partition}'", select=select)]
        except ResourceNotFoundError:
            return []

    def rows_between(self, first: str, last: str, where: str = "") -> list[dict[str, Any]]:
        """Rows of every partition from ``first`` up to (not including) ``last`` (``where``: a condition on fields
        written by us); none when the table is not there yet (a read that writes nothing)."""
        from azure.core.exceptions import ResourceNotFoundError

        query = f"PartitionKey ge '{first}' and PartitionKey lt '{last}'" + (f" and {where}" if where else "")
        try:
            return [dict(e) for e in self.table.query_entities(query)]
        except ResourceNotFoundError:
            return []

    def vm(self, vm_id: str) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        self._ensure()
        try:
            return dict(self.table.get_entity("vm", row_key(vm_id)))
        except ResourceNotFoundError:
            return None

    def vms(self) -> list[dict[str, Any]]:
        self._ensure()
        return [dict(e) for e in self.table.query_entities("PartitionKey eq 'vm'")]
