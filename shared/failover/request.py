"""A failover request, read strictly from its JSON body. Pure: every problem names its field.

    {"action": "test_failover" | "test_failover_cleanup" | "planned_failover" | "unplanned_failover" | "commit"
               | "reprotect" | "failback",
     "plan": "<application>"  |  "vm": "<a replicated VM's id>",      (exactly one)
     "network": "<VNet id>",              (test_failover: the isolated VNet the test VMs join; required there)
     "recovery_point": "latest" | "latest_processed" | "latest_app_consistent",   (test and unplanned failover)
     "shut_down_source": false,           (unplanned_failover: shut the source VMs down first, if they still answer)
     "comment": "…",                      (test_failover_cleanup: kept with the test failover's record in Azure)
     "dry_run": false}

The lifecycle, as Site Recovery runs it: ``test_failover`` → ``test_failover_cleanup``; ``planned_failover`` (the
source shut down first, no data lost) or ``unplanned_failover`` (the source region is down: the chosen point) →
``commit`` → ``reprotect`` (replicating back) → ``failback`` (a planned failover the other way) → ``commit`` →
``reprotect``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..access import BadId, ParsedId, parse_id
from ..restore.request import BadRequest, FieldProblem
from .plans import APP_NAME

ACTIONS = ("test_failover", "test_failover_cleanup", "planned_failover", "unplanned_failover", "commit", "reprotect",
           "failback")
POINTS = {"latest": "Latest", "latest_processed": "LatestProcessed", "latest_app_consistent": "LatestApplicationConsistent"}
FIELDS = {"action", "plan", "vm", "network", "recovery_point", "shut_down_source", "comment", "dry_run"}
TAKES = {"network": ("test_failover",), "recovery_point": ("test_failover", "unplanned_failover"),
         "shut_down_source": ("unplanned_failover",), "comment": ("test_failover_cleanup",)}
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
VNET = re.compile(rf"/subscriptions/{_GUID}/resourceGroups/[-\w._()]{{1,90}}/providers/Microsoft\.Network/"
                  r"virtualNetworks/[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?", re.IGNORECASE | re.ASCII)


@dataclass(frozen=True)
class FailoverRequest:
    action: str
    plan: str | None  # the application (its plan: plans.plan_name)
    vm: ParsedId | None
    network: ParsedId | None = None  # the VNet, parsed as the group that holds it (its id kept whole)
    recovery_point: str = "latest"
    shut_down_source: bool = False
    comment: str = ""
    dry_run: bool = False

    @property
    def field(self) -> str:
        """The request's target field: ``plan`` or ``vm``."""
        return "plan" if self.plan is not None else "vm"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, self.field: self.plan if self.plan is not None else self.vm.id}
        if self.network is not None:
            out["network"] = self.network.id
        if self.action in TAKES["recovery_point"]:
            out["recovery_point"] = self.recovery_point
        if self.action in TAKES["shut_down_source"]:
            out["shut_down_source"] = self.shut_down_source
        if self.comment:
            out["comment"] = self.comment
        out["dry_run"] = self.dry_run
        return out


def _key(name: Any) -> str:
    """An unknown field's name as a problem names it: never empty (``{"": 1}`` is a field too)."""
    return str(name)[:100] or '""'


def parse(body: Any) -> FailoverRequest:
    problems: list[FieldProblem] = []

    def bad(field: str, detail: str) -> None:
        problems.append(FieldProblem(field, detail))

    if not isinstance(body, dict):
        raise BadRequest([FieldProblem("body", "must be a JSON object")])
    for extra in sorted(set(body) - FIELDS, key=str):
        bad(_key(extra), "unknown field")
    action = body.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        bad("action", "required: one of " + ", ".join(ACTIONS) if "action" not in body else
            "must be one of " + ", ".join(ACTIONS))
        action = None
    plan = vm = network = None
    if ("plan" in body) == ("vm" in body):
        bad("plan", "give exactly one of plan (an application's name) and vm (a replicated VM's id)")
    elif "plan" in body:
        value = body["plan"]
        if not isinstance(value, str) or not APP_NAME.fullmatch(value.strip().lower()):
            bad("plan", "an application's name, as its VMs' vmkeeper-app tag gives it (1-40 letters, digits, '-', '_')")
        else:
            plan = value.strip().lower()
    else:
        try:
            vm = parse_id(body["vm"], "vm")
        except BadId as exc:
            bad("vm", str(exc))
    for name, actions in TAKES.items():
        if name in body and action is not None and action not in actions:
            bad(name, f"not taken by {action} (only by {', '.join(actions)})")
    if action == "test_failover":
        value = body.get("network")
        if not isinstance(value, str) or not VNET.fullmatch(value):
            bad("network", "required: the id of the isolated VNet the test VMs join "
                "(/subscriptions/{guid}/resourceGroups/{group}/providers/Microsoft.Network/virtualNetworks/{name})"
                if "network" not in body else "must be a virtual network id")
        else:
            group = parse_id(value.split("/providers/", 1)[0], "resource_group")
            network = ParsedId(value, "virtual_network", group.subscription, group.group,
                               value.rsplit("/", 1)[-1], {})
    point = body.get("recovery_point", "latest")
    if not isinstance(point, str) or point not in POINTS:  # a list or object is no key (and no 500)
        bad("recovery_point", "one of " + ", ".join(POINTS))
    shut = body.get("shut_down_source", False)
    if not isinstance(shut, bool):
        bad("shut_down_source", "must be true or false")
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > 1024:
        bad("comment", "a string of at most 1024 characters")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        bad("dry_run", "must be true or false")
    if problems:
        raise BadRequest(problems)
    assert action is not None
    return FailoverRequest(action, plan, vm, network, point, shut, comment, dry_run)
