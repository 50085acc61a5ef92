"""Failovers and vmkeeper's recovery plans as rows of one Storage table (VMKEEPER_FAILOVER_TABLE).

- partition ``failover``: one row per failover asked through the API, its state the single truth the API reads and
  the worker advances; every change conditional on the row's ETag (two deliveries of a message never both win).
  States: ``pending`` (accepted, no step begun) → ``running`` → ``succeeded`` | ``failed``.
- partition ``plan``: one row per recovery plan vmkeeper made — written before the plan's create is sent — so a
  plan of that name vmkeeper did not make is told apart (ASR's plans carry no tags) and never changed; and the last
  sweep's word on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..azure.ledger import row_key
from ..azure.tables import OnFirstUse
from ..instants import now_text

FAILOVER, PLAN = "failover", "plan"
PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"
TERMINAL = (SUCCEEDED, FAILED)
STEPS = ("send", "follow_job")  # the action sent to Site Recovery; its job followed to the end
_JSON = ("request", "target", "steps", "context", "job", "error")


class Changed(Exception):
    """Someone else changed the row first (its ETag moved)."""


@dataclass
class Record:
    id: str
    state: str
    request: dict[str, Any]
    target: dict[str, Any]  # what the failover acts on, its ASR operation and input, the boot order (service.Prepared)
    principal: str
    created_at: str
    updated_at: str = ""
    body_hash: str = ""
    queued: bool = False
    steps: list[dict[str, Any]] = field(default_factory=list)  # {"name", "started_at", "finished_at", "seconds"}
    context: dict[str, Any] = field(default_factory=dict)  # what a step remembers across deliveries
    job: dict[str, Any] = field(default_factory=dict)  # Site Recovery's job as last read: id, state, tasks
    error: dict[str, Any] | None = None
    etag: str | None = None

    @property
    def done_names(self) -> list[str]:
        return [s["name"] for s in self.steps if s.get("finished_at")]

    @property
    def next_step(self) -> str | None:
        return next((s for s in STEPS if s not in set(self.done_names)), None)

    @property
    def percent(self) -> int:
        if self.state == SUCCEEDED:
            return 100
        tasks = self.job.get("tasks") or []
        if tasks and "send" in self.done_names:  # the job's tasks are the groups (a plan) or the stages (a VM)
            return min(99, 10 + int(90 * sum(1 for t in tasks if t.get("state") == "Succeeded") / len(tasks)))
        return 10 * len(self.done_names)

    def to_entity(self) -> dict[str, Any]:
        entity = {"PartitionKey": FAILOVER, "RowKey": self.id, "state": self.state, "principal": self.principal,
                  "created_at": self.created_at, "updated_at": self.updated_at or now_text(),
                  "body_hash": self.body_hash, "queued": self.queued}
        for name in _JSON:
            entity[name] = json.dumps(getattr(self, name))
        return entity

    @classmethod
    def from_entity(cls, entity: Any) -> Record:
        doc = {name: json.loads(entity.get(name) or "null") for name in _JSON}
        etag = getattr(entity, "metadata", {}).get("etag") if hasattr(entity, "metadata") else None
        return cls(entity["RowKey"], entity["state"], doc["request"] or {}, doc["target"] or {},
                   entity.get("principal", ""), entity.get("created_at", ""), entity.get("updated_at", ""),
                   entity.get("body_hash", ""), bool(entity.get("queued")), doc["steps"] or [], doc["context"] or {},
                   doc["job"] or {}, doc["error"], etag)

    def to_json(self) -> dict[str, Any]:
        """The failover as the API shows it."""
        steps = []
        for name in STEPS:
            ran = next((s for s in self.steps if s["name"] == name), None)
            state = "done" if ran and ran.get("finished_at") else ("running" if ran else "waiting")
            if self.state == FAILED and state != "done":
                state = "failed" if ran else "skipped"
            steps.append({"name": name, "state": state, "started_at": (ran or {}).get("started_at"),
                          "finished_at": (ran or {}).get("finished_at"), "seconds": (ran or {}).get("seconds")})
        t = self.target
        return {"id": self.id, "state": self.state, "created_at": self.created_at, "updated_at": self.updated_at,
                "principal": self.principal, "request": self.request,
                "target": {k: t.get(k) for k in ("kind", "app", "plan", "plan_id", "item_id", "vm", "vault_id")},
                "operation": t.get("operation"), "direction": t.get("direction"), "order": t.get("order") or [],
                "steps": steps, "percent": self.percent,
                "job": {"id": self.job.get("id"), "state": self.job.get("state"), "tasks": self.job.get("tasks") or []},
                "error": self.error, "links": {"self": f"/api/failovers/{self.id}"}}


class Records(OnFirstUse):

    def get(self, failover_id: str) -> Record | None:
        from azure.core.exceptions import ResourceNotFoundError

        self._ensure()
        try:
            return Record.from_entity(self.table.get_entity(FAILOVER, failover_id))
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

    def change(self, failover_id: str, edit: Callable[[Record], bool], tries: int = 5) -> Record | None:
        """Read, edit, save, again if someone else wrote meanwhile; ``edit`` returns False to leave it."""
        for _ in range(tries):
            record = self.get(failover_id)
            if record is None or not edit(record):
                return record
            try:
                return self.save(record)
            except Changed:
                continue
        raise Changed(failover_id)

    def unfinished(self) -> list[Record]:
        """Failovers not ended yet: what a new one, and the plans' sweep, must not cross."""
        self._ensure()
        rows = self.table.query_entities(f"PartitionKey eq '{FAILOVER}' and state ne '{SUCCEEDED}' "
                                         f"and state ne '{FAILED}'")
        return [Record.from_entity(r) for r in rows]

    # --- the plans vmkeeper made ----------------------------------------------------------------------
    def plan_row(self, plan_id: str) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        self._ensure()
        try:
            return dict(self.table.get_entity(PLAN, row_key(plan_id)))
        except ResourceNotFoundError:
            return None

    def claim_plan(self, plan_id: str, app: str) -> None:
        """Written before the plan's create is sent: the plan is vmkeeper's from then on."""
        self._ensure()
        self.table.upsert_entity({"PartitionKey": PLAN, "RowKey": row_key(plan_id), "plan": plan_id, "app": app,
                                  "claimed": now_text()})

    def note_plan(self, plan_id: str, fields: dict[str, Any]) -> None:
        """The last sweep's word on a plan of vmkeeper's (merged: the claim stays)."""
        from azure.data.tables import UpdateMode

        self._ensure()
        self.table.upsert_entity({"PartitionKey": PLAN, "RowKey": row_key(plan_id), **fields, "noted": now_text()},
                                 mode=UpdateMode.MERGE)

    def plan_rows(self) -> list[dict[str, Any]]:
        self._ensure()
        return [dict(r) for r in self.table.query_entities(f"PartitionKey eq '{PLAN}'")]
