"""Restores as rows of a Storage table: one row per restore, its state the single truth the API reads
and the worker advances. Every change is conditional on the row's ETag, so a cancel and a worker (or
two deliveries of one message) never both win.

States: ``pending`` (accepted, no step begun) → ``running`` → ``succeeded`` | ``failed``; ``pending`` →
``cancelled`` by DELETE. A file recovery or an export (shared/restore/lease.py) is ``ready`` once made, and
``ending`` while its end steps undo it (done, expired, or its making failed), before it ends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..azure.tables import OnFirstUse
from ..instants import now_text

PARTITION = "restore"
PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = "pending", "running", "succeeded", "failed", "cancelled"
READY, ENDING = "ready", "ending"  # a file recovery's or an export's (shared/restore/lease.py)
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)
_JSON = ("request", "plan", "steps", "context", "created", "error")


class Changed(Exception):
    """Someone else changed the row first (its ETag moved)."""


@dataclass
class Record:
    id: str
    state: str
    request: dict[str, Any]
    plan: dict[str, Any]
    principal: str
    created_at: str
    updated_at: str = ""
    body_hash: str = ""  # of the request that made it: an Idempotency-Key reused for another body is refused
    queued: bool = False  # the first message is on the queue
    steps: list[dict[str, Any]] = field(default_factory=list)  # {"name", "started_at", "finished_at", "seconds"}
    context: dict[str, Any] = field(default_factory=dict)  # what a step must remember across deliveries
    created: list[str] = field(default_factory=list)  # resource ids made (or found made) so far
    error: dict[str, Any] | None = None
    etag: str | None = None

    @property
    def undo(self) -> list[str]:
        """The steps undoing a failed restore (plan.undo_steps), once it failed; else none."""
        return list((self.context.get("undo") or {}).get("steps") or [])

    @property
    def end_steps(self) -> list[str]:
        """A leased restore's end steps (shared/restore/lease.py); none for any other."""
        return list(((self.plan or {}).get("lease") or {}).get("end_steps") or [])

    @property
    def ending(self) -> dict[str, Any] | None:
        return self.context.get("ending")

    @property
    def step_names(self) -> list[str]:
        undo = self.undo
        return [s for s in self.plan.get("steps") or [] if s not in undo] + undo + self.end_steps

    @property
    def done_names(self) -> list[str]:
        return [s["name"] for s in self.steps if s.get("finished_at")]

    @property
    def next_step(self) -> str | None:
        done = set(self.done_names)
        if self.ending is not None:  # undoing what it made: only the end steps now
            return next((s for s in self.end_steps if s not in done), None)
        made = [s for s in (self.undo or self.step_names) if s not in self.end_steps]
        return next((s for s in made if s not in done), None)

    @property
    def percent(self) -> int:
        total = len(self.step_names)
        if self.state == SUCCEEDED:
            return 100
        return int(100 * len(self.done_names) / total) if total else 0

    def to_entity(self) -> dict[str, Any]:
        entity = {"PartitionKey": PARTITION, "RowKey": self.id, "state": self.state, "principal": self.principal,
                  "created_at": self.created_at, "updated_at": self.updated_at or now_text(),
                  "body_hash": self.body_hash, "queued": self.queued}
        for name in _JSON:
            entity[name] = json.dumps(getattr(self, name))
        return entity

    @classmethod
    def from_entity(cls, entity: Any) -> Record:
        doc = {name: json.loads(entity.get(name) or "null") for name in _JSON}
        etag = getattr(entity, "metadata", {}).get("etag") if hasattr(entity, "metadata") else None
        return cls(entity["RowKey"], entity["state"], doc["request"] or {}, doc["plan"] or {}, entity.get("principal", ""),
                   entity.get("created_at", ""), entity.get("updated_at", ""), entity.get("body_hash", ""),
                   bool(entity.get("queued")), doc["steps"] or [], doc["context"] or {}, doc["created"] or [],
                   doc["error"], etag)

    def to_json(self) -> dict[str, Any]:
        """The restore as the API shows it."""
        done = set(self.done_names)
        steps = []
        for name in self.step_names:
            ran = next((s for s in self.steps if s["name"] == name), None)
            state = "done" if name in done else ("running" if ran else "waiting")
            if self.state in (FAILED, CANCELLED) and state != "done":
                state = "failed" if ran and self.state == FAILED else "skipped"
            steps.append({"name": name, "state": state, "started_at": (ran or {}).get("started_at"),
                          "finished_at": (ran or {}).get("finished_at"), "seconds": (ran or {}).get("seconds")})
        out = {"id": self.id, "state": self.state, "created_at": self.created_at, "updated_at": self.updated_at,
               "principal": self.principal, "request": self.request, "steps": steps, "steps_done": len(done),
               "percent": self.percent, "resources": list(self.created), "plan": self.plan, "error": self.error,
               "links": {"self": f"/api/restores/{self.id}"}}
        lease = (self.plan or {}).get("lease")
        if lease:  # a file recovery or an export: until when, what each LUN carries, how it ended (never a SAS)
            ending = self.ending or {}
            out["lease"] = {"expires_at": lease.get("expires_at"), "hours": lease.get("hours"),
                            "ending": {"why": ending["why"], "at": ending.get("at")} if ending else None,
                            "access_taken_at": self.context.get("access_taken_at"),
                            "carries": (self.plan or {}).get("carries") or []}
            if lease.get("script"):  # a vault point's files: where the script is taken, and whose session it was
                out["lease"]["script"] = lease["script"]
                out["lease"]["session_left_active"] = self.context.get("ilr_left_active")
        return out


class Records(OnFirstUse):

    def get(self, restore_id: str) -> Record | None:
        from azure.core.exceptions import ResourceNotFoundError

        self._ensure()
        try:
            return Record.from_entity(self.table.get_entity(PARTITION, restore_id))
        except ResourceNotFoundError:
            return None

    def insert(self, record: Record) -> Record | None:
        """Adds the row; None if a row with its id is there already (an Idempotency-Key seen before)."""
        from azure.core.exceptions import ResourceExistsError

        self._ensure()
        record.updated_at = record.created_at
        try:
            meta = self.table.create_entity(record.to_entity())
        except ResourceExistsError:
            return None
        record.etag = (meta or {}).get("etag")
        return record

    def save(self, record: Record) -> Record:
        """Writes the record if nobody changed it since it was read; Changed otherwise."""
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError, ResourceModifiedError
        from azure.data.tables import UpdateMode

        record.updated_at = now_text()
        try:
            meta = self.table.update_entity(record.to_entity(), mode=UpdateMode.REPLACE, etag=record.etag,
                                            match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError:
            raise Changed(record.id) from None
        except HttpResponseError as exc:
            if exc.status_code == 412:
                raise Changed(record.id) from None
            raise
        record.etag = (meta or {}).get("etag")
        return record

    def change(self, restore_id: str, edit: Callable[[Record], bool], tries: int = 5) -> Record | None:
        """Read, edit, save, again if someone else wrote meanwhile; ``edit`` returns False to leave it."""
        for _ in range(tries):
            record = self.get(restore_id)
            if record is None or not edit(record):
                return record
            try:
                return self.save(record)
            except Changed:
                continue
        raise Changed(restore_id)

    def recent(self) -> list[Record]:
        """Every restore, newest first."""
        self._ensure()
        rows = self.table.query_entities(f"PartitionKey eq '{PARTITION}'")
        return sorted((Record.from_entity(r) for r in rows), key=lambda r: (r.created_at, r.id), reverse=True)
