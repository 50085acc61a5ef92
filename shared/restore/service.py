"""On-demand restores: the catalogue of a VM's recovery points, and restores accepted, planned,
recorded and run step by step from a queue.

A restore is a row (shared/restore/records.py) and a message that says "advance restore X". Each
delivery runs the next steps of the plan (shared/restore/steps.py), saving the row after every step,
so a crash anywhere resumes at the step that was running, and that step, being idempotent, finds
what it had already made. Short waits ARM advises are slept through in place (a restore is one
operator's request, not a fleet); longer ones go back to the queue with their delay.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..access import ParsedId, Principal, Scopes
from ..alerts import events as A
from ..instants import format_instant, parse_instant
from ..ports import Arm, Queue
from ..queue import messages, runner
from ..queue.messages import Done, Failed, Outcome, Retry
from ..settings import RestoreSettings
from . import lease as L
from . import plan as P
from .reads import Reader
from .records import (
    CANCELLED,
    ENDING,
    FAILED,
    PENDING,
    READY,
    RUNNING,
    SUCCEEDED,
    TERMINAL,
    Changed,
    Record,
    Records,
)
from .request import BadRequest, FieldProblem, RestoreRequest
from .steps import Fail, Next, RestoreSteps, Wait, describe_vm

log = logging.getLogger("vmkeeper.restore")
KIND = "restore"
INLINE_WAIT = 5  # seconds: ARM's advice up to this is waited for here, longer goes back to the queue
INLINE_BUDGET = 25.0  # seconds one delivery may spend on a restore before it yields (well inside the message's lease)
STEP_TIMEOUT = 24 * 3600.0  # seconds a step may take (a Backup restore job runs for hours) before the restore fails
INTERNAL = "vmkeeper-drill/"  # principals of restores vmkeeper makes itself (a DR drill): their drill tells the outcome
ZERO_WAITS = 20  # steps that only note something before acting, per delivery (a loop's guard)


class NotFound(Exception):
    pass


class StateConflict(Exception):
    """The restore is not in a state that allows it (HTTP 409)."""


class KeyReused(Exception):
    """An Idempotency-Key came back with another body (HTTP 422)."""


class NotYours(Exception):
    """An export's SAS is handed to the caller who asked for the export, and no one else (HTTP 403)."""


class Refused(Exception):
    """A restore vmkeeper asked of itself (``Restores.request``) that cannot be made: the reason in words."""


class OutOfScope(Exception):
    """The plan writes to a resource group outside the allow-list (HTTP 403): the request's own ids were in it,
    but one the plan found in Azure (an os_disk target's old OS disk) is not."""

    def __init__(self, problems: list[FieldProblem]):
        super().__init__("; ".join(f"{p.field}: {p.detail}" for p in problems))
        self.problems = problems


def restore_id_for(principal: Principal, idempotency_key: str | None) -> str:
    """16 hex: derived from the caller and the key (the same key finds the same restore), else random."""
    if not idempotency_key:
        return secrets.token_hex(8)
    return hashlib.sha256(f"{principal.id.lower()}|{idempotency_key}".encode()).hexdigest()[:16]


class Restores:
    def __init__(self, settings: RestoreSettings, arm: Arm, queue: Queue, poison: Queue, records: Records,
                 *, alerts: Any = None, sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.scopes = Scopes.parse(settings.scopes)
        self.reader = Reader(arm, settings.vaults)
        self.arm = arm
        self.steps = RestoreSteps(arm)
        self.queue, self.poison, self.records = queue, poison, records
        self.sleep, self.monotonic = sleep, monotonic
        self.alerts = alerts  # shared/alerts/outbox.py Alerts, or None

    # --- reading ----------------------------------------------------------------------------------
    def in_fleet(self, vm: ParsedId) -> bool:
        return vm.subscription in self.settings.subscriptions

    def catalogue(self, vm: ParsedId) -> dict[str, Any]:
        source = self.reader.source_vm(vm)
        points = self.reader.catalogue(vm)
        return {"vm": {"id": vm.id, "exists": source is not None,
                       "size": source.hardware_profile.vm_size if source is not None and source.hardware_profile else None},
                "value": [{**p.to_json(), "targets": targets_for(p.kind)} for p in points]}

    def get(self, restore_id: str) -> Record:
        record = self.records.get(restore_id)
        if record is None:
            raise NotFound(restore_id)
        return record

    def recent(self) -> list[Record]:
        return self.records.recent()

    # --- accepting --------------------------------------------------------------------------------
    def prepare(self, restore_id: str, request: RestoreRequest, scopes: Scopes | None = None) -> P.Plan:
        """The plan, checked against Azure as it is now: BadRequest / Conflict when it can't be; with ``scopes``,
        OutOfScope when it would write outside them."""
        wanted = request.recovery_point.lower()
        point = next((p for p in self.reader.catalogue(request.vm) if p.id.lower() == wanted), None)
        if point is None:
            raise BadRequest([FieldProblem("recovery_point", f"not in the catalogue of {request.vm.id}")])
        if point.kind != request.source_kind:
            raise BadRequest([FieldProblem("recovery_point", "names another kind of point than its catalogue entry")])
        if request.source_kind == "vault" and request.target_type == "files":
            self._one_session(restore_id, request)
        if request.source_kind == "vault" and request.target_type in P.RECOVERY_TYPES:
            self._not_guarded(point.extra["vault_id"])
        plan = P.make(restore_id, request, point, self.reader.facts(request, point), datetime.now(UTC))
        if scopes is not None:
            outside = [FieldProblem(name, f"{group} is not in the allow-list (it holds {resource_id})")
                       for name, resource_id in plan.writes() if (group := _outside(scopes, resource_id))]
            if outside:
                raise OutOfScope(outside)
        return plan

    def _not_guarded(self, vault_id: str) -> None:
        """A vault whose Resource Guard protects restores: Azure Backup would refuse vmkeeper's (it holds nothing on
        the guard, by design). Conflict now, naming the guard, rather than a restore accepted that must fail."""
        from ..azure.guards import TRIGGER_RESTORE, refusal, vault_guard
        from .plan import Conflict

        guard = vault_guard(self.arm, vault_id)
        if guard is not None and guard.protects(TRIGGER_RESTORE):
            raise Conflict("recovery_point", refusal(vault_id, guard, TRIGGER_RESTORE, "a restore from this vault point"))

    def _one_session(self, restore_id: str, request: RestoreRequest) -> None:
        """Azure Backup keeps one file recovery session per recovery point: a second vmkeeper restore would join
        it and lose it when the first one's end revokes it. Conflict, naming the restore that holds it."""
        from .plan import Conflict
        from .records import ENDING, PENDING, READY, RUNNING

        wanted = request.recovery_point.lower()
        for other in self.records.recent():
            if other.id != restore_id and other.state in (PENDING, RUNNING, READY, ENDING) \
                    and str(other.request.get("recovery_point") or "").lower() == wanted \
                    and (other.request.get("target") or {}).get("type") == "files":
                raise Conflict("recovery_point", f"restore {other.id} holds this point's file recovery session "
                               f"({other.state}): take its script (POST /api/restores/{other.id}/script) or end it "
                               f"(DELETE /api/restores/{other.id}) first")

    def submit(self, principal: Principal, request: RestoreRequest, body_hash: str,
               idempotency_key: str | None = None, scopes: Scopes | None = None) -> tuple[Record, bool]:
        """(the restore, whether it is new). The row is written before the message is sent, and marked
        ``queued`` after: a POST repeated with its Idempotency-Key sends a message the first one could not.
        ``scopes``: the allow-list every write of the plan must be in (the API's; a drill writes to its own group)."""
        restore_id = restore_id_for(principal, idempotency_key)
        if idempotency_key:
            existing = self.records.get(restore_id)
            if existing is not None:
                return self._again(existing, body_hash), False
        plan = self.prepare(restore_id, request, scopes)
        record = Record(restore_id, PENDING, request.to_json(), plan.to_json(), principal.id,
                        format_instant(datetime.now(UTC)), body_hash=body_hash)
        if self.records.insert(record) is None:  # the same key, at the same moment
            return self._again(self.get(restore_id), body_hash), False
        self._enqueue(record)
        return record, True

    def request(self, principal: Principal, body: dict[str, Any], idempotency_key: str) -> tuple[Record, bool]:
        """The entry point for a restore vmkeeper asks of itself (a DR drill): the body the API takes, parsed,
        planned and submitted as the API's are. Refused, with the reason, when it cannot be made."""
        from .plan import Conflict
        from .request import parse

        try:
            return self.submit(principal, parse(body), body_hash(body), idempotency_key)
        except (BadRequest, Conflict, KeyReused) as exc:
            raise Refused(f"{type(exc).__name__}: {exc}") from exc

    def _again(self, record: Record, body_hash: str) -> Record:
        if record.body_hash != body_hash:
            raise KeyReused(record.id)
        if not record.queued and record.state == PENDING:
            self._enqueue(record)
        return record

    def _enqueue(self, record: Record) -> None:
        self.queue.send_message(messages.encode({"v": 1, "kind": KIND, "restore_id": record.id}))
        self.records.change(record.id, mark_queued)
        record.queued = True

    def cancel(self, restore_id: str) -> Record:
        """Cancels a restore no step of which has begun; StateConflict once one has. A file recovery or an export:
        the operator is done with it — cancelled if nothing was begun, else ended (its end steps undo what it made)."""
        record = self.get(restore_id)
        if record.end_steps:
            return self.done(restore_id)

        def edit(r: Record) -> bool:
            if r.state == CANCELLED:
                return False
            if r.state != PENDING or r.steps:
                raise StateConflict(f"restore {r.id} is {r.state}: only a pending restore can be cancelled")
            r.state = CANCELLED
            r.error = {"code": "Cancelled", "message": "cancelled before any step began"}
            return True
        record = self.records.change(restore_id, edit)
        if record is None:
            raise NotFound(restore_id)
        return record

    # --- file recoveries and exports (shared/restore/lease.py) --------------------------------------
    def done(self, restore_id: str) -> Record:
        """The operator is done: ``ending`` (and a message to run its end steps), or cancelled when nothing began."""
        now = datetime.now(UTC)
        decided = "nothing"

        def edit(r: Record) -> bool:
            nonlocal decided
            decided = L.on_done(L.view(r))
            if decided == "cancel":
                r.state = CANCELLED
                r.error = {"code": "Cancelled", "message": "done before any step began: nothing was made"}
            elif decided == "end":
                r.context["ending"] = L.ending(L.DONE, now)
                r.state = ENDING
            return decided != "nothing"
        record = self.records.change(restore_id, edit)
        if record is None:
            raise NotFound(restore_id)
        if decided == "end":
            self._send(record.id)
        return record

    def sweep_leases(self, now: datetime) -> dict[str, int]:
        """The timer: every file recovery and export past its expiry is ended, and one ending (or being made) that
        nobody has moved for a while is sent to the worker again. Reads the restores table, nothing held in memory:
        it ends what a crashed worker left."""
        tally = {"expired": 0, "redriven": 0}
        for record in self.records.recent():
            if not record.end_steps:
                continue
            action = L.on_sweep(L.view(record), now)
            if action == "expire":
                changed = self._expire(record.id, now)
                if changed is not None:
                    tally["expired"] += 1
                    self._send(record.id)
            elif action == "redrive":
                tally["redriven"] += 1
                self._send(record.id)
        return tally

    def _expire(self, restore_id: str, now: datetime) -> Record | None:
        expired = False

        def edit(r: Record) -> bool:
            nonlocal expired
            expired = L.on_sweep(L.view(r), now) == "expire"
            if expired:
                r.context["ending"] = L.ending(L.EXPIRED, now)
                r.state = ENDING
            return expired
        record = self.records.change(restore_id, edit)
        if expired and record is not None:
            self._lease_alert(A.RESTORE_FILES_EXPIRED, record)
            return record
        return None

    def take_access(self, principal: Principal, restore_id: str) -> dict[str, Any]:
        """An export's read SAS, handed once to the caller who asked for the export: granted now (beginGetAccess,
        Read, until the export's expiry), never stored nor logged. Noted as taken before it is granted (ETag-guarded:
        two calls never both get one); a grant that did not happen is un-noted."""
        record = self.get(restore_id)
        if record.plan.get("target_type") != "export":
            raise StateConflict(f"restore {restore_id} is not an export: only an export's disk has a SAS")
        if record.principal.lower() != principal.id.lower():
            raise NotYours(restore_id)
        now = datetime.now(UTC)
        expires = parse_instant((record.plan.get("lease") or {}).get("expires_at"))
        seconds = int((expires - now).total_seconds()) if expires else 0

        def edit(r: Record) -> bool:
            if r.state != READY or r.ending is not None:
                raise StateConflict(f"restore {r.id} is {r.state}: a SAS is handed out while the export is ready")
            if r.context.get("access_taken_at"):
                raise StateConflict(f"the SAS of export {r.id} was handed out at {r.context['access_taken_at']}, once: "
                                    "end this export (DELETE) and make another for a new one")
            if seconds <= 0:
                raise StateConflict(f"export {r.id} has expired")
            r.context["access_taken_at"] = format_instant(now)
            return True
        self.records.change(restore_id, edit)
        disk = P.Plan.from_json(record.plan).disks[0]
        try:
            sas = self.steps.grant_read(restore_id, disk["id"], seconds)
        except Exception:
            if not self.steps.has_access(disk["id"]):  # nothing was granted: the caller may ask again
                def undo(r: Record) -> bool:
                    r.context.pop("access_taken_at", None)
                    return True
                self.records.change(restore_id, undo)
            raise
        log.info("restore %s: a read SAS on %s handed to %s until %s", restore_id, disk["name"], principal.id,
                 format_instant(expires))
        return {"access_sas": sas, "expires_at": format_instant(expires), "disk": disk["id"],
                "duration_seconds": seconds}

    def scripts(self, principal: Principal, restore_id: str) -> dict[str, Any]:
        """A vault file recovery's mount scripts, fetched from Azure Backup now for a Restore.Operator (ilr.scripts
        refuses anyone else before asking Azure anything), to be sent in this one answer: never stored, never logged
        (what is logged is who took it)."""
        from . import ilr

        record = self.get(restore_id)
        plan = record.plan or {}
        if plan.get("source_kind") != "vault" or plan.get("target_type") != "files":
            raise StateConflict(f"restore {restore_id} is not a file recovery from a vault point: only that has a "
                                "mount script")
        if record.state != READY or record.ending is not None:
            raise StateConflict(f"restore {restore_id} is {record.state}: its mount script is given while it is ready")
        try:
            found = ilr.scripts(principal, self.arm, plan["vault"]["point_id"], record.context)
        except (ilr.Gone, ilr.NotYet) as exc:
            raise StateConflict(str(exc)) from None
        lease = plan.get("lease") or {}
        log.info("restore %s: its mount script(s) handed to %s", restore_id, principal.id)
        return {"restore_id": restore_id, "expires_at": lease.get("expires_at"),
                "run_on": (plan.get("vm") or {}).get("id"), "os_type": plan["vault"].get("os_type"),
                "scripts": [{"name": s.name, "os_type": s.os_type, "extension": s.extension,
                             **({"content": s.content} if s.content else {}), **({"url": s.url} if s.url else {})}
                            for s in found]}

    def _lease_alert(self, kind: str, record: Record, extra: dict[str, Any] | None = None) -> None:
        """restore.files.ready / .expired / .overdue: what, where, until when; never a SAS or a script."""
        if self.alerts is None or record.principal.startswith(INTERNAL):
            return
        plan = record.plan or {}
        data = {"restore_id": record.id, "target_type": plan.get("target_type"), "state": record.state,
                "expires_at": (plan.get("lease") or {}).get("expires_at"), "vm": (plan.get("vm") or {}).get("id"),
                "carries": plan.get("carries") or [], **(extra or {})}
        if (plan.get("lease") or {}).get("script"):  # where to take it, never the script
            data["script"] = plan["lease"]["script"]
        self.alerts.raise_(A.Alert(kind, str(record.request.get("vm", "")).lower() or f"restore {record.id}", record.id,
                                   data))

    def _send(self, restore_id: str) -> None:
        self.queue.send_message(messages.encode({"v": 1, "kind": KIND, "restore_id": restore_id}))

    # --- running ------------------------------------------------------------------------------------
    def handle_message(self, body: bytes | str) -> str:
        return runner.run(body, kind=KIND, step=self.advance, queue=self.queue, poison=self.poison,
                          on_done=lambda job, done: log.info("restore %s: %s", job.get("restore_id"), done.detail),
                          on_failed=self._give_up, required=("restore_id",), alert=self._poisoned)

    def _poisoned(self, cause: str, job: Any, reason: str) -> None:
        """A job of a known restore that gave up ends the restore (restore.failed says so); anything
        else poisoned is a job nobody could process."""
        if self.alerts is None:
            return
        record = self.records.get(job["restore_id"]) if isinstance(job, dict) and isinstance(
            job.get("restore_id"), str) else None
        if record is not None and record.state in TERMINAL:
            self._settled(record)
        elif record is not None and record.end_steps:
            log.warning("restore %s: gave up a delivery; its end is driven by the timer", record.id)
        elif record is not None and record.undo:
            log.warning("restore %s: gave up, being undone (restore.failed follows)", record.id)
        else:
            self.alerts.raise_(A.for_poisoning(cause, job, reason, self.settings.queue))

    def _settled(self, record: Record) -> None:
        """The alert of a restore that ended; raised by whichever delivery sees it ended (one event per restore)."""
        if self.alerts is None or record.state not in (SUCCEEDED, FAILED) or record.principal.startswith(INTERNAL):
            return
        self.alerts.raise_(A.Alert(A.RESTORE_SUCCEEDED if record.state == SUCCEEDED else A.RESTORE_FAILED,
                                   str(record.request.get("vm", "")).lower() or f"restore {record.id}", record.id,
                                   {"restore_id": record.id, "state": record.state, "error": record.error,
                                    "created": record.created, "target_type": (record.request.get("target") or {}).get("type")}))

    def _undone(self, record: Record, failed: dict[str, Any] | None = None) -> dict[str, Any]:
        """The error of a restore whose failure was undone (or whose undo ``failed``): the first error, and the
        state the VM is in now, read from Azure."""
        first = (record.context.get("undo") or {}).get("error") or {}
        try:
            vm = self.steps.vm_state(P.Plan.from_json(record.plan))
        except Exception:  # noqa: BLE001  (the restore ends either way; the message says the state is unknown)
            log.exception("restore %s: could not read the VM after undoing", record.id)
            vm = None
        message = f"{first.get('message', 'failed')}. {'Undoing it failed: ' + failed['message'] + '. ' if failed else ''}" \
                  f"{describe_vm(vm, record.context)}"
        return {**first, "message": message[:2000], "vm": vm}

    def _give_up(self, job: dict[str, Any], reason: str) -> None:
        undoing = False

        def edit(r: Record) -> bool:
            nonlocal undoing
            undoing = False  # of this read (change() reads again when someone wrote first)
            if r.state in TERMINAL:
                return False
            error = {"code": "GaveUp", "message": reason[:2000], "step": r.next_step}
            if r.end_steps:  # a file recovery or an export never ends with what it made left behind
                if r.ending is not None:
                    r.context["end_failure"] = error
                    return True
                r.context["ending"], r.state, undoing = L.ending(L.FAILED_MAKING, datetime.now(UTC), error), ENDING, True
                return True
            undo = P.undo_steps(r.plan.get("target_type", ""), r.next_step, r.context) if not r.undo else ()
            if undo:  # the VM may be left changed: undo first, on a message of its own (errors counted afresh)
                r.context["undo"], undoing = {"steps": list(undo), "error": error}, True
                return True
            r.state, r.error = FAILED, error
            if r.undo:
                first = r.context["undo"]["error"]
                r.error = {**first, "message": f"{first['message']}. Undoing it gave up: {reason}. The VM's state is not "
                                               f"known: look at {(r.plan.get('vm') or {}).get('id')}"[:2000]}
            return True
        try:
            self.records.change(str(job.get("restore_id")), edit)
            if undoing:
                try:
                    self.queue.send_message(messages.encode({"v": 1, "kind": KIND, "restore_id": job["restore_id"]}))
                except Exception:  # noqa: BLE001  (no message, no undo: the restore ends failed, and says so)
                    log.exception("restore %s: could not queue its undo", job.get("restore_id"))
                    self._give_up(job, f"{reason}; its undo could not be queued")
        except Exception:  # noqa: BLE001  (the message keeps the reason in the poison queue either way)
            log.exception("restore %s: could not record the failure", job.get("restore_id"))

    def advance(self, job: dict[str, Any]) -> Outcome:
        restore_id = job["restore_id"]
        if not isinstance(restore_id, str):
            return Failed("message.restore_id: must be a string")
        record = self.records.get(restore_id)
        if record is None:
            return Failed(f"message.restore_id: no restore '{restore_id}'")
        began, zero_waits = self.monotonic(), 0
        try:
            while True:
                if record.state in TERMINAL:
                    self._settled(record)
                    return Done(KIND, {"restore": restore_id, "state": record.state})
                leased = bool(record.end_steps)
                step = record.next_step
                now = format_instant(datetime.now(UTC))
                move, arg = L.next_move(L.view(record), step, datetime.now(UTC)) if leased else ("run", "")
                if move == "expire":
                    record.context["ending"], record.state = L.ending(L.EXPIRED, datetime.now(UTC)), ENDING
                    self.records.save(record)
                    self._lease_alert(A.RESTORE_FILES_EXPIRED, record)
                    continue
                if move == "ready":  # made: ready until done or expired
                    if record.state != READY:
                        record.state = READY
                        self.records.save(record)
                        self._lease_alert(A.RESTORE_FILES_READY, record)
                    return Done(KIND, {"restore": restore_id, "state": READY})
                if move == "end":
                    record.state = arg
                    if record.state == FAILED:
                        record.error = record.ending.get("error") or {"code": "RestoreFailed", "message": "failed"}
                    self.records.save(record)
                    self._settled(record)
                    return Done(KIND, {"restore": restore_id, "state": record.state})
                if step is None:
                    undone = bool(record.undo)
                    record.state = FAILED if undone else SUCCEEDED
                    if undone:
                        record.error = self._undone(record)
                    self.records.save(record)
                    self._settled(record)
                    return Done(KIND, {"restore": restore_id, "state": record.state})
                if record.state == PENDING or not any(s["name"] == step for s in record.steps):
                    record.state = ENDING if record.ending is not None else RUNNING
                    if not any(s["name"] == step for s in record.steps):
                        record.steps.append({"name": step, "started_at": now, "finished_at": None, "seconds": None})
                    self.records.save(record)
                result = self.steps.run(step, restore_id, P.Plan.from_json(record.plan), record.context)
                started = parse_instant(next(s["started_at"] for s in record.steps if s["name"] == step))
                if isinstance(result, Wait) and started and (datetime.now(UTC) - started).total_seconds() > STEP_TIMEOUT:
                    result = Fail(f"{step} has not finished in {STEP_TIMEOUT / 3600:g} h: {result.note}", "StepTimedOut")
                if isinstance(result, Fail) and leased:
                    error = {"code": result.code, "message": result.reason, "step": step}
                    if L.on_fail(L.view(record)) == "undo":  # making failed: what was made is undone, then it ends failed
                        record.context["ending"], record.state = L.ending(L.FAILED_MAKING, datetime.now(UTC), error), ENDING
                        self.records.save(record)
                        continue
                    # Undoing failed: said once, tried again (nothing else ends it).
                    record.context.update(result.context)
                    record.context["end_failure"] = error
                    first = not record.context.get("end_alerted")
                    record.context["end_alerted"] = record.context.get("end_alerted") or now
                    self.records.save(record)
                    if first:
                        self._lease_alert(A.RESTORE_FILES_OVERDUE, record, {"error": error})
                    return Retry(L.END_RETRY_SECONDS, f"{step}: {result.reason}"[:500],
                                 {"attempt": job.get("attempt", 0) + 1})
                if isinstance(result, Fail):
                    error = {"code": result.code, "message": result.reason, "step": step}
                    if not record.undo and (undo := P.undo_steps(record.plan.get("target_type", ""), step,
                                                                 record.context)):
                        record.context["undo"] = {"steps": list(undo), "error": error}  # undone first, then failed
                        self.records.save(record)
                        continue
                    record.state = FAILED
                    record.error = self._undone(record, error) if record.undo else error
                    self.records.save(record)
                    self._settled(record)
                    return Done(KIND, {"restore": restore_id, "state": FAILED})
                record.context.update(result.context)
                if isinstance(result, Next):
                    entry = next(s for s in record.steps if s["name"] == step)
                    entry["finished_at"] = format_instant(datetime.now(UTC))
                    started = parse_instant(entry["started_at"])
                    entry["seconds"] = round((datetime.now(UTC) - started).total_seconds(), 3) if started else None
                    record.created += [i for i in result.created if i.lower() not in {c.lower() for c in record.created}]
                    self.records.save(record)
                    continue
                assert isinstance(result, Wait)
                if result.context:
                    self.records.save(record)
                if result.delay == 0:
                    zero_waits += 1
                    if zero_waits <= ZERO_WAITS:
                        continue
                if result.delay <= INLINE_WAIT and self.monotonic() - began + result.delay <= INLINE_BUDGET:
                    self.sleep(result.delay)
                    continue
                return Retry(max(1, result.delay), result.note, {"attempt": job.get("attempt", 0) + 1})
        except Changed:
            # Someone wrote first. A delivery advancing the restore leaves it running with a step: it goes on alone.
            # Still pending without a step, the write was another: the submit's ``queued`` mark, made after the
            # message is sent, can land between this delivery's read and its first save. Dropping the message then
            # would leave the restore pending for ever: look again.
            fresh = self.records.get(restore_id)
            if fresh is not None and fresh.state == PENDING and not fresh.steps:
                return Retry(1, "the row changed before the first step (the submit's queued mark): again")
            return Done(KIND, {"restore": restore_id, "state": "advanced by another delivery"})


def _outside(scopes: Scopes, resource_id: str) -> str | None:
    """The resource group of ``resource_id`` when the allow-list does not admit it (an id that does not parse
    is not admitted either), else None."""
    from azure.mgmt.core.tools import parse_resource_id

    from ..access import BadId, parse_id

    parts = parse_resource_id(resource_id or "")
    group_id = f"/subscriptions/{parts.get('subscription', '')}/resourceGroups/{parts.get('resource_group', '')}"
    try:
        return None if scopes.allows(parse_id(group_id, "resource_group")) else group_id
    except BadId:
        return group_id


def mark_queued(record: Record) -> bool:
    """The submit's edit once its message is sent: ``queued``, unless a worker has begun the restore already
    (the message was delivered before the mark): its row is the worker's then, and a write of ours would only
    change its ETag under the worker's next save."""
    if record.queued or record.state != PENDING or record.steps:
        return False
    record.queued = True
    return True


def body_hash(body: Any) -> str:
    """Of the parsed body, so spacing and key order don't make another request of the same one."""
    import json

    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()



def targets_for(kind: str) -> list[str]:
    from .request import targets_for as of_kind

    return of_kind(kind)
