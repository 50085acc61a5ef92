"""Scheduled protection, one job step at a time: incremental snapshots of a VM's disks (one set,
tagged alike) or a VM restore point, optionally copied to a second region.

Each step is idempotent (deterministic names from the planner) and create-only: it reads before it
writes and never PUTs over a resource that exists (a snapshot, a copy, a collection, a restore point,
a lock): one found is checked and used, never written again, so tags and locks others wrote (a
``vmkeeper-hold``) survive a re-sent job. A step gives up on the time it has taken, not on a count of
looks. It never waits on Azure: a
long-running operation is checked by a later step (``Retry`` after the operation's Retry-After),
and a write without budget waits in the queue, not in the function, holding the budget's promise
(``grant``) so it spends it on return without asking again. Only a promise due within the second
is waited for in place: a queue's visibility delay is whole seconds. Messages carry the job and where it
stands: ``{"v": 1, "kind": "scheduled", "job": {...}, "step": "create", "index": 0, "attempt": 0}``.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

from .. import tags as T
from ..azure.retry_after import retry_after_seconds
from ..instants import format_instant
from ..names import copy_name
from ..points import pins as P
from ..points.model import immutability_holds
from ..ports import Arm, Budget
from ..queue import messages as jobs
from ..queue.messages import Done, Failed, Outcome, Retry
from . import isolated as I

KIND = "scheduled"
CHECK_DELAY = 10  # seconds before looking at a snapshot or restore point again, when ARM gives no Retry-After
COPY_DELAY = 5
# The bounds a running job's pin and the planner's re-send both count on (shared/points/pins.py).
COPY_CHECK_CEILING = P.LOOK.total_seconds()  # a copy is looked at no less often than this (copies take hours)
COPY_TIMEOUT = P.COPY_TIMEOUT.total_seconds()  # a cross-region copy may take this long before its job gives up (a setting)
CHECK_TIMEOUT = P.STEP_TIMEOUT.total_seconds()  # a step may look (a snapshot or restore point being created) or be throttled
LOOK_CEILING = COPY_CHECK_CEILING  # the longest between two looks: a step may end this long past its bound
SNAPSHOT_LIMIT_DELAY = 60  # "7 incremental snapshots per disk per 5 minutes"
IN_FLIGHT_DELAY = 30  # "one restore point creation at a time per VM"
INLINE_WAIT = 1.0  # a budget promise due this soon is waited for here (queue delays are whole seconds)


def new_message(job: dict[str, Any]) -> dict[str, Any]:
    return {"v": 1, "kind": KIND, "job": job, "step": "create", "index": 0, "attempt": 0, "reads": 0, "writes": 0}


def create_writes(job: dict[str, Any]) -> int:
    """The ARM writes a job's first step makes: one per snapshot, or collection + restore point."""
    return len(job.get("snapshots") or []) if job.get("type") == "snapshot_set" else 2


def lock_until(job: dict[str, Any]) -> str | None:
    """Until when the policy's delete lock stands: the slot plus ``lock_days``."""
    from datetime import datetime, timedelta

    if not job.get("lock_days"):
        return None
    return format_instant(datetime.fromisoformat(job["slot"]) + timedelta(days=int(job["lock_days"])))


def snapshot_tags(job: dict[str, Any], target: dict[str, Any]) -> dict[str, str]:
    """Everything a snapshot says of itself, written once at creation (never rewritten later)."""
    until = lock_until(job)
    return {**job["tags"], T.LUN: str(target["lun"]), **({T.LOCK_UNTIL: until} if until else {})}


DAY = 86400


def immutability_days(job: dict[str, Any], start: float) -> int:
    """The days an immutability policy starting at ``start`` (epoch seconds; Azure counts from the policy's start)
    must hold: until the point's retention horizon (the job's ``expires``), never fewer than the policy's days."""
    from datetime import datetime

    days = int(job["immutability"]["days"])
    if job.get("expires"):
        left = datetime.fromisoformat(job["expires"]).timestamp() - start
        days = max(days, math.ceil(left / DAY))
    return days


def compute_id(job: dict[str, Any], resource_type: str, name: str) -> str:
    """The id of a Compute resource in the job's resource group."""
    from azure.mgmt.core.tools import resource_id

    return resource_id(subscription=job["subscription_id"], resource_group=job["resource_group"],
                       namespace="Microsoft.Compute", type=resource_type, name=name)


class ScheduledWorker:
    """Job steps through ARM's paced compute client and locks, under the shared write budget."""

    def __init__(self, clients: Arm, budget: Budget, check_timeout: float = CHECK_TIMEOUT,
                 copy_timeout: float = COPY_TIMEOUT, clock: Any = None, isolated: I.IsolatedTarget | None = None):
        self.clients = clients
        self.isolated = isolated  # the backup subscription and the second identity's clients (None: not set up)
        self.budget = budget
        self.check_timeout = check_timeout  # seconds: looks at a snapshot or restore point being created
        self.copy_timeout = copy_timeout
        self.clock = clock or budget.clock  # epoch seconds

    def _copy_later(self, message: dict[str, Any], reason: str, step: str, index: int) -> Outcome:
        """A copy still running: look again later, backing off to a ceiling; give up on the time the
        copy has taken (real copies take hours), not on a count of looks."""
        since = float(message.get("since") or self.clock())
        if self.clock() - since > self.copy_timeout:
            return Failed(f"{reason}: not complete after {self.copy_timeout / 3600:g} h (VMKEEPER_COPY_TIMEOUT_HOURS)")
        delay = max(1, math.ceil(message.get("check_delay", COPY_DELAY)))
        return Retry(delay, reason, {"step": step, "index": index, "since": since,
                                     "check_delay": min(COPY_CHECK_CEILING, delay * 2),
                                     "reads": message.get("reads", 0), "writes": message.get("writes", 0)})

    # --- plumbing ----------------------------------------------------------------------------
    def _next(self, message: dict[str, Any], delay: float, reason: str, **changes: Any) -> Outcome:
        """Look again later, unless the step has taken longer than its bound (counted from ``since``,
        when the step began looking: a copy's check has the copy's bound, any other step the check's)."""
        now = self.clock()
        since = float(message.get("since") or now)
        limit = self.copy_timeout if changes.get("step") == "copy_check" else self.check_timeout
        if now - since > limit:
            return Failed(f"gave up after {(now - since) / 60:.0f} min ({message.get('attempt', 0)} looks): {reason}")
        return Retry(max(1, math.ceil(delay)), reason, {**changes, "attempt": message.get("attempt", 0) + 1,
                                                        "since": since, "reads": message.get("reads", 0),
                                                        "writes": message.get("writes", 0)})

    @staticmethod
    def _step(step: str, index: int, message: dict[str, Any], since: float | None = None, **changes: Any) -> dict[str, Any]:
        """The changes that move a job on to ``step``: its looks and its bound start again."""
        return {"step": step, "index": index, "attempt": 0, "since": since, "grant": None,
                "reads": message.get("reads", 0), "writes": message.get("writes", 0), **changes}

    def _observe(self, sub: str, seen: dict[str, float] | None = None):
        """A raw-response hook: ARM's remaining writes go to the budget; its Retry-After to ``seen``."""
        def hook(response: Any) -> None:
            headers = response.http_response.headers
            remaining = headers.get("x-ms-ratelimit-remaining-subscription-writes")
            if remaining is not None and remaining.isdigit():
                self.budget.observe(sub, remaining=int(remaining))
            if seen is not None:
                delay = retry_after_seconds(headers)
                if delay is not None:
                    seen["retry_after"] = max(seen.get("retry_after", 0), delay)
        return hook

    def _arm_error(self, message: dict[str, Any], exc: Exception, sub: str, step: str, index: int) -> Outcome:
        from azure.core.exceptions import HttpResponseError

        if not isinstance(exc, HttpResponseError):
            raise exc
        status = exc.status_code
        text = str(exc.message or exc)
        if status == 429:
            retry_after = float((retry_after_seconds(exc.response.headers) if exc.response is not None else None) or 10)
            self.budget.observe(sub, retry_after=retry_after)
            return self._next(message, retry_after, "throttled by ARM", step=step, index=index)
        if status == 409 and "incremental snapshots" in text:
            return self._next(message, SNAPSHOT_LIMIT_DELAY, "disk's snapshot rate limit", step=step, index=index)
        if status == 409 and "one restore point creation at a time" in text:
            return self._next(message, IN_FLIGHT_DELAY, "another restore point is in flight", step=step, index=index)
        if status is not None and status >= 500:
            raise exc  # transient: the host redelivers the message
        return Failed(f"ARM {status}: {text}")

    def _wait_for_budget(self, message: dict[str, Any], sub: str, n: int, step: str, index: int) -> Outcome | None:
        """None when n writes may go now. Otherwise the job goes back on the queue until the moment
        the budget promised them (kept in the message as ``grant``), or until it may ask again."""
        grant = message.get("grant")
        if grant and grant.get("step") == step and grant.get("index") == index:
            at = float(grant["at"])
        else:
            at, promised = self.budget.reserve(sub, n)
            message["grant"] = {"step": step, "index": index, "at": at} if promised else None
        wait = at - self.budget.clock()
        if 0 < wait <= INLINE_WAIT:
            time.sleep(wait)  # due within the second: a visibility delay can't be shorter than that
            wait = 0
        if wait <= 0:
            message["grant"] = None  # spent now
            return None
        # Pacing is not a failure: it doesn't use up the step's time.
        delay = max(1, math.ceil(wait))
        since = message.get("since")
        return Retry(delay, "write budget", {"step": step, "index": index, "grant": message["grant"],
                                             "attempt": message.get("attempt", 0),
                                             "since": float(since) + delay if since else None,
                                             "reads": message.get("reads", 0),
                                             "writes": message.get("writes", 0)})

    # --- dispatch ----------------------------------------------------------------------------
    def handle(self, message: dict[str, Any]) -> Outcome:
        job = message["job"]
        if not isinstance(job, dict):
            raise jobs.BadMessage("message.job: must be an object")
        kind = job.get("type")
        step = message.get("step", "create")
        if kind == "snapshot_set":
            steps = {"create": self.create_snapshots, "check": self.check_snapshots, "copy": self.copy_snapshot,
                     "copy_check": self.check_copy, "immutable": self.immutable_snapshots,
                     "copy_immutable": self.immutable_copies, "isolated": self.copy_isolated,
                     "isolated_check": self.check_isolated, "isolated_immutable": self.immutable_isolated}
        elif kind == "restore_point":
            steps = {"create": self.create_restore_point, "check": self.check_restore_point,
                     "copy": self.copy_restore_point, "copy_check": self.check_restore_point_copy}
        else:
            raise jobs.BadMessage(f"message.job.type: must be snapshot_set or restore_point (got {kind!r})")
        if step not in steps:
            raise jobs.BadMessage(f"message.step: {step!r} is not a step of {kind}")
        return steps[step](message, job)

    # --- snapshot sets -----------------------------------------------------------------------
    def create_snapshots(self, message: dict[str, Any], job: dict[str, Any]) -> Outcome:
        """Each snapshot of the set not there yet, in order. One already there (an earlier delivery,
        a re-sent job) is this set's or the job fails: it is never written again (a PUT replaces
        every tag: an operator's hold with them)."""
        from azure.mgmt.compute.models import CreationData, Snapshot

        sub, rg = job["subscription_id"], job["resource_group"]
        compute = self.clients.paced_compute(sub)
        targets = job["snapshots"]
        index = message.get("index", 0)
        wait = self._wait_for_budget(message, sub, len(targets) - index, "create", index)
        if wait:
            return wait
        seen: dict[str, float] = {}
        while index < len(targets):
            target = targets[index]
            try:
                found = _get_or_none(compute.snapshots.get, rg, target["name"])
                message["reads"] = message.get("reads", 0) + 1
                if found is not None:
                    problem = _not_of_set(found, job, target["disk_id"])
                    if problem:
                        return Failed(f"snapshot {target['name']} exists and {problem}: left as it is")
                    index += 1  # this set's, made before: the check step looks at it
                    continue
                body = Snapshot(location=job["location"], tags=snapshot_tags(job, target),
                                incremental=True,
                                creation_data=CreationData(create_option="Copy", source_resource_id=target["disk_id"]))
                compute.snapshots.begin_create_or_update(rg, target["name"], body, polling=False,
                                                         raw_response_hook=self._observe(sub, seen))
            except Exception as exc:  # noqa: BLE001 (classified by _arm_error)
                return self._arm_error(message, exc, sub, "create", index)
            message["writes"] = message.get("writes", 0) + 1
            index += 1
        delay = seen.get("retry_after", CHECK_DELAY)
        return Retry(delay, "snapshots accepted", self._step("check", 0, message, self.clock(), check_delay=delay))

    def check_snapshots(self, message: dict[str, Any], job: dict[str, Any]) -> Outcome:
        sub, rg = job["subscription_id"], job["resource_group"]
        compute = self.clients.paced_compute(sub)
        pending = []
        for target in job["snapshots"]:
            try:
                snapshot = compute.snapshots.get(rg, target["name"])
            except Exception as exc:  # noqa: BLE001
                return self._arm_error(message, exc, sub, "check", 0)
            message["reads"] = message.get("reads", 0) + 1
            state = (snapshot.provisioning_state or "").lower()
            if state == "failed":
                return Failed(f"snapshot {target['name']} ended Failed")
            if state != "succeeded":
                pending.append(target["name"])
        if pending:
            return self._next(message, message.get("check_delay", CHECK_DELAY), f"{len(pending)} snapshot(s) still creating",
                              step="check", index=0)
        if job.get("lock_days") and not message.get("locked"):
            return self.lock_snapshots(message, job)
        if "snapshot_sets" in _immutable_kinds(job):
            return self.immutable_snapshots({**message, **self._step("immutable", 0, message, self.clock(),
                                                                      acted=False)}, job)  # its first round now
        return self._after_set(message, job)

    def _after_set(self, message: dict[str, Any], job: dict[str, Any]) -> Outcome:
        if job.get("copy_region"):
            return Retry(1, "copy to the second region", self._step("copy", 0, message))
        return self._after_copies(message, job)

    def _after_copies(self, message: dict[str, Any], job: dict[str, Any]) -> Outcome:
        """The set and its second-region copies are done: its isolated copies, if the policy asks."""
        if job.get("isolated"):
            return Retry(1, "copy into the backup subscription", self._step("isolated", 0, message))
        return Done("snapshot_set", self._tally(message, job))

    # --- immutability (Compute 2026-03-02): Unlocked first, then Locked if the policy says so --------------
    def immutable_snapshots(self, message: dict[str, Any], job: dict[str, Any]) -> Outcome:
        """The set's snapshots, made by this job (create_snapshots let none else through), one at a time."""
        return self._make_immutable(message, job, "immutable", [t["name"] for t in job["snapshots"]],
                                    lambda: self._after_set(message, job))

    def immutable_copies(self, message: dict[str, Any], job: dict[str, Any]) -> Outcome:
        """The set's second-region copies, made by this job, once all are complete."""
        names = [copy_name(t["name"], job["copy_region"]) for t in job["snapshots"]]
        return self._make_immutable(message, job, "copy_immutable", names, lambda: self._after_copies(message, job))

    def _make_immutable(self, message: dict[str, Any], job: dict[str, Any], step: str, names: list[str],
                        then: Any, where: tuple[Arm, str, str] | None = None) -> Outcome:
        """In rounds: look at each snapshot (from ``index``) and take the one next action its policy needs: none,
        set or extend it Unlocked, or lock it; then, if any was taken (``acted``), look again after Azure's
        Retry-After, from the first. Done once a whole round took none: every policy holds as asked. One wait a
        round, not one a snapshot. Each look decides from what Azure shows, so a re-sent message repeats nothing
        done; a Locked policy is only ever extended (Azure refuses less). ``where``: other clients, subscription
        and group (the isolated copies')."""
        from azure.mgmt.compute.models import ImmutabilityPolicyData, ImmutabilityPolicyLockData

        clients, sub, rg = where or (self.clients, job["subscription_id"], job["resource_group"])
        compute = clients.paced_compute(sub)
        locked = bool(job["immutability"].get("locked"))
        index, acted = message.get("index", 0), bool(message.get("acted"))
        seen: dict[str, float] = {}

        def carry(outcome: Outcome) -> Outcome:  # a wait within the round keeps what the round has done
            if isinstance(outcome, Retry):
                outcome.changes["acted"] = acted
            return outcome

        while index < len(names):
            name = names[index]
            try:
                snapshot = compute.snapshots.get(rg, name)
            except Exception as exc:  # noqa: BLE001
                return carry(self._arm_error(message, exc, sub, step, index))
            message["reads"] = message.get("reads", 0) + 1
            policy = snapshot.properties.immutability_policy if snapshot.properties else None
            active = immutability_holds(policy, datetime.fromtimestamp(self.clock(), UTC))
            start = policy.policy_start_time.timestamp() if active and policy.policy_start_time else self.clock()
            days = immutability_days(job, start)
            current = (policy.immutability_duration_days or 0) if active else 0
            held = active and current >= days
            days = max(days, current)  # never less than what holds now (someone else's longer one included)
            if held and (policy.type == "Locked" or not locked):
                index += 1
                continue
            wait = self._wait_for_budget(message, sub, 1, step, index)
            if wait:
                return carry(wait)
            try:
                if (active and policy.type == "Locked") or held:  # extend a Locked one, or lock an Unlocked one
                    compute.snapshots.begin_update_immutability_policy_lock(
                        rg, name, ImmutabilityPolicyLockData(immutability_duration_days=days, type="Locked"),
                        polling=False, raw_response_hook=self._observe(sub, seen))
                else:  # none, expired or too short: Unlocked first
                    compute.snapshots.begin_update_immutability_policy(
                        rg, name, ImmutabilityPolicyData(immutability_duration_days=days, type="Unlocked"),
                        polling=False, raw_response_hook=self._observe(sub, seen))
            except Exception as exc:  # noqa: BLE001
                return carry(self._arm_error(message, exc, sub, step, index))
            message["writes"] = message.get("writes", 0) + 1
            acted = True
            index += 1
        if acted:
            return self._next(message, seen.get("retry_after", 1), f"immutability policies of {len(names)} "
                              "snapshot(s) accepted", step=step, index=0, acted=False,
                              grant=None)  # any grant was spent this round: the next asks the budget again
        return then()

    def lock_snapshots(self, message: dict[str, Any], job: dict[str, Any]) -> Outcome:
        """The policy asks for a delete lock: a CanNotDelete lock on each snapshot (the date it may be
        lifted was tagged at creation: retention removes only its own locks, and only after it). A
        lock already of that name at the snapshot (ours from an earlier delivery, or an operator's)
        is left as it is."""
        from azure.mgmt.resource.locks.models import ManagementLockObject

        sub = job["subscription_id"]
        locks = self.clients.locks(sub).management_locks
        missing = []
        for target in job["snapshots"]:
            scope = compute_id(job, "snapshots", target["name"])
            try:
                found = _get_or_none(locks.get_by_scope, scope, T.OWN_LOCK)
            except Exception as exc:  # noqa: BLE001
                return self._arm_error(message, exc, sub, "check", 0)
            message["reads"] = message.get("reads", 0) + 1
            if found is None:
                missing.append(scope)
        wait = self._wait_for_budget(message, sub, len(missing), "check", 0) if missing else None
        if wait:
            return wait
        until = lock_until(job)
        for scope in missing:
            try:
                locks.create_or_update_by_scope(
                    scope, T.OWN_LOCK, ManagementLockObject(level="CanNotDelete", notes=f"vmkeeper: delete lock until {until}"))
            except Exception as exc:  # noqa: BLE001
                return self._arm_error(message, exc, sub, "check", 0)
            message["writes"] = message.get("writes", 0) + 1
        message["locked"] = True
        return self.check_snapshots(message, job)

    def copy_snapshot(self, message: dict[str, Any], job: dict[str, Any]) -> Outcome:
        """CopyStart one disk's snapshot at a time, in order. A copy already there (an earlier
        delivery, a re-sent job) is looked at, never started again."""
        from azure.mgmt.compute.models import CreationData, Snapshot

        sub, rg, region = job["subscription_id"], job["resource_group"], job["copy_region"]
        compute = self.clients.paced_compute(sub)
        index = message.get("index", 0)
        target = job["snapshots"][index]
        source_id = compute_id(job, "snapshots", target["name"])
        name = copy_name(target["name"], region)
        try:
            found = _get_or_none(compute.snapshots.get, rg, name)
        except Exception as exc:  # noqa: BLE001
            return self._arm_error(message, exc, sub, "copy", index)
        message["reads"] = message.get("reads", 0) + 1
        if found is not None:
            problem = _not_of_set(found, job, source_id)
            if problem:
                return Failed(f"copy {name} exists and {problem}: left as it is")
            return Retry(1, "copy started before", self._step("copy_check", index, message, self.clock(),
                                                              check_delay=COPY_DELAY))
        wait = self._wait_for_budget(message, sub, 1, "copy", index)
        if wait:
            return wait
        # The copy names its disk as its source does (LUN): a set in the second region restores on its own.
        body = Snapshot(location=region, tags=dict(job["tags"], **{T.COPY_OF: source_id[-256:], T.LUN: str(target["lun"])}),
                        incremental=True,
                        creation_data=CreationData(create_option="CopyStart", source_resource_id=source_id))
        seen: dict[str, float] = {}
        try:
            compute.snapshots.begin_create_or_update(rg, name, body, polling=False, raw_response_hook=self._observe(sub, seen))
        except Exception as exc:  # noqa: BLE001
            return self._arm_error(message, exc, sub, "copy", index)
        message["writes"] = message.get("writes", 0) + 1
        delay = seen.get("retry_after", COPY_DELAY)
        return Retry(delay, "copy started", self._step("copy_check", index, message, self.clock(), check_delay=delay))

    def check_copy(self, message: dict[str, Any], job: dict[str, Any]) -> Outcome:
        sub, rg, region = job["subscription_id"], job["resource_group"], job["copy_region"]
        index = message.get("index", 0)
        name = copy_name(job["snapshots"][index]["name"], region)
        try:
            copy = self.clients.paced_compute(sub).snapshots.get(rg, name)
        except Exception as exc:  # noqa: BLE001
            return self._arm_error(message, exc, sub, "copy_check", index)
        message["reads"] = message.get("reads", 0) + 1
        if (copy.provisioning_state or "").lower() == "failed":
            return Failed(f"copy {name} ended Failed")
        if copy.copy_completion_error is not None:
            return Failed(f"copy {name}: {copy.copy_completion_error.error_code}")
        if (copy.completion_percent or 0) < 100:
            return self._copy_later(message, f"copy {name} at {copy.completion_percent}%", "copy_check", index)
        if index + 1 < len(job["snapshots"]):
            return Retry(1, "next disk's copy", self._step("copy", index + 1, message))
        if "copies" in _immutable_kinds(job):
            return self.immutable_copies({**message, **self._step("copy_immutable", 0, message, self.clock(),
                                                                   acted=False)}, job)  # its first round now
        return self._after_copies(message, job)

    # --- isolated copies (shared/schedule/isolated.py): the second identity's clients, the backup subscription ----
    def copy_isolated(self, message: dict[str, Any], job: dict[str, Any]) -> Outcome:
        """Copy one disk's snapshot into the backup subscription, in order. A copy already there (an earlier
        delivery, a re-sent job) is looked at, never made again."""
        from azure.mgmt.compute.models import CreationData, Snapshot

        if self.isolated is None:
            return Failed(I.MISSING)
        iso = self.isolated
        sub, rg = iso.subscription, iso.resource_group
        compute = iso.clients.paced_compute(sub)
        index = message.get("index", 0)
        target = job["snapshots"][index]
        source_id = compute_id(job, "snapshots", target["name"])
        name = I.isolated_name(job, target)
        try:
            found = _get_or_none(compute.snapshots.get, rg, name)
        except Exception as exc:  # noqa: BLE001
            return self._arm_error(message, exc, sub, "isolated", index)
        message["reads"] = message.get("reads", 0) + 1
        if found is not None:
            problem = _not_of_set(found, job, source_id)
            if problem:
                return Failed(f"isolated copy {name} exists and {problem}: left as it is")
            return Retry(1, "isolated copy made before", self._step("isolated_check", index, message, self.clock(),
                                                                   check_delay=COPY_DELAY))
        wait = self._wait_for_budget(message, sub, 1, "isolated", index)
        if wait:
            return wait
        body = Snapshot(location=job["location"], tags=I.copy_tags(job, target, source_id), incremental=True,
                        creation_data=CreationData(create_option="Copy", source_resource_id=source_id))
        seen: dict[str, float] = {}
        try:
            compute.snapshots.begin_create_or_update(rg, name, body, polling=False, raw_response_hook=self._observe(sub, seen))
        except Exception as exc:  # noqa: BLE001
            return self._arm_error(message, exc, sub, "isolated", index)
        message["writes"] = message.get("writes", 0) + 1
        delay = seen.get("retry_after", COPY_DELAY)
        return Retry(delay, "isolated copy started", self._step("isolated_check", index, message, self.clock(),
                                                                 check_delay=delay))

    def check_isolated(self, message: dict[str, Any], job: dict[str, Any]) -> Outcome:
        if self.isolated is None:
            return Failed(I.MISSING)
        sub, rg = self.isolated.subscription, self.isolated.resource_group
        index = message.get("index", 0)
        name = I.isolated_name(job, job["snapshots"][index])
        try:
            copy = self.isolated.clients.paced_compute(sub).snapshots.get(rg, name)
        except Exception as exc:  # noqa: BLE001
            return self._arm_error(message, exc, sub, "isolated_check", index)
        message["reads"] = message.get("reads", 0) + 1
        state = (copy.provisioning_state or "").lower()
        if state == "failed":
            return Failed(f"isolated copy {name} ended Failed")
        if state != "succeeded":
            return self._copy_later(message, f"isolated copy {name} is {state or 'unknown'}", "isolated_check", index)
        if index + 1 < len(job["snapshots"]):
            return Retry(1, "next disk's isolated copy", self._step("isolated", index + 1, message))
        if "isolated_copies" in _immutable_kinds(job):
            return self.immutable_isolated({**message, **self._step("isolated_immutable", 0, message, self.clock(),
                                                                     acted=False)}, job)  # its first round now
        return Done("snapshot_set", self._tally(message, job))

    def immutable_isolated(self, message: dict[str, Any], job: dict[str, Any]) -> Outcome:
        """The set's isolated copies, made by this job, once all are complete: set by the second identity."""
        if self.isolated is None:
            return Failed(I.MISSING)
        iso = self.isolated
        names = [I.isolated_name(job, t) for t in job["snapshots"]]
        return self._make_immutable(message, job, "isolated_immutable", names,
                                    lambda: Done("snapshot_set", self._tally(message, job)),
                                    where=(iso.clients, iso.subscription, iso.resource_group))

    # --- restore points ----------------------------------------------------------------------
    def create_restore_point(self, message: dict[str, Any], job: dict[str, Any]) -> Outcome:
        from azure.mgmt.compute.models import ApiEntityReference, RestorePoint

        point = RestorePoint(consistency_mode=job["consistency"],
                             exclude_disks=[ApiEntityReference(id=d) for d in job.get("exclude_disk_ids", [])])
        return self._put_restore_point(message, job, "create", job["rpc_name"], job["location"], job["vm_id"], point)

    def check_restore_point(self, message: dict[str, Any], job: dict[str, Any]) -> Outcome:
        pending = self._look_at_restore_point(message, job, "check", job["rpc_name"])
        if pending:
            return pending
        if job.get("copy_region"):
            return Retry(1, "copy to the second region", self._step("copy", 0, message))
        return Done("restore_point", self._tally(message, job))

    def copy_restore_point(self, message: dict[str, Any], job: dict[str, Any]) -> Outcome:
        """Azure's cross-region copy of a restore point: a collection in the second region whose source
        is the VM's collection, then a restore point in it whose source is the one just taken."""
        from azure.mgmt.compute.models import ApiEntityReference, RestorePoint

        region = job["copy_region"]
        source = compute_id(job, "restorePointCollections", job["rpc_name"])
        point = RestorePoint(source_restore_point=ApiEntityReference(id=f"{source}/restorePoints/{job['rp_name']}"))
        return self._put_restore_point(message, job, "copy", copy_name(job["rpc_name"], region), region, source, point)

    def check_restore_point_copy(self, message: dict[str, Any], job: dict[str, Any]) -> Outcome:
        return (self._look_at_restore_point(message, job, "copy_check", copy_name(job["rpc_name"], job["copy_region"]))
                or Done("restore_point", self._tally(message, job)))

    # The take and the copy differ only in their collection, its region and source, and the point's body.
    _CHECK = {"create": "check", "copy": "copy_check"}  # the step that looks at what a step put
    _CHECK_DELAY = {"check": CHECK_DELAY, "copy_check": COPY_DELAY}  # when ARM gives no Retry-After

    def _put_restore_point(self, message: dict[str, Any], job: dict[str, Any], step: str, collection: str,
                           location: str, source_id: str, point: Any) -> Outcome:
        """The collection (created once, if missing: its tags are never written again, so an
        operator's hold and the policy its old points follow stay) and the restore point in it (if
        missing: one there, from an earlier delivery or a re-sent job, is looked at, not made again),
        without waiting; a race's "already exists" is the create it repeats. A later message looks
        at it. A collection of that name made from another source is left alone and fails the job."""
        from azure.core.exceptions import HttpResponseError
        from azure.mgmt.compute.models import RestorePointCollection, RestorePointCollectionSourceProperties

        sub, rg = job["subscription_id"], job["resource_group"]
        compute, seen = self.clients.paced_compute(sub), {}
        check = self._CHECK[step]
        try:
            found = _get_or_none(compute.restore_point_collections.get, rg, collection)
            message["reads"] = message.get("reads", 0) + 1
            has_point = False
            if found is not None:
                source = ((found.source.id if found.source else None) or "").lower()
                if source != source_id.lower():
                    return Failed(f"restore point collection {collection} exists with another source "
                                  f"({source or 'none'}): left as it is")
                has_point = _get_or_none(compute.restore_points.get, rg, collection, job["rp_name"]) is not None
                message["reads"] += 1
        except Exception as exc:  # noqa: BLE001
            return self._arm_error(message, exc, sub, step, 0)
        if has_point:
            delay = self._CHECK_DELAY[check]
            return Retry(1, f"restore point {step} made before", self._step(check, 0, message, self.clock(),
                                                                             check_delay=delay))
        missing = found is None
        wait = self._wait_for_budget(message, sub, 1 + missing, step, 0)
        if wait:
            return wait
        collection_tags = {k: v for k, v in job["tags"].items() if k in (T.MANAGED_BY, T.VM, T.ARTIFACT_POLICY)}
        try:
            if missing:
                compute.restore_point_collections.create_or_update(
                    rg, collection, RestorePointCollection(location=location, tags=collection_tags,
                                                           source=RestorePointCollectionSourceProperties(id=source_id)),
                    raw_response_hook=self._observe(sub))
            compute.restore_points.begin_create(rg, collection, job["rp_name"], point, polling=False,
                                                raw_response_hook=self._observe(sub, seen))
        except Exception as exc:  # noqa: BLE001
            if not (isinstance(exc, HttpResponseError) and exc.status_code == 409 and "already exists" in str(exc.message)):
                return self._arm_error(message, exc, sub, step, 0)
        message["writes"] = message.get("writes", 0) + 1 + missing
        delay = seen.get("retry_after", self._CHECK_DELAY[check])
        return Retry(delay, f"restore point {step} accepted", self._step(check, 0, message, self.clock(), check_delay=delay))

    def _look_at_restore_point(self, message: dict[str, Any], job: dict[str, Any], step: str,
                               collection: str) -> Outcome | None:
        """None once the restore point has succeeded; otherwise what to do: look again later, or fail."""
        sub, rg = job["subscription_id"], job["resource_group"]
        try:
            rp = self.clients.paced_compute(sub).restore_points.get(rg, collection, job["rp_name"])
        except Exception as exc:  # noqa: BLE001
            return self._arm_error(message, exc, sub, step, 0)
        message["reads"] = message.get("reads", 0) + 1
        state = (rp.provisioning_state or "").lower()
        if state == "failed":
            return Failed(f"restore point {collection}/{job['rp_name']} ended Failed")
        if state != "succeeded":
            if step == "copy_check":
                return self._copy_later(message, f"restore point copy {collection}/{job['rp_name']} is "
                                                 f"{state or 'unknown'}", step, 0)
            delay = message.get("check_delay", self._CHECK_DELAY[step])
            return self._next(message, delay, f"restore point {collection}/{job['rp_name']} is {state or 'unknown'}",
                              step=step, index=0)
        return None

    @staticmethod
    def _tally(message: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
        return {"vm": job["vm_id"], "slot": job["slot"], "set": job["set_id"], "reads": message.get("reads", 0),
                "writes": message.get("writes", 0)}


def _immutable_kinds(job: dict[str, Any]) -> tuple[str, ...]:
    """The kinds of point the job's policy makes immutable (none without an immutability block)."""
    spec = job.get("immutability")
    return tuple(spec.get("kinds") or ()) if isinstance(spec, dict) else ()


def _get_or_none(get: Any, *args: Any) -> Any:
    """The resource, or None where ARM says it is not there (404)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return get(*args)
    except ResourceNotFoundError:
        return None


def _not_of_set(snapshot: Any, job: dict[str, Any], source_id: str) -> str | None:
    """Why a snapshot found under a name of the set is not the set's (None: it is): vmkeeper's tags
    naming this set, made from the disk (or, for a copy, the snapshot) the set would make it from."""
    tags = snapshot.tags or {}
    if not T.is_managed(tags) or tags.get(T.SET) != job["set_id"]:
        return f"is not of set {job['set_id']} (tags)"
    made_from = (snapshot.creation_data.source_resource_id if snapshot.creation_data else None) or ""
    if made_from.lower() != source_id.lower():
        return f"is made from {made_from or 'nothing'}, not {source_id}"
    return None
