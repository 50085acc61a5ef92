"""Site Recovery jobs: every operation ASR runs is a job in the vault (``replicationJobs/{id}``) with its
tasks, which run one after another over the operation's emulated span. Shape: the official
ReplicationJobs_Get example (``scenarioName``, ``tasks[]``, ``customDetails.instanceType: AsrJobDetails``)."""

from __future__ import annotations

from typing import Any

from ..core.clock import iso
from ..core.state import Resource, Store
from .models import JOB_TYPE, body_of, new_id, wire_id

# Scenario names and display names, as ASR's jobs name them.
SCENARIOS = {
    "AddFabric": "Create fabric", "RemoveFabric": "Delete fabric",
    "AddProtectionContainer": "Create protection container",
    "ConfigureProtection": "Associate replication policy", "RemoveProtectionContainerMapping": "Dissociate replication policy",
    "AddProtectionProfile": "Create replication policy", "UpdateProtectionProfile": "Update replication policy",
    "RemoveProtectionProfile": "Delete replication policy",
    "MapNetwork": "Map networks", "UnmapNetwork": "Unmap networks",
    "EnableDr": "Enable replication", "DisableDr": "Disable replication", "PurgeDr": "Purge replication",
    "TestFailover": "Test failover", "TestFailoverCleanup": "Test failover cleanup",
    "PlannedFailover": "Planned failover", "UnplannedFailover": "Failover", "Commit": "Commit",
    "ReverseReplication": "Reprotect",
    "CreateRecoveryPlan": "Create a recovery plan", "UpdateRecoveryPlan": "Update a recovery plan",
    "DeleteRecoveryPlan": "Delete a recovery plan",
    "RecoveryPlanTestFailover": "Test failover (recovery plan)",
    "RecoveryPlanTestFailoverCleanup": "Test failover cleanup (recovery plan)",
    "RecoveryPlanPlannedFailover": "Planned failover (recovery plan)",
    "RecoveryPlanUnplannedFailover": "Failover (recovery plan)", "RecoveryPlanCommit": "Commit (recovery plan)",
    "RecoveryPlanReverseReplication": "Reprotect (recovery plan)",
}


def new_job(store: Store, vault: Resource, scenario: str, target: Resource | None, target_kind: str,
            tasks: list[str], start: float, end: float) -> Resource:
    """A job running from ``start`` to ``end`` (emulated), its tasks sharing the span in order."""
    name = new_id()
    span = max(end - start, 0.0) / max(len(tasks), 1)
    job = Resource(f"{vault.id}/replicationJobs/{name}", JOB_TYPE, name, None, None, {}, {}, {
        "scenario": scenario,
        "activityId": f"{new_id()} ActivityId: {new_id()}",
        "targetId": target.internal.get("objectId", target.name) if target is not None else "",
        "targetName": target.internal.get("friendlyName", target.name) if target is not None else "",
        "targetKind": target_kind,
        "affected": {},
        "start": start,
        "tasks": [{"taskId": new_id(), "name": t.replace(" ", "") + "Task", "friendlyName": t,
                   "start": start + i * span, "end": start + (i + 1) * span} for i, t in enumerate(tasks)],
        "state": "InProgress", "finished": None, "error": None,
    }, start)
    return store.put(job)


def finish(job: Resource, at: float, error: dict[str, Any] | None = None) -> None:
    job.internal.update(state="Failed" if error else "Succeeded", finished=at, error=error)


def _task_state(job: Resource, task: dict[str, Any], now: float) -> tuple[str, str]:
    state, finished = job.internal["state"], job.internal["finished"]
    if state == "Succeeded":
        return "Succeeded", "Completed"
    if state == "Failed":
        if task["end"] < finished:
            return "Succeeded", "Completed"
        if task["start"] <= finished:
            return "Failed", "Failed"
        return "Cancelled", "Cancelled"
    if now >= task["end"]:
        return "Succeeded", "Completed"
    if now >= task["start"]:
        return "InProgress", "In progress"
    return "NotStarted", "Not started"


def render(job: Resource, now: float) -> dict[str, Any]:
    i = job.internal
    tasks = []
    for t in i["tasks"]:
        state, description = _task_state(job, t, now)
        task = {"taskId": t["taskId"], "name": t["name"], "startTime": iso(t["start"]) if state != "NotStarted" else None,
                "endTime": iso(min(t["end"], i["finished"] or t["end"])) if state in ("Succeeded", "Failed") else None,
                "allowedActions": [], "friendlyName": t["friendlyName"], "state": state, "stateDescription": description,
                "taskType": "TaskDetails", "customDetails": {"instanceType": "TaskDetails"}, "errors": []}
        if state == "Failed" and i["error"]:
            task["errors"] = [_error_details(i["error"], t["taskId"], i["finished"])]
        tasks.append(task)
    state = i["state"]
    props = {
        "activityId": i["activityId"],
        "scenarioName": i["scenario"],
        "friendlyName": SCENARIOS.get(i["scenario"], i["scenario"]),
        "state": state,
        "stateDescription": {"Succeeded": "Completed", "Failed": "Failed"}.get(state, "In progress"),
        "tasks": tasks,
        "errors": [_error_details(i["error"], None, i["finished"])] if i["error"] else [],
        "startTime": iso(i["start"]),
        "endTime": iso(i["finished"]) if i["finished"] is not None else None,
        "allowedActions": [],
        "targetObjectId": i["targetId"],
        "targetObjectName": i["targetName"],
        "targetInstanceType": i["targetKind"],
        "customDetails": {"instanceType": "AsrJobDetails", "affectedObjectDetails": dict(i["affected"])},
    }
    return body_of(job, props)


def _error_details(error: dict[str, Any], task_id: str | None, at: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "serviceErrorDetails": {"code": error.get("code"), "message": error.get("message"),
                                "possibleCauses": error.get("possibleCauses", ""),
                                "recommendedAction": error.get("recommendedAction", ""), "activityId": new_id()},
        "errorLevel": "Error",
        "creationTime": iso(at) if at is not None else None,
    }
    if task_id:
        out["taskId"] = task_id
    return out


def job_id(job: Resource) -> str:
    return wire_id(job.id)
