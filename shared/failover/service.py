"""Failovers of a recovery plan (an application's) or of one replicated VM: accepted over HTTP, recorded, and run
step by step from a queue (the runner's step machine, shared/queue/runner.py).

``prepare`` reads Azure as it is and decides everything before anything is written: the plan or item, Site
Recovery's operation and direction, its input, the boot order, and every group the failover writes into (each must
be in the allow-list). A refusal names the field and creates nothing.

A failover is a row (records.py) and a message "advance failover X". Its two steps:

1. ``send``: the action POSTed to Site Recovery (once: the time is noted first, and a delivery that finds it noted
   looks for the job that POST started before sending again — a crash between the POST and the save never sends it
   twice; ASR would refuse a second one anyway, the item being busy);
2. ``follow_job``: the operation's status (``Azure-AsyncOperation``) looked at again after ARM's ``Retry-After``,
   each look on a later queue delivery (no function sleeps), and Site Recovery's job read for its tasks — a plan's
   are its boot groups, in order — until it ends.

The outcome is told once (``vmkeeper.failover.succeeded`` / ``.failed``).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..access import BadId, ParsedId, Principal, Scopes, parse_id
from ..alerts import events as A
from ..instants import format_instant, parse_instant
from ..ports import Arm, Queue
from ..queue import messages, runner
from ..queue.messages import Done, Failed, Outcome, Retry
from ..settings import FailoverSettings
from . import asr as S
from .keeper import vaults_of
from .plans import plan_name
from .records import FAILED, PENDING, RUNNING, SUCCEEDED, TERMINAL, Changed, Record, Records
from .request import POINTS, FailoverRequest

log = logging.getLogger("vmkeeper.failover")
KIND = "failover"
OPERATIONS = {"test_failover": S.TEST_FAILOVER, "test_failover_cleanup": S.CLEANUP, "planned_failover": S.PLANNED,
              "unplanned_failover": S.UNPLANNED, "commit": S.COMMIT, "reprotect": S.REPROTECT, "failback": S.PLANNED}
# Site Recovery's job scenario per operation (a plan's are prefixed "RecoveryPlan"), lower case.
SCENARIOS = {S.TEST_FAILOVER: "testfailover", S.CLEANUP: "testfailovercleanup", S.PLANNED: "plannedfailover",
             S.UNPLANNED: "unplannedfailover", S.COMMIT: "commit", S.REPROTECT: "reversereplication"}
CHANGES_SOURCE = ("planned_failover", "unplanned_failover", "failback", "reprotect")  # they write on the VM's side too
WAIT = 10  # seconds between looks when ARM gives no Retry-After
FIND_SINCE = timedelta(minutes=2)  # a job started this long before the noted send is still the send's (clock skew)
STEP_TIMEOUT = timedelta(hours=24)
ZERO_WAITS = 20  # steps that only note something before acting, per delivery (a loop's guard)
DONE_JOB_STATES = ("succeeded", "completedwithinformation")
FAILED_JOB_STATES = ("failed", "cancelled", "canceled")


class Refused(Exception):
    """The failover cannot be made now (HTTP ``status``): the field at fault and why."""

    def __init__(self, status: int, title: str, problems: list[tuple[str, str]]):
        super().__init__("; ".join(f"{f}: {d}" for f, d in problems))
        self.status, self.title, self.problems = status, title, problems


class KeyReused(Exception):
    """An Idempotency-Key came back with another body (HTTP 422)."""


class NotFound(Exception):
    pass


def failover_id_for(principal: Principal, idempotency_key: str | None) -> str:
    """16 hex: derived from the caller and the key (the same key finds the same failover), else random."""
    if not idempotency_key:
        return secrets.token_hex(8)
    return hashlib.sha256(f"failover|{principal.id.lower()}|{idempotency_key}".encode()).hexdigest()[:16]


def body_hash(body: Any) -> str:
    import json

    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class Prepared:
    """What a failover acts on and sends, decided from Azure as it is."""

    kind: str  # "plan" | "vm"
    vault_id: str
    operation: str  # Site Recovery's (asr.py)
    direction: str  # PrimaryToRecovery | RecoveryToPrimary
    input: dict[str, Any] | None  # the action's body
    order: list[dict[str, Any]]  # [{"group": 1, "vms": [{"vm", "name", "item"}]}]
    members: list[str]  # item ids
    target_name: str  # the plan's name, or the item's friendly name (what its job names)
    app: str | None = None
    plan: str | None = None
    plan_id: str | None = None
    item_id: str | None = None
    vm: str | None = None
    writes: list[dict[str, str]] = field(default_factory=list)  # [{"field", "group"}]: each in the allow-list

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Failovers:
    def __init__(self, settings: FailoverSettings, arm: Arm, queue: Queue, poison: Queue, records: Records, *,
                 alerts: Any = None, arm_endpoint: str = "", clock: Callable[[], datetime] | None = None):
        self.settings = settings
        self.scopes = Scopes.parse(settings.scopes)
        self.asr = S.SiteRecovery(arm, arm_endpoint)
        self.vaults = vaults_of(settings)
        self.queue, self.poison, self.records, self.alerts = queue, poison, records, alerts
        self.clock = clock or (lambda: datetime.now(UTC))

    def in_fleet(self, vm: ParsedId) -> bool:
        return vm.subscription in self.settings.subscriptions

    def get(self, failover_id: str) -> Record:
        record = self.records.get(failover_id)
        if record is None:
            raise NotFound(failover_id)
        return record

    # --- deciding -------------------------------------------------------------------------------------
    def _plan_target(self, request: FailoverRequest) -> tuple[S.Plan, list[list[S.Item]]]:
        name = plan_name(request.plan or "")
        for vault in self.vaults:
            plan = self.asr.plan(vault, name)
            if plan is None:
                continue
            row = self.records.plan_row(plan.id)
            if not (row and row.get("claimed")):
                raise Refused(409, "Conflict", [("plan", f"recovery plan {plan.id} was not made by vmkeeper: vmkeeper "
                                                         "fails over only the plans it keeps")])
            items = {i.id.lower(): i for i in self.asr.items(vault)}
            groups = [[items[i.lower()] for i in g.items if i.lower() in items] for g in plan.boot_groups]
            if not any(groups):
                raise Refused(409, "Conflict", [("plan", f"recovery plan {name} holds no replicated VM")])
            return plan, [g for g in groups if g]
        raise Refused(400, "Invalid failover", [("plan", f"no recovery plan {name} in the vaults vmkeeper knows "
                                                         "(VMKEEPER_VAULTS): are its VMs replicated and tagged "
                                                         f"vmkeeper-app: {request.plan}?")])

    def _vm_target(self, request: FailoverRequest) -> S.Item:
        assert request.vm is not None
        if not self.in_fleet(request.vm):
            raise Refused(403, "Out of scope", [("vm", f"subscription {request.vm.subscription} is not in "
                                                       "VMKEEPER_SUBSCRIPTIONS")])
        wanted = request.vm.id.lower()
        for vault in self.vaults:
            for item in self.asr.items(vault):
                if wanted in item.vm_ids():
                    return item
        raise Refused(400, "Invalid failover", [("vm", "not replicated by Site Recovery in the vaults vmkeeper knows "
                                                       "(VMKEEPER_VAULTS)")])

    def prepare(self, request: FailoverRequest) -> Prepared:
        """Everything the failover will do, checked against Azure now; Refused (naming the field) when it can't."""
        plan: S.Plan | None = None
        if request.plan is not None:
            plan, groups = self._plan_target(request)
        else:
            groups = [[self._vm_target(request)]]
        members = [i for g in groups for i in g]
        target_field = request.field
        for item in members:
            ref = _vm_ref(item.vm_id)
            if ref is not None and not self.in_fleet(ref):
                raise Refused(403, "Out of scope", [(target_field, f"{item.friendly_name}: subscription "
                                                                   f"{ref.subscription} is not in VMKEEPER_SUBSCRIPTIONS")])
        operation = OPERATIONS[request.action]
        actives = sorted({i.active for i in members})
        if len(actives) != 1:
            raise Refused(409, "Conflict", [(target_field, "its VMs are active on both sides ("
                                             + ", ".join(f"{i.friendly_name}: {i.active}" for i in members)
                                             + "): fail over or back the VMs one by one")])
        active = actives[0]
        if request.action == "failback" and active != "Recovery":
            raise Refused(409, "Conflict", [("action", "failback is the way back after failover, commit and reprotect: "
                                                       "the VMs are active in their primary region")])
        if request.action == "planned_failover" and active != "Primary":
            raise Refused(409, "Conflict", [("action", "the VMs run in the recovery region: to go back use failback")])
        allowed = plan.allowed if plan is not None else members[0].allowed
        if operation not in allowed:
            what = f"recovery plan {plan.name}" if plan is not None else members[0].friendly_name
            raise Refused(409, "Conflict", [("action", f"Site Recovery does not allow {operation} on {what} now "
                                                       f"(it allows: {', '.join(allowed) or 'nothing: an operation is running'})")])
        direction = "PrimaryToRecovery" if active == "Primary" else "RecoveryToPrimary"
        writes = self._writes(request, members)
        outside = [(w["field"], f"{w['group']} is not in the allow-list (VMKEEPER_RESTORE_SCOPES)") for w in writes
                   if not _admitted(self.scopes, w["group"])]
        if outside:
            raise Refused(403, "Target out of scope", outside)
        self._not_crossing(target_field, members)
        vault = plan.vault if plan is not None else members[0].vault
        body = self._input(request, operation, direction, plan is not None, members)
        order = [{"group": k + 1, "vms": [{"vm": i.vm_id, "name": i.friendly_name, "item": i.id} for i in g]}
                 for k, g in enumerate(groups)]
        if plan is not None:
            return Prepared("plan", vault.id, operation, direction, body, order, [i.id for i in members], plan.name,
                            app=request.plan, plan=plan.name, plan_id=plan.id, writes=writes)
        item = members[0]
        return Prepared("vm", vault.id, operation, direction, body, order, [item.id], item.friendly_name,
                        item_id=item.id, vm=item.vm_id, writes=writes)

    def _writes(self, request: FailoverRequest, members: list[S.Item]) -> list[dict[str, str]]:
        """The groups the failover writes into: where each VM is made (or, failing back, made again), the side of
        the VMs it shuts down or replicates from, and the test network's."""
        field_ = request.field
        out: dict[str, dict[str, str]] = {}
        for item in members:
            groups = [item.recovery_group]
            if request.action in CHANGES_SOURCE:
                groups.append(_group_of(item.vm_id))
            for group in groups:
                if group:
                    out.setdefault(group.lower(), {"field": field_, "group": group})
        if request.network is not None:
            out.setdefault(request.network.group_id.lower(), {"field": "network", "group": request.network.group_id})
        return sorted(out.values(), key=lambda w: w["group"].lower())

    def _not_crossing(self, field_: str, members: list[S.Item]) -> None:
        ids = {i.id.lower() for i in members}
        for other in self.records.unfinished():
            if ids & {m.lower() for m in other.target.get("members") or []}:
                raise Refused(409, "Conflict", [(field_, f"failover {other.id} ({other.request.get('action')}) is "
                                                         f"{other.state} on the same VMs: wait for it to end")])

    def _input(self, request: FailoverRequest, operation: str, direction: str, on_plan: bool,
               members: list[S.Item]) -> dict[str, Any] | None:
        """Site Recovery's body for the action (A2A): a plan's provider details are an array of
        RecoveryPlanA2AFailoverInput; an item's, A2A's own (a recovery point by id)."""
        point = POINTS[request.recovery_point]
        if operation == S.TEST_FAILOVER:
            props: dict[str, Any] = {"failoverDirection": direction, "networkType": "VmNetworkAsInput",
                                     "networkId": request.network.id if request.network else ""}
            props["providerSpecificDetails"] = ([{"instanceType": "A2A", "recoveryPointType": point}] if on_plan else
                                                {"instanceType": "A2A", **self._point_id(request, members[0])})
            return {"properties": props}
        if operation == S.CLEANUP:
            return {"properties": {"comments": request.comment or "vmkeeper: test failover cleaned up"}}
        if operation == S.PLANNED:
            return {"properties": {"failoverDirection": direction}}
        if operation == S.UNPLANNED:
            props = {"failoverDirection": direction,
                     "sourceSiteOperations": "Required" if request.shut_down_source else "NotRequired"}
            props["providerSpecificDetails"] = ([{"instanceType": "A2A", "recoveryPointType": point}] if on_plan else
                                                {"instanceType": "A2A", **self._point_id(request, members[0])})
            return {"properties": props}
        if operation == S.REPROTECT and not on_plan:  # replicating back: from the side the VM is active on now
            return {"properties": {"failoverDirection": direction, "providerSpecificDetails": {"instanceType": "A2A"}}}
        return None  # commit, and a plan's reprotect, take no body

    def _point_id(self, request: FailoverRequest, item: S.Item) -> dict[str, str]:
        """A VM's point: ASR's latest unless another is asked for (the newest listed, or the newest app-consistent)."""
        if request.recovery_point == "latest":
            return {}
        points = self.asr.points(item)
        if request.recovery_point == "latest_app_consistent":
            points = [p for p in points if (p.get("properties") or {}).get("recoveryPointType") == "AppConsistent"]
        if not points:
            raise Refused(409, "Conflict", [("recovery_point", f"{item.friendly_name} has no "
                                                               f"{request.recovery_point.replace('_', ' ')} point")])
        newest = max(points, key=lambda p: (p.get("properties") or {}).get("recoveryPointTime") or "")
        return {"recoveryPointId": newest["id"]}

    # --- accepting --------------------------------------------------------------------------------
    def submit(self, principal: Principal, request: FailoverRequest, hashed: str,
               idempotency_key: str | None = None) -> tuple[Record, bool]:
        """(the failover, whether it is new). The row is written before the message is sent, and marked ``queued``
        after: a POST repeated with its Idempotency-Key sends a message the first one could not."""
        failover_id = failover_id_for(principal, idempotency_key)
        if idempotency_key:
            existing = self.records.get(failover_id)
            if existing is not None:
                return self._again(existing, hashed), False
        prepared = self.prepare(request)
        record = Record(failover_id, PENDING, request.to_json(), prepared.to_json(), principal.id,
                        format_instant(self.clock()), body_hash=hashed)
        if self.records.insert(record) is None:
            return self._again(self.get(failover_id), hashed), False
        self._enqueue(record)
        return record, True

    def _again(self, record: Record, hashed: str) -> Record:
        if record.body_hash != hashed:
            raise KeyReused(record.id)
        if not record.queued and record.state == PENDING:
            self._enqueue(record)
        return record

    def _enqueue(self, record: Record) -> None:
        self.queue.send_message(messages.encode({"v": 1, "kind": KIND, "failover_id": record.id}))

        def mark(r: Record) -> bool:
            if r.queued or r.state != PENDING or r.steps:
                return False
            r.queued = True
            return True
        self.records.change(record.id, mark)
        record.queued = True

    # --- running ------------------------------------------------------------------------------------
    def handle_message(self, body: bytes | str) -> str:
        return runner.run(body, kind=KIND, step=self.advance, queue=self.queue, poison=self.poison,
                          on_done=lambda job, done: log.info("failover %s: %s", job.get("failover_id"), done.detail),
                          on_failed=self._give_up, required=("failover_id",), alert=self._poisoned)

    def _give_up(self, job: dict[str, Any], reason: str) -> None:
        def edit(r: Record) -> bool:
            if r.state in TERMINAL:
                return False
            r.state, r.error = FAILED, {"code": "GaveUp", "message": reason[:2000], "step": r.next_step}
            return True
        try:
            self.records.change(str(job.get("failover_id")), edit)
        except Exception:  # noqa: BLE001 (the message keeps the reason in the poison queue either way)
            log.exception("failover %s: could not record the failure", job.get("failover_id"))

    def _poisoned(self, cause: str, job: Any, reason: str) -> None:
        if self.alerts is None:
            return
        record = self.records.get(job["failover_id"]) if isinstance(job, dict) and isinstance(
            job.get("failover_id"), str) and job["failover_id"] else None
        if record is not None and record.state in TERMINAL:
            self._settled(record)
        else:
            self.alerts.raise_(A.for_poisoning(cause, job, reason, self.settings.queue))

    def _settled(self, record: Record) -> None:
        """The outcome of a failover that ended, told once (its id is the alert's key)."""
        if self.alerts is None or record.state not in (SUCCEEDED, FAILED):
            return
        t = record.target
        self.alerts.raise_(A.Alert(A.FAILOVER_SUCCEEDED if record.state == SUCCEEDED else A.FAILOVER_FAILED,
                                   str(t.get("plan_id") or t.get("vm") or f"failover {record.id}").lower(), record.id,
                                   {"failover_id": record.id, "action": record.request.get("action"),
                                    "operation": t.get("operation"), "state": record.state, "error": record.error,
                                    "created": record.created_at}))

    def advance(self, job: dict[str, Any]) -> Outcome:
        failover_id = job["failover_id"]
        if not isinstance(failover_id, str):
            return Failed("message.failover_id: must be a string")
        record = self.records.get(failover_id)
        if record is None:
            return Failed(f"message.failover_id: no failover '{failover_id}'")
        zero_waits = 0
        try:
            while True:
                if record.state in TERMINAL:
                    self._settled(record)
                    return Done(KIND, {"failover": failover_id, "state": record.state})
                step = record.next_step
                now = self.clock()
                if step is None:
                    record.state = SUCCEEDED
                    self.records.save(record)
                    self._settled(record)
                    return Done(KIND, {"failover": failover_id, "state": SUCCEEDED})
                entry = next((s for s in record.steps if s["name"] == step), None)
                if entry is None or record.state == PENDING:
                    record.state = RUNNING
                    if entry is None:
                        entry = {"name": step, "started_at": format_instant(now), "finished_at": None, "seconds": None}
                        record.steps.append(entry)
                    self.records.save(record)
                result = getattr(self, step)(record)
                started = parse_instant(entry["started_at"])
                if isinstance(result, Wait) and started and now - started > STEP_TIMEOUT:
                    result = Fail(f"{step} has not finished in {STEP_TIMEOUT}: {result.note}", "StepTimedOut")
                if result.job:
                    record.job = result.job
                if isinstance(result, Fail):
                    record.state = FAILED
                    record.error = {"code": result.code, "message": result.reason[:2000], "step": step}
                    self.records.save(record)
                    self._settled(record)
                    return Done(KIND, {"failover": failover_id, "state": FAILED})
                record.context.update(result.context)
                if isinstance(result, Next):
                    entry["finished_at"] = format_instant(self.clock())
                    entry["seconds"] = round((self.clock() - started).total_seconds(), 3) if started else None
                    self.records.save(record)
                    continue
                if result.context or result.job:
                    self.records.save(record)
                if result.delay == 0:
                    zero_waits += 1
                    if zero_waits <= ZERO_WAITS:
                        continue
                return Retry(max(1, result.delay), result.note, {"attempt": job.get("attempt", 0) + 1})
        except Changed:
            fresh = self.records.get(failover_id)
            if fresh is not None and fresh.state == PENDING and not fresh.steps:
                return Retry(1, "the row changed before the first step (the submit's queued mark): again")
            return Done(KIND, {"failover": failover_id, "state": "advanced by another delivery"})

    # --- the steps ----------------------------------------------------------------------------------
    def _vault(self, record: Record) -> S.Vault:
        return S.Vault.of(record.target["vault_id"])

    def _item(self, record: Record) -> S.Item:
        """The VM's item as Site Recovery names it (enough to act on it)."""
        return S.Item.named(self._vault(record), record.target["item_id"], record.target.get("target_name") or "")

    def send(self, record: Record) -> Result:
        ctx = record.context
        if "sent_at" not in ctx:
            return Wait(0, "noting the time before sending", {"sent_at": format_instant(self.clock())})
        found = self._find_job(record, parse_instant(ctx["sent_at"]))
        if found:  # sent by a delivery that did not live to save it
            return Next({"job_name": found, "operation_url": ""})
        from azure.core.exceptions import HttpResponseError

        t = record.target
        try:
            if t["kind"] == "plan":
                sent = self.asr.act_on_plan(self._vault(record), t["plan"], t["operation"], t.get("input"))
            else:
                sent = self.asr.act_on_item(self._item(record), t["operation"], t.get("input"))
        except HttpResponseError as exc:
            if exc.status_code is None or not 400 <= exc.status_code < 500 or exc.status_code == 429:
                raise  # transient: the runner looks again (a send that did land is found above)
            running = self._current_job(record)
            if running:  # refused because this failover's own operation runs (a send whose save was lost)
                return Next({"job_name": running, "operation_url": ""})
            code = (exc.error.code if exc.error else None) or f"HTTP{exc.status_code}"
            return Fail(f"Site Recovery refused {t['operation']}: {exc.message or exc}", code)
        return Next({"operation_url": sent.operation_url, "retry_after": sent.retry_after,
                     "job_name": self._current_job(record)})

    def follow_job(self, record: Record) -> Result:
        ctx, vault = record.context, self._vault(record)
        job_name = ctx.get("job_name") or self._current_job(record) or self._find_job(record, parse_instant(
            ctx.get("sent_at")))
        job = self._job(vault, job_name) if job_name else {}
        remember = {"job_name": job_name} if job_name and job_name != ctx.get("job_name") else {}
        if ctx.get("operation_url"):
            status, after = self.asr.operation(vault, ctx["operation_url"])
            state = str(status.get("status") or "").lower()
            if state in ("inprogress", "notstarted", "accepted", "running", ""):
                return Wait(after or ctx.get("retry_after") or WAIT, f"{record.target['operation']} in progress",
                            remember, job)
            if state == "succeeded":
                return Next(remember, job)
            error = status.get("error") or {}
            detail = "; ".join(filter(None, [error.get("message"), *job.get("errors_text", [])]))
            return Fail(f"Site Recovery's {record.target['operation']} ended {status.get('status')}: "
                        f"{detail or 'see its job'}", error.get("code") or "FailoverFailed", job)
        if not job:  # no monitor and no job: nothing to follow yet
            return Wait(WAIT, "looking for Site Recovery's job", remember)
        state = str(job.get("state") or "").lower()
        if state in DONE_JOB_STATES or (state == "suspended" and record.target["operation"] == S.TEST_FAILOVER):
            return Next(remember, job)
        if state in FAILED_JOB_STATES:
            return Fail(f"Site Recovery's job {job_name} {job.get('state')}: "
                        f"{'; '.join(job.get('errors_text', [])) or 'see the job'}", "FailoverFailed", job)
        return Wait(WAIT, f"Site Recovery's job {job_name} is {job.get('state')}", remember, job)

    def _current_job(self, record: Record) -> str:
        """The job the plan's or item's current scenario names (right after the POST, the one it started)."""
        t = record.target
        try:
            if t["kind"] == "plan":
                plan = self.asr.plan(self._vault(record), t["plan"])
                job_id = plan.job_id if plan is not None and _same_scenario(plan.scenario, t["operation"]) else ""
            else:
                item = self.asr.item(self._item(record))
                job_id = item.job_id if _same_scenario(item.scenario, t["operation"]) else ""
        except Exception:  # noqa: BLE001 (the job is for progress; its absence is looked for again later)
            log.warning("failover %s: could not read the current scenario", record.id, exc_info=True)
            return ""
        name = job_id.rstrip("/").rsplit("/", 1)[-1] if job_id else ""
        return "" if name.lower() == "none" else name

    def _find_job(self, record: Record, since: datetime | None) -> str:
        """A job of this failover's operation on its target that started after ``since`` (less a skew)."""
        if since is None:
            return ""
        t = record.target
        floor = since - FIND_SINCE
        for job in self.asr.jobs(self._vault(record)):
            props = job.get("properties") or {}
            started = parse_instant(props.get("startTime"))
            if (started is not None and started >= floor and _same_scenario(props.get("scenarioName") or "",
                                                                            t["operation"])
                    and str(props.get("targetObjectName") or "").lower() == str(t["target_name"]).lower()):
                return job.get("name") or ""
        return ""

    def _job(self, vault: S.Vault, name: str) -> dict[str, Any]:
        doc = self.asr.job(vault, name)
        props = doc.get("properties") or {}
        errors = [f"{(e.get('serviceErrorDetails') or {}).get('code')}: {(e.get('serviceErrorDetails') or {}).get('message')}"
                  for e in props.get("errors") or []]
        return {"id": doc.get("id"), "name": doc.get("name"), "state": props.get("state"),
                "scenario": props.get("scenarioName"),
                "tasks": [{"name": t.get("friendlyName") or t.get("name"), "state": t.get("state")}
                          for t in props.get("tasks") or []], "errors_text": errors}


@dataclass
class Next:
    context: dict[str, Any] = field(default_factory=dict)
    job: dict[str, Any] = field(default_factory=dict)


@dataclass
class Wait:
    delay: int
    note: str
    context: dict[str, Any] = field(default_factory=dict)
    job: dict[str, Any] = field(default_factory=dict)


@dataclass
class Fail:
    reason: str
    code: str = "FailoverFailed"
    job: dict[str, Any] = field(default_factory=dict)


Result = Next | Wait | Fail


def _same_scenario(scenario: str, operation: str) -> bool:
    name = (scenario or "").lower()
    return name.removeprefix("recoveryplan") == SCENARIOS[operation]


def _vm_ref(vm_id: str) -> ParsedId | None:
    try:
        return parse_id(vm_id, "vm")
    except BadId:
        return None


def _group_of(resource_id: str) -> str:
    from azure.mgmt.core.tools import parse_resource_id

    p = parse_resource_id(resource_id or "")
    if not p.get("subscription") or not p.get("resource_group"):
        return ""
    return f"/subscriptions/{p['subscription']}/resourceGroups/{p['resource_group']}"


def _admitted(scopes: Scopes, group_id: str) -> bool:
    try:
        return scopes.allows(parse_id(group_id, "resource_group"))
    except BadId:
        return False
