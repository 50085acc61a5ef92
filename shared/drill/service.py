"""DR drills, run: a timer plans the period's drills (shared/drill/planner.py) and sends one message per
drill; the worker advances each drill a step at a time, its state a row in the ledger, so a crash
anywhere resumes at the step that was running (every step looks before it writes):

1. ``choose``: the newest complete point of the kind the policy asks for (the inventory: shared/points/);
2. ``isolate``: a resource group of the drill's own (tagged with its id) and a VNet with no peering, in the
   point's region; each looked for first and created only if missing (create-only): a group or VNet of that
   name that does not carry the drill's id is someone else's, and the drill fails without touching it;
3. ``restore``: a restore to a new VM in that group and VNet, through the restore API's machinery (its
   service, queue and worker; the drill's id as the Idempotency-Key);
4. ``boot``: until the VM runs and its VM agent reports Ready (instance view): RTO = restore requested →
   ready; RPO = the point's age when the drill began;
5. ``teardown``: after ``keep_hours`` (a failed drill: ``keep_failed_hours``, for inspection), the group is
   deleted — only a group tagged with this drill's id, holding nothing but what the drill made (its restore's
   resources, its VNet), without ``vmkeeper-hold`` — and the listing afterwards must be empty.

A failed drill raises ``vmkeeper.drill.failed`` once. A teardown that cannot finish — the group held, holding
another's resources, not the drill's, locked, or its delete failing — keeps the group, raises
``vmkeeper.drill.kept`` once per cause, and is sent again by each later ``plan_drills`` pass (until it finishes).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import tags as T
from ..alerts import events as A
from ..azure.graph import query_all
from ..azure.ledger import Ledger
from ..azure.retry_after import retry_after_seconds
from ..instants import format_instant, parse_instant
from ..membership import outside_or_none
from ..ports import Arm, Queue
from ..queue import messages, runner
from ..queue.messages import Done, Failed, Outcome, Retry
from ..settings import DrillSettings
from . import planner, replica

log = logging.getLogger("vmkeeper.drill")
KIND = "drill"
PARTITION = "drills"
RUNNING, PASSED, FAILED = "running", "passed", "failed"
KEPT, REMOVING, REMOVED = "kept", "removing", "removed"
REFUSED, HELD, FOREIGN, BLOCKED = "refused", "held", "foreign", "blocked"  # a teardown that kept the group
DELETE_TRIES = 3  # group deletes that ended with the group still there before the teardown says it is blocked
# Looks at a restore (our own record) or a booting VM: a tenth of the time waited so far, from 1 s to POLL: a drill
# sees the end of a short wait within a second and of a long one within a few percent, at a few dozen looks.
POLL, LOOK_SHARE = 10, 0.1
MAX_DELETE_LOOK = 60  # seconds: a long Retry-After is not waited past this between looks
DELETE_LOOK = 2  # seconds between looks at a deleting group when ARM's answer to the delete gave no Retry-After
SEND_THREADS = 8  # drills recorded and sent in parallel by the timer (four Storage round trips each)
MAX_WAIT = 3600  # seconds a message waits at most before looking again (a long keep is several waits)
VMS = "Resources | where type =~ 'microsoft.compute/virtualmachines' | project id, tags"
LEFT = "Resources | where subscriptionId =~ '{sub}' and resourceGroup =~ '{group}' | project id"


def _now() -> datetime:
    return datetime.now(UTC)


def _look(since: str) -> int:
    """Seconds until the next look at something that began at ``since``: LOOK_SHARE of the wait so far, 1 to POLL."""
    waited = (_now() - (parse_instant(since) or _now())).total_seconds()
    return max(1, min(POLL, int(waited * LOOK_SHARE)))


def _advice(seen: dict[str, int]):
    """A raw-response hook keeping ARM's Retry-After (whole seconds) in ``seen["after"]``."""
    def hook(response: Any) -> None:
        after = retry_after_seconds(response.http_response.headers)
        if after is not None:
            seen["after"] = after
    return hook


class Drills:
    def __init__(self, settings: DrillSettings, arm: Arm, queue: Queue, poison: Queue, ledger: Ledger,
                 restores: Any, alerts: Any = None):
        self.settings, self.arm, self.queue, self.poison = settings, arm, queue, poison
        self.ledger, self.restores, self.alerts = ledger, restores, alerts

    # --- the timer ------------------------------------------------------------------------------
    def plan_and_enqueue(self, now: datetime) -> dict[str, int]:
        """Each due drill is recorded, then sent, then marked sent: a crash between sends it on the next run."""
        from concurrent.futures import ThreadPoolExecutor

        from ..policy.document import load_policy_file

        policies = load_policy_file(self.settings.policy_file)
        vms = query_all(self.arm.resource_graph(), list(self.settings.subscriptions), VMS)
        def send(d: Any) -> str:
            row = self.ledger.get(PARTITION, d.id)
            if row is not None and row.get("sent"):
                return "already"
            if row is None:
                self.ledger.record(PARTITION, d.id, {
                    "drill": d.id, "vmId": d.vm_id, "policy": d.policy, "spec": json.dumps(d.spec.__dict__),
                    "copyRegion": d.copy_region or "", "state": RUNNING, "step": "choose", "cleanup": "",
                    "planned": format_instant(now), "sent": False})
            self.queue.send_message(messages.encode({"v": 1, "kind": KIND, "drill_id": d.id}))
            self.ledger.record(PARTITION, d.id, {**self._row(d.id), "sent": True})
            return "sent"

        outside, _ = outside_or_none(self.arm, self.settings.vaults, "drill planning")
        due = planner.due(vms, policies, now, outside)
        with ThreadPoolExecutor(SEND_THREADS) as pool:  # each drill's rows and message are its own: side by side
            sent = list(pool.map(send, due))
        counts = {"due": len(due), "sent": sent.count("sent"), "already": sent.count("already")}
        counts["teardowns"] = self._resend_teardowns()
        log.info("drills planned at %s: %s", format_instant(now), counts)
        return counts

    def _resend_teardowns(self) -> int:
        """Teardowns that could not finish (their message ended, the group kept) are tried again each pass."""
        sent = 0
        for r in self.ledger.rows(PARTITION, "step eq 'teardown' and sent eq false", select=["drill"]):
            self.queue.send_message(messages.encode({"v": 1, "kind": KIND, "drill_id": r["drill"]}))
            self.ledger.record(PARTITION, r["drill"], {**self._row(r["drill"]), "sent": True})
            sent += 1
        return sent

    # --- the worker -----------------------------------------------------------------------------
    def handle_message(self, body: bytes | str) -> str:
        return runner.run(body, kind=KIND, step=self.advance, queue=self.queue, poison=self.poison,
                          on_done=lambda job, done: log.info("drill %s: %s", job.get("drill_id"), done.detail),
                          on_failed=self._gave_up, required=("drill_id",), alert=self._poisoned)

    def _gave_up(self, job: dict[str, Any], reason: str) -> None:
        """A drill whose step kept failing is a failed drill; its teardown still runs (a fresh message), unless
        it was the teardown that kept failing: then the group stays, the alert says so, and the next pass
        tries again."""
        row = self._row(str(job.get("drill_id")))
        if not row or row.get("step") == "done":
            return
        if row.get("step") == "teardown":
            self._kept(row, BLOCKED, f"teardown kept failing: {reason}")
            return
        self._fail(row, f"{row.get('step')}: {reason}")
        self.queue.send_message(messages.encode({"v": 1, "kind": KIND, "drill_id": row["drill"]}))

    def _poisoned(self, cause: str, job: Any, reason: str) -> None:
        """A known drill's failure was said by ``_fail`` (drill.failed); anything else is a poisoned job."""
        known = isinstance(job, dict) and isinstance(job.get("drill_id"), str) and self._row(job["drill_id"])
        if self.alerts is not None and not known:
            self.alerts.raise_(A.for_poisoning("poisoned", job, reason, self.settings.queue))

    def _row(self, drill: str) -> dict[str, Any]:
        row = self.ledger.get(PARTITION, drill) or {}
        return {k: v for k, v in row.items() if k not in ("PartitionKey", "RowKey", "item", "updated")}

    def _save(self, row: dict[str, Any]) -> None:
        self.ledger.record(PARTITION, row["drill"], row)

    def advance(self, job: dict[str, Any]) -> Outcome:
        drill = job["drill_id"]
        if not isinstance(drill, str) or not self.ledger.get(PARTITION, drill):
            return Failed(f"message.drill_id: no drill {drill!r}")
        for _ in range(10):  # steps that need no wait follow each other in one delivery
            row = self._row(drill)
            step = replica.step(self, row) or getattr(self, f"_{row['step']}")  # replica drills: shared/drill/replica.py
            outcome = step(row)
            if outcome is not None:
                return outcome
        return Retry(1, "more steps")

    def _fail(self, row: dict[str, Any], reason: str) -> None:
        now = _now()
        spec = json.loads(row["spec"])
        row.update(state=FAILED, reason=reason[:4000], failedAt=format_instant(now), step="teardown", cleanup=KEPT,
                   teardownAfter=format_instant(now + timedelta(hours=spec.get("keep_failed_hours", 24))))
        self._save(row)
        if self.alerts is not None:
            self.alerts.raise_(A.Alert(A.DRILL_FAILED, row["vmId"], row["drill"], {
                "drill": row["drill"], "reason": reason[:4000], "group": row.get("group") or None,
                "teardown_after": row["teardownAfter"]}))

    def _kept(self, row: dict[str, Any], cause: str, why: str) -> Done:
        """The group stays: said once per cause (``vmkeeper.drill.kept``), and tried again by the next timer
        pass (``sent`` false), except a group that is not the drill's: never touched again."""
        row.update(cleanup=cause, kept=why[:4000], sent=False)
        if cause == REFUSED:
            row.update(step="done")
        self._save(row)
        if self.alerts is not None:
            self.alerts.raise_(A.Alert(A.DRILL_KEPT, row["vmId"], f"{row['drill']}|{cause}", {
                "drill": row["drill"], "group": row.get("group") or None, "cleanup": cause, "reason": why[:4000]}))
        log.warning("drill %s: %s kept (%s): %s", row["drill"], row.get("group"), cause, why)
        return Done(KIND, {"drill": row["drill"], "state": row["state"], "cleanup": cause})

    # 1. the point
    def _choose(self, row: dict[str, Any]) -> Outcome | None:
        from ..points.inventory import Inventory
        from ..policy.document import DrillSpec

        spec = DrillSpec(**json.loads(row["spec"]))
        points = Inventory(self.arm, {}).of_vm(row["vmId"])  # drills restore no vault point: none read
        point = planner.choose_point(points, spec, row.get("copyRegion") or None)
        if point is None:
            self._fail(row, f"no complete {spec.point.replace('_', ' ')} point of {row['vmId']} to drill")
            return None
        now = _now()
        sub = row["vmId"].split("/")[2]
        group = f"/subscriptions/{sub}/resourceGroups/{planner.group_name(row['drill'])}"
        row.update(step="isolate", point=point.id, pointKind=spec.point, pointTime=format_instant(point.time),
                   region=point.region, group=group, began=format_instant(now),
                   rpoSeconds=round(max((now - point.time).total_seconds(), 0), 1))
        self._save(row)
        return None

    # 2. the isolated group and VNet
    def _isolate(self, row: dict[str, Any]) -> Outcome | None:
        """The group is created only if missing: one of that name found already is the drill's only if it
        carries the drill's id (this step made it before a crash); anyone else's is never written to."""
        from azure.core.exceptions import ResourceNotFoundError

        sub, name = row["group"].split("/")[2], row["group"].split("/")[4]
        groups = self.arm.resources(sub).resource_groups
        try:
            found = groups.get(name)
        except ResourceNotFoundError:
            groups.create_or_update(name, {"location": row["region"], "tags": {
                T.MANAGED_BY: T.MANAGED_BY_VALUE, T.DRILL_ID: row["drill"], T.VM: row["vmId"]}})
        else:
            if not self._ours(found.tags, row):
                group = row["group"]
                row.update(group="", foreignGroup=group)  # nothing of the drill's is in it: teardown leaves it
                self._fail(row, f"resource group {group} exists and is not this drill's (tag {T.DRILL_ID}="
                                f"{(found.tags or {}).get(T.DRILL_ID)!r}): the drill did not use it, nothing was changed")
                return None
        vnets = self.arm.network(sub).virtual_networks
        return self._isolated(row, vnets, name)

    @staticmethod
    def _ours(tags: dict[str, str] | None, row: dict[str, Any]) -> bool:
        return T.is_managed(tags) and (tags or {}).get(T.DRILL_ID) == row["drill"]

    def _isolated(self, row: dict[str, Any], vnets: Any, name: str) -> Outcome | None:
        """The VNet: created if missing (not waited on), then checked Succeeded and without peerings. The PUT's
        own answer is checked first: one that is already Succeeded needs no second look a queue hop later."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            vnet = vnets.get(name, "vnet-drill")
        except ResourceNotFoundError:
            from azure.mgmt.network.models import AddressSpace, Subnet, VirtualNetwork

            vnet = vnets.begin_create_or_update(name, "vnet-drill", VirtualNetwork(
                location=row["region"], tags={T.MANAGED_BY: T.MANAGED_BY_VALUE, T.DRILL_ID: row["drill"]},
                address_space=AddressSpace(address_prefixes=[planner.ADDRESS_SPACE]),
                subnets=[Subnet(name=planner.SUBNET, address_prefix=planner.SUBNET_PREFIX)]), polling=False).result()
        else:
            if not self._ours(vnet.tags, row):
                self._fail(row, f"{vnet.id} exists and is not this drill's (tag {T.DRILL_ID}="
                                f"{(vnet.tags or {}).get(T.DRILL_ID)!r}): nothing was changed")
                return None
        if (vnet.provisioning_state or "Succeeded") != "Succeeded":
            return Retry(1, f"VNet {vnet.provisioning_state}")
        if vnet.virtual_network_peerings:
            self._fail(row, f"{vnet.id} has peerings: the drill's VNet must be isolated")
            return None
        row.update(step="restore", subnet=f"{vnet.id}/subnets/{planner.SUBNET}")
        self._save(row)
        return None

    # 3. the restore, through the restore API's service and worker
    def _restore(self, row: dict[str, Any]) -> Outcome | None:
        from ..restore.access import OPERATOR, Principal
        from ..restore.service import INTERNAL, STEP_TIMEOUT, NotFound, Refused

        if not row.get("restore"):
            spec = json.loads(row["spec"])
            body = {"vm": row["vmId"], "recovery_point": row["point"], "target": {
                "type": "vm", "resource_group": row["group"], "subnet": row["subnet"],
                "vm_name": planner.vm_name(row["vmId"].rsplit("/", 1)[-1]),
                **({"vm_size": spec["vm_size"]} if spec.get("vm_size") else {})}}
            who = Principal(f"{INTERNAL}{row['drill']}", "vmkeeper DR drill", frozenset({OPERATOR}))
            requested = _now()
            try:
                record, _ = self.restores.request(who, body, f"drill-{row['drill']}")
            except Refused as exc:
                self._fail(row, f"restore refused: {exc}")
                return None
            row.update(restore=record.id, requested=format_instant(requested))
            self._save(row)
        try:
            record = self.restores.get(row["restore"])
        except NotFound:
            record = None
        if record is None or record.state in ("failed", "cancelled"):
            self._fail(row, f"restore {row['restore']} {record.state if record else 'not found'}: "
                            f"{(record.error or {}).get('message', '') if record else ''}")
            return None
        if record.state != "succeeded":
            # The restore fails its own steps after STEP_TIMEOUT; a restore that never moves at all (its message
            # lost) must not hold the drill for ever either.
            if _now() - parse_instant(row["requested"]) > timedelta(seconds=STEP_TIMEOUT + 3600):
                self._fail(row, f"restore {record.id} still {record.state} {STEP_TIMEOUT / 3600 + 1:g} h after it was asked")
                return None
            return Retry(_look(row["requested"]), f"restore {record.id} {record.state}")
        vm = next((r for r in record.created if "/virtualmachines/" in r.lower()), "")
        row.update(step="boot", drilledVm=vm, restored=format_instant(_now()))
        self._save(row)
        return None

    # 4. running, its agent Ready
    def _boot(self, row: dict[str, Any]) -> Outcome | None:
        parts = row["drilledVm"].split("/")
        view = self.arm.compute(parts[2]).virtual_machines.instance_view(parts[4], parts[-1])
        codes = [s.code or "" for s in view.statuses or []]
        running = "PowerState/running" in codes
        agent = [(s.display_status or "") for s in ((view.vm_agent.statuses if view.vm_agent else None) or [])]
        now = _now()
        if running and "Ready" in agent:
            requested = parse_instant(row["requested"])
            row.update(state=PASSED, readyAt=format_instant(now), rtoSeconds=round((now - requested).total_seconds(), 1),
                       step="teardown", cleanup=KEPT, teardownAfter=format_instant(
                           now + timedelta(hours=json.loads(row["spec"]).get("keep_hours", 0))))
            self._save(row)
            return None
        limit = parse_instant(row["restored"]) + timedelta(minutes=json.loads(row["spec"]).get("ready_timeout_minutes", 30))
        if now >= limit:
            self._fail(row, f"{row['drilledVm']} not ready {json.loads(row['spec']).get('ready_timeout_minutes', 30)} min "
                            f"after its restore: power {', '.join(c for c in codes if c.startswith('PowerState')) or '?'}, "
                            f"agent {', '.join(agent) or 'not reporting'}")
            return None
        return Retry(_look(row["restored"]), f"{row['drilledVm']}: running={running}, agent={agent or 'not reporting'}")

    # 5. teardown: only the drill's own group, holding only what the drill made, verified empty
    def _teardown(self, row: dict[str, Any]) -> Outcome | None:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        now = _now()
        after = parse_instant(row.get("teardownAfter")) or now
        if now < after:
            return Retry(int(min(MAX_WAIT, max(1, (after - now).total_seconds()))), "kept until " + row["teardownAfter"])
        if not row.get("group"):
            row.update(cleanup=REMOVED, removedAt=format_instant(now), step="done")
            self._save(row)
            return Done(KIND, {"drill": row["drill"], "state": row["state"]})
        sub, name = row["group"].split("/")[2], row["group"].split("/")[4]
        groups = self.arm.resources(sub).resource_groups
        try:
            group = groups.get(name)
        except ResourceNotFoundError:
            return self._verify(row, sub, name)
        if (group.tags or {}).get(T.DRILL_ID) != row["drill"]:
            row.update(reason=(row.get("reason") or "") +
                       f" teardown refused: {row['group']} is not tagged {T.DRILL_ID}={row['drill']}")
            return self._kept(row, REFUSED, f"{row['group']} is not tagged {T.DRILL_ID}={row['drill']}: not deleted")
        deleting = bool(group.properties and group.properties.provisioning_state == "Deleting")
        if row.get("cleanup") == REMOVING and deleting:
            return Retry(int(row.get("deleteLook") or DELETE_LOOK), f"{row['group']} being deleted")
        tags = {str(k).lower(): v for k, v in (group.tags or {}).items()}
        if T.HOLD in tags:
            return self._kept(row, HELD, f"{row['group']} is tagged {T.HOLD}={tags[T.HOLD]!r}: kept until the tag is removed")
        foreign = self._foreign(row, sub, name)
        if foreign:
            return self._kept(row, FOREIGN, f"{row['group']} holds {len(foreign)} resource(s) the drill did not make "
                                            f"(not tagged {T.RESTORE}={row.get('restore') or '?'}): {', '.join(foreign[:20])}")
        tries = int(row.get("deleteTries") or 0) + (row.get("cleanup") == REMOVING)
        if tries >= DELETE_TRIES:  # each delete ended with the group still there (a resource in it refused)
            row.update(deleteTries=0)
            return self._kept(row, BLOCKED, f"{row['group']} still there after {tries} deletes")
        seen: dict[str, int] = {}
        try:
            groups.begin_delete(name, polling=False, raw_response_hook=_advice(seen))
        except HttpResponseError as exc:
            if exc.status_code != 409:  # ScopeLocked and its kind: retrying now changes nothing
                raise
            row.update(deleteTries=0)
            return self._kept(row, BLOCKED, f"the delete of {row['group']} was refused: {exc.message or exc}"[:4000])
        # ARM's Retry-After on the delete says when to look (and how often after that): a look before it
        # would only find the group still deleting.
        look = min(MAX_DELETE_LOOK, seen.get("after") or DELETE_LOOK)
        row.update(cleanup=REMOVING, deleteTries=tries, deleteLook=look)
        self._save(row)
        return Retry(look, f"{row['group']} being deleted")

    def _foreign(self, row: dict[str, Any], sub: str, name: str) -> list[str]:
        """What is in the group that the drill did not make: anything not tagged with its restore's id (the
        disks, NIC and VM) or its own id (the VNet). Read from ARM itself, not the index, which lags."""
        out = []
        for r in self.arm.resources(sub).resources.list_by_resource_group(name):
            if (r.type or "").lower().startswith("microsoft.authorization/"):
                continue  # a lock is no resource of its own: its delete's 409 says it
            tags = r.tags or {}
            mine = (row.get("restore") and tags.get(T.RESTORE) == row["restore"]) or tags.get(T.DRILL_ID) == row["drill"]
            if not mine:
                out.append(r.id)
        return out

    def _verify(self, row: dict[str, Any], sub: str, name: str) -> Outcome:
        left = [r["id"] for r in query_all(self.arm.resource_graph(), [sub], LEFT.format(sub=sub, group=name))]
        if left:
            return Retry(2, f"{len(left)} resources still listed in {row['group']}")
        row.update(cleanup=REMOVED, removedAt=format_instant(_now()), step="done", leftover="[]")
        self._save(row)
        return Done(KIND, {"drill": row["drill"], "state": row["state"], "cleanup": REMOVED})

    def _done(self, row: dict[str, Any]) -> Outcome:
        return Done(KIND, {"drill": row["drill"], "state": row["state"], "cleanup": row.get("cleanup")})

    # --- reading --------------------------------------------------------------------------------
    def history(self) -> list[Any]:
        """Every drill, newest first, as the report shows them."""
        from ..report.model import DrillRow

        out = []
        for r in self.ledger.rows(PARTITION):
            out.append(DrillRow(r["drill"], r["vmId"], r.get("requested") or r.get("began") or r.get("planned", ""),
                                r.get("state", RUNNING), r.get("rtoSeconds"), r.get("rpoSeconds"),
                                r.get("pointKind") or json.loads(r.get("spec") or "{}").get("point", ""),
                                r.get("cleanup", ""), r.get("reason", "")))
        return sorted(out, key=lambda d: (d.started, d.id), reverse=True)
