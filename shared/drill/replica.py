"""Replica drills (a policy's ``drill.point: replica``): a Site Recovery test failover proves the VM's replica
boots. The steps that differ from a restore drill live here; the worker (shared/drill/service.py) dispatches to
them by the drill's kind and runs the shared ones itself (isolate, boot, and the group's teardown):

1. ``choose``: the VM's Azure-to-Azure replicated item, read from the vaults of ``VMKEEPER_VAULTS`` (the target
   region's vault among them), with a test failover allowed now (one pending that is not this drill's is never
   taken over); its newest recovery point; the region and group its test VM goes to;
2. ``isolate`` (shared): the drill's own group and a VNet without peering in the target region, create-only;
3. ``restore``: ``testFailover`` into that VNet at that point, sent once — its time noted first, so a crash after
   the POST follows the test failover it started instead of sending another — then followed by its operation
   (``Azure-AsyncOperation``, ``Retry-After``; never a sleep) until Succeeded: the test VM is the drilled VM;
4. ``boot`` (shared): the test VM running, its agent Ready; RTO = test failover sent → ready;
5. ``teardown``, first part (here): after ``keep_hours`` (a failed drill: ``keep_failed_hours``),
   ``testFailoverCleanup`` of the drill's test failover — after a failed one too — followed to Succeeded, then
   the target group read from ARM: nothing named as the test's (A2A's ``{vm}-test``, ``{nic}-test``,
   ``{disk}-test``) or made by it may be left. Then the shared teardown deletes the drill's group and VNet.

A test failover or cleanup ASR refuses or fails fails the drill (``vmkeeper.drill.failed``, once); a cleanup that
keeps failing, or test resources left after it, keep the drill (``vmkeeper.drill.kept``, once per cause) and later
``plan_drills`` passes try again.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..azure.retry_after import retry_after_seconds
from ..instants import format_instant, parse_instant
from ..queue.messages import Outcome, Retry
from . import planner
from . import replica_choice as choice

REPLICA = "replica"
POLL = 2  # seconds between looks when Site Recovery gives no Retry-After
WAIT_BUSY = 15  # seconds between looks at an item whose test failover or cleanup runs without our monitor
RESEND_AFTER = timedelta(minutes=5)  # a test failover noted as sent that the item never showed is sent again
CLEANUP_TRIES = 3  # cleanups that ended Failed before the drill is kept (tried again by later passes)
VERIFY_FOR = timedelta(minutes=10)  # how long test resources may still be listed after a cleanup Succeeded
LEFTOVER = "leftover"  # a teardown kept: the target group still holds the test's resources
CLEANUP_FAILED = "cleanup_failed"  # a teardown kept: testFailoverCleanup keeps failing


def _now() -> datetime:
    return datetime.now(UTC)


def is_replica(row: dict[str, Any]) -> bool:
    return (row.get("pointKind") or json.loads(row.get("spec") or "{}").get("point")) == REPLICA


def step(drills: Any, row: dict[str, Any]) -> Callable[[dict[str, Any]], Outcome | None] | None:
    """The replica drill's own step for this row, or None (a restore drill's, or a step both kinds share)."""
    if not is_replica(row):
        return None
    replica = Replica(drills)
    name = row.get("step")
    if name == "choose":
        return replica.choose
    if name == "restore":
        return replica.test_failover
    if name == "teardown" and replica.cleanup_due(row):
        return replica.cleanup
    return None


def _parts(resource_id: str) -> dict[str, str]:
    from azure.mgmt.core.tools import parse_resource_id

    return parse_resource_id(resource_id)


def _monitor(seen: dict[str, Any]) -> Callable[[Any], None]:
    """A raw-response hook: the operation's ``Azure-AsyncOperation`` monitor (only on the ARM host the request
    went to: the credential's token is never sent elsewhere) and its ``Retry-After``."""
    def hook(response: Any) -> None:
        headers = response.http_response.headers
        seen["after"] = retry_after_seconds(headers)
        url = headers.get("Azure-AsyncOperation") or ""
        sent, got = urllib.parse.urlsplit(response.http_request.url), urllib.parse.urlsplit(url)
        seen["url"] = url if (got.scheme, got.netloc) == (sent.scheme, sent.netloc) and got.scheme == "https" else ""
    return hook


class Replica:
    def __init__(self, drills: Any):
        self.drills, self.arm = drills, drills.arm

    # --- Site Recovery ----------------------------------------------------------------------------
    def _item_call(self, item_id: str) -> tuple[Any, tuple[str, str, str, str, str]]:
        """The client for the item's vault and the per-call arguments that name the item."""
        p = _parts(item_id)
        return self.arm.site_recovery(p["subscription"]), (p["resource_group"], p["name"], p["child_name_1"],
                                                           p["child_name_2"], p["child_name_3"])

    def _item(self, row: dict[str, Any]) -> dict[str, Any]:
        asr, args = self._item_call(row["replicatedItem"])
        return asr.replication_protected_items.get(*args).as_dict()

    def _items(self) -> list[dict[str, Any]]:
        out, seen = [], set()
        for vault_id in self.drills.settings.vaults.values():
            if vault_id.lower() in seen:
                continue
            seen.add(vault_id.lower())
            p = _parts(vault_id)
            out += [i.as_dict() for i in self.arm.site_recovery(p["subscription"]).replication_protected_items.list(
                p["resource_group"], p["name"])]
        return out

    def _status(self, row: dict[str, Any], url: str) -> tuple[str, str, int]:
        """An operation's status, its error and when to look again (its monitor's ``Retry-After``); status
        ``Gone`` when the monitor no longer knows it (the item's own state says then)."""
        from azure.core.exceptions import HttpResponseError
        from azure.core.rest import HttpRequest

        asr, _ = self._item_call(row["replicatedItem"])
        response = asr.send_request(HttpRequest("GET", url))
        if response.status_code == 404:
            return "Gone", "", POLL
        if response.status_code != 200:
            raise HttpResponseError(response=response)
        body = response.json()
        error = body.get("error") or {}
        why = f"{error.get('code') or ''}: {error.get('message') or ''}".strip(": ")
        return str(body.get("status") or "InProgress"), why, retry_after_seconds(response.headers) or POLL

    # 1. the replicated item, its newest point, where its test VM goes
    def choose(self, row: dict[str, Any]) -> Outcome | None:
        vm = row["vmId"]
        if not self.drills.settings.vaults:
            self.drills._fail(row, f"no vault to find {vm}'s replicated item in: VMKEEPER_VAULTS is empty")
            return None
        item = choice.item_of(self._items(), vm)
        if item is None:
            self.drills._fail(row, f"no replicated item (Site Recovery, Azure-to-Azure) of {vm} in the vaults of "
                                   f"VMKEEPER_VAULTS: {', '.join(sorted(set(self.drills.settings.vaults.values())))}")
            return None
        if why := choice.not_testable(item):
            self.drills._fail(row, why)
            return None
        aim = choice.target(item)
        if not aim.region or not aim.group:
            self.drills._fail(row, f"replicated item {item['id']}: no recovery region or resource group reported")
            return None
        asr, args = self._item_call(item["id"])
        point = choice.newest_point(p.as_dict() for p in asr.recovery_points.list_by_replication_protected_items(*args))
        if point is None:
            self.drills._fail(row, f"replicated item {item['id']} has no recovery point yet")
            return None
        now = _now()
        target_sub = _parts(aim.group)["subscription"]
        row.update(step="isolate", point=point[0], pointKind=REPLICA, pointTime=format_instant(point[1]),
                   region=aim.region, group=f"/subscriptions/{target_sub}/resourceGroups/{planner.group_name(row['drill'])}",
                   began=format_instant(now), rpoSeconds=round(max((now - point[1]).total_seconds(), 0), 1),
                   replicatedItem=item["id"], direction=aim.direction, targetGroup=aim.group,
                   testNames=json.dumps(list(aim.names)))
        self.drills._save(row)
        return None

    # 3. the test failover: sent once, followed to its end
    def test_failover(self, row: dict[str, Any]) -> Outcome | None:
        if row.get("tfoOperation"):
            status, why, after = self._status(row, row["tfoOperation"])
            if status in ("Succeeded", "Failed", "Canceled"):
                return self._tested(row, status, why)
            if status != "Gone":
                return Retry(after, f"test failover {status}")
            row.update(tfoOperation="")
            self.drills._save(row)
        item = self._item(row)
        if row.get("tfoAt"):  # sent before, its monitor not noted (a crash): what the item shows
            state = (item.get("properties") or {}).get("testFailoverState") or "None"
            if state == "WaitingForCompletion":
                return self._tested(row, "Succeeded", "")
            if state == "Failed":
                return self._tested(row, "Failed", "the item's test failover failed")
            if state != "None" or _now() - parse_instant(row["tfoAt"]) < RESEND_AFTER:
                return Retry(WAIT_BUSY if state != "None" else POLL, f"test failover sent; the item shows {state}")
        return self._send_test_failover(row, item)

    def _send_test_failover(self, row: dict[str, Any], item: dict[str, Any]) -> Outcome | None:
        from azure.core.exceptions import HttpResponseError
        from azure.mgmt.recoveryservicessiterecovery.models import (
            A2ATestFailoverInput,
            TestFailoverInput,
            TestFailoverInputProperties,
        )

        if why := choice.not_testable(item):
            self.drills._fail(row, why)
            return None
        if left := self._left(row):
            self.drills._fail(row, f"the target group {row['targetGroup']} already holds what the test failover would "
                                   f"make: {', '.join(left)}; nothing was sent")
            return None
        resent = bool(row.get("tfoAt"))
        now = _now()
        row.update(tfoAt=format_instant(now), requested=format_instant(now))  # noted before it is sent
        self.drills._save(row)
        seen: dict[str, Any] = {}
        asr, args = self._item_call(row["replicatedItem"])
        vnet = row["subnet"].rsplit("/subnets/", 1)[0]
        try:
            asr.replication_protected_items.begin_test_failover(*args, TestFailoverInput(
                properties=TestFailoverInputProperties(
                    failover_direction=row["direction"], network_type="VmNetworkAsInput", network_id=vnet,
                    provider_specific_details=A2ATestFailoverInput(recovery_point_id=row["point"]))),
                polling=False, raw_response_hook=_monitor(seen))
        except HttpResponseError as exc:
            if exc.status_code is None or exc.status_code >= 500 or exc.status_code == 429:
                raise
            if not resent:
                row.update(tfoAt="")  # refused: nothing started, nothing to clean up
            self.drills._fail(row, f"testFailover refused: {exc.message or exc}"[:4000])
            return None
        row.update(tfoOperation=seen.get("url") or "")
        self.drills._save(row)
        return Retry(seen.get("after") or POLL, "test failover sent")

    def _tested(self, row: dict[str, Any], status: str, why: str) -> Outcome | None:
        if status != "Succeeded":
            self.drills._fail(row, f"test failover of {row['replicatedItem']} {status}" + (f": {why}" if why else ""))
            return None
        vm = choice.test_vm(self._item(row), row["targetGroup"])
        row.update(step="boot", drilledVm=vm, restored=format_instant(_now()), testMade=json.dumps(self._made(vm)))
        self.drills._save(row)
        return None

    def _made(self, vm_id: str) -> list[str]:
        """The test VM and what it holds (NICs, disks): what its cleanup must remove."""
        from azure.core.exceptions import ResourceNotFoundError

        p = _parts(vm_id)
        try:
            vm = self.arm.compute(p["subscription"]).virtual_machines.get(p["resource_group"], p["name"])
        except ResourceNotFoundError:
            return [vm_id]
        storage, network = vm.storage_profile, vm.network_profile
        disks = [storage.os_disk] if storage and storage.os_disk else []
        disks += list((storage.data_disks if storage else None) or [])
        return [vm_id] + [d.managed_disk.id for d in disks if d.managed_disk and d.managed_disk.id] + \
            [n.id for n in ((network.network_interfaces if network else None) or []) if n.id]

    # 5. teardown, first part: the test failover cleaned up, and nothing of it left in the target group
    def cleanup_due(self, row: dict[str, Any]) -> bool:
        due = parse_instant(row.get("teardownAfter")) or _now()
        return bool(row.get("tfoAt")) and not row.get("tfoCleaned") and _now() >= due

    def cleanup(self, row: dict[str, Any]) -> Outcome | None:
        from azure.mgmt.recoveryservicessiterecovery.models import (
            TestFailoverCleanupInput,
            TestFailoverCleanupInputProperties,
        )

        if row.get("cleanupOperation"):
            status, why, after = self._status(row, row["cleanupOperation"])
            if status == "Gone":
                row.update(cleanupOperation="")
                self.drills._save(row)
                return None  # the item says
            if status == "Succeeded":
                row.update(cleanupOperation="", cleanupDone=format_instant(_now()))
                self.drills._save(row)
                return self._verify(row)
            if status not in ("Failed", "Canceled"):
                return Retry(after, f"test failover cleanup {status}")
            tries = int(row.get("cleanupTries") or 0) + 1
            row.update(cleanupOperation="", cleanupTries=tries)
            if tries >= CLEANUP_TRIES:
                row.update(cleanupTries=0)
                return self.drills._kept(row, CLEANUP_FAILED, f"testFailoverCleanup of {row['replicatedItem']} "
                                                              f"{status} {tries} times: {why}")
            self.drills._save(row)
            return None  # sent again
        if row.get("cleanupDone"):
            return self._verify(row)
        props = self._item(row).get("properties") or {}
        state = props.get("testFailoverState") or "None"
        if state in ("InProgress", "CleanupInProgress"):  # its test failover still running, or a cleanup sent
            return Retry(WAIT_BUSY, f"the item's test failover is {state}")
        if "TestFailoverCleanup" not in (props.get("allowedOperations") or []):
            row.update(cleanupDone=format_instant(_now()))  # no test failover pending: nothing to clean up
            self.drills._save(row)
            return self._verify(row)
        seen: dict[str, Any] = {}
        asr, args = self._item_call(row["replicatedItem"])
        asr.replication_protected_items.begin_test_failover_cleanup(*args, TestFailoverCleanupInput(
            properties=TestFailoverCleanupInputProperties(comments=f"vmkeeper drill {row['drill']} ({row['state']})")),
            polling=False, raw_response_hook=_monitor(seen))
        if not seen.get("url"):  # no monitor: the item says when it is done
            return Retry(seen.get("after") or POLL, "test failover cleanup sent")
        row.update(cleanupOperation=seen["url"], cleanupAt=format_instant(_now()))
        self.drills._save(row)
        return Retry(seen.get("after") or POLL, "test failover cleanup sent")

    def _left(self, row: dict[str, Any]) -> list[str]:
        """What of the test the target group holds, read from ARM (not the index, which lags)."""
        p = _parts(row["targetGroup"])
        listed = [(r.id, r.name or "") for r in self.arm.resources(p["subscription"]).resources.list_by_resource_group(
            p["resource_group"])]
        return choice.leftovers(listed, json.loads(row.get("testNames") or "[]"), json.loads(row.get("testMade") or "[]"))

    def _verify(self, row: dict[str, Any]) -> Outcome | None:
        left = self._left(row)
        if left:
            since = parse_instant(row.get("cleanupDone")) or _now()
            if _now() - since < VERIFY_FOR:
                return Retry(POLL, f"{len(left)} test resources still in {row['targetGroup']}")
            row.update(testLeft=json.dumps(left))
            return self.drills._kept(row, LEFTOVER, f"after testFailoverCleanup the target group {row['targetGroup']} "
                                                    f"still holds {', '.join(left[:20])}")
        row.update(tfoCleaned=format_instant(_now()), testLeft="[]")
        self.drills._save(row)
        return None  # on to the drill's group
