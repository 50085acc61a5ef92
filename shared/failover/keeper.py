"""Keeps one recovery plan per application in step with the fleet: a timer sweep (functions/failover.py).

Each sweep reads Azure as it is — the fleet's VMs and their tags (Resource Graph), every replicated item and plan in
the vaults vmkeeper knows — decides each application's plan (plans.py) and writes only what differs:

- no plan: the plan is claimed in the table, then created (PUT) under its deterministic name;
- vmkeeper's plan, members changed: its groups are updated (PATCH of all its groups, as ASR updates a plan), Boot
  groups rebuilt in order, Shutdown and Failover groups and each group's actions kept — but only while the plan is
  idle: no scenario running, nothing waiting for cleanup, commit or reprotect, every member replicating from where it
  began, no failover of vmkeeper's on it; otherwise the change waits for a later sweep;
- a plan of that name vmkeeper did not make: never changed; an error, alerted once;
- vmkeeper's plan with no tagged VM left: left as it is (a plan is never emptied or deleted by the sweep).

Writes are sent without waiting (ASR runs them as jobs); the next sweep sees the result. Re-running creates
nothing. Tags that cannot be read are errors naming the tag, alerted once each, and lose nothing (plans.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .. import membership
from .. import tags as T
from ..alerts import events as A
from ..azure.graph import query_all
from ..ports import Arm
from ..settings import FailoverSettings
from . import plans as P
from .asr import Item, Plan, SiteRecovery, Vault
from .records import Records

log = logging.getLogger("vmkeeper.failover.plans")
VMS = "Resources | where type =~ 'microsoft.compute/virtualmachines' | project id, tags"
CREATED, UPDATED, IN_STEP, WAITING, BUSY, NOT_OURS, LEFT, ERROR = (
    "created", "updated", "in_step", "waiting", "busy", "not_ours", "left", "error")


def vaults_of(settings: FailoverSettings) -> list[Vault]:
    seen: dict[str, Vault] = {}
    for vault_id in settings.vaults.values():
        seen.setdefault(vault_id.lower(), Vault.of(vault_id))
    return list(seen.values())


def _tags_of(item: Item, tags: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The tags that place an item: those of the VM it replicates now, unless only the VM on the other side (the one
    it began from, after a failover and reprotect) names an application."""
    found = [tags[v.lower()] for v in (item.vm_id, item.other_vm_id) if v and v.lower() in tags]
    named = [t for t in found if any(str(name).lower() == T.APP for name in t)]
    return (named or found or [None])[0]


class RecoveryPlans:
    def __init__(self, settings: FailoverSettings, arm: Arm, records: Records, alerts: Any = None,
                 arm_endpoint: str = ""):
        self.settings, self.arm, self.records, self.alerts = settings, arm, records, alerts
        self.asr = SiteRecovery(arm, arm_endpoint)

    def read(self) -> tuple[list[tuple[Item, Mapping[str, Any] | None]], list[Plan]]:
        """Every replicated item with its VM's tags (None: the VM is not listed, or not a fleet member), and every
        plan, in the vaults vmkeeper knows."""
        rows = membership.members(query_all(self.arm.resource_graph(), list(self.settings.subscriptions), VMS))
        tags = {str(r["id"]).lower(): r.get("tags") or {} for r in rows}
        entries, plans = [], []
        for vault in vaults_of(self.settings):
            for item in self.asr.items(vault):
                entries.append((item, _tags_of(item, tags)))
            plans += self.asr.plans(vault)
        return entries, plans

    def sweep(self) -> dict[str, Any]:
        entries, plans = self.read()
        wants, problems = P.desired(entries, plans)
        items = {i.id.lower(): i for i, _ in entries}
        by_key = {(p.vault.id.lower(), p.name.lower()): p for p in plans}
        busy_targets = {str(r.target.get("plan_id") or "").lower() for r in self.records.unfinished()}
        outcomes: dict[str, dict[str, Any]] = {}
        for want in wants:
            plan = by_key.get((want.vault.id.lower(), want.name.lower()))
            try:
                outcome = self._keep(want, plan, items, busy_targets, problems)
            except Exception as exc:  # noqa: BLE001 (one plan's failure never stops the others)
                from azure.core.exceptions import AzureError

                if not isinstance(exc, AzureError):
                    raise
                log.warning("recovery plan %s: %s", want.name, exc)
                outcome = {"outcome": ERROR, "detail": f"Azure answered: {str(exc)[:500]}"}
            outcomes[f"{want.vault.id}/replicationRecoveryPlans/{want.name}"] = {"app": want.app, **outcome}
        for plan in plans:  # vmkeeper's plans whose application has no VM left
            app = P.app_of_plan(plan.name)
            if app is None or plan.id in outcomes or any(k.lower() == plan.id.lower() for k in outcomes):
                continue
            if self._ours(plan.id):
                outcomes[plan.id] = {"app": app, "outcome": LEFT,
                                     "detail": f"no VM tagged {T.APP}: {app} replicates now: the plan is left as it is"}
                self.records.note_plan(plan.id, {"outcome": LEFT, "detail": outcomes[plan.id]["detail"]})
        for problem in problems:
            self._alert(problem)
        counts: dict[str, int] = {}
        for o in outcomes.values():
            counts[o["outcome"]] = counts.get(o["outcome"], 0) + 1
        summary = {"counts": counts, "problems": [p.to_json() for p in problems], "plans": outcomes}
        log.info("recovery plans: %s, %d problems", counts, len(problems))
        return summary

    def _ours(self, plan_id: str) -> bool:
        row = self.records.plan_row(plan_id)
        return bool(row and row.get("claimed"))

    def _keep(self, want: P.Want, plan: Plan | None, items: dict[str, Item], busy: set[str],
              problems: list[P.Problem]) -> dict[str, Any]:
        plan_id = plan.id if plan is not None else f"{want.vault.id}/replicationRecoveryPlans/{want.name}"
        waiting = [i.vm_id or i.id for i in want.waiting]
        note = {"waiting": waiting} if waiting else {}
        if plan is not None and not self._ours(plan.id):
            problems.append(P.Problem(plan.id.lower(), "plan", f"a recovery plan named {want.name} exists that vmkeeper "
                                      "did not make: it is never changed; rename it, or the application", want.app))
            return {"outcome": NOT_OURS}
        if not any(want.boot):
            outcome = {"outcome": WAITING, **note, "detail": "no member is ready to join a plan yet"}
        elif plan is None:
            self.records.claim_plan(plan_id, want.app)
            self.asr.create_plan(want.vault, want.name, want.primary_fabric_id, want.recovery_fabric_id,
                                 P.groups_for(want, None))
            outcome = {"outcome": CREATED, **note, "order": want.order()}
        elif P.same_order(plan, want):
            outcome = {"outcome": IN_STEP, **note}
        elif reason := self._busy(plan, want, items, busy):
            outcome = {"outcome": BUSY, **note, "detail": f"membership change waits: {reason}"}
        else:
            self.asr.update_plan(want.vault, want.name, P.groups_for(want, plan))
            outcome = {"outcome": UPDATED, **note, "order": want.order()}
        self.records.note_plan(plan_id, {"outcome": outcome["outcome"], "detail": outcome.get("detail", ""),
                                         "members": sum(len(g) for g in want.boot)})
        return outcome

    @staticmethod
    def _busy(plan: Plan, want: P.Want, items: dict[str, Item], busy: set[str]) -> str | None:
        if plan.id.lower() in busy:
            return "a failover of vmkeeper's is running on it"
        if not plan.idle:
            return f"the plan is in {plan.scenario or 'a DR operation'} (allowed now: {', '.join(plan.allowed) or 'none'})"
        members = {i.lower() for g in plan.boot_groups for i in g.items} | {i.id.lower() for g in want.boot for i in g}
        moving = sorted(items[i].friendly_name for i in members if i in items and not items[i].steady)
        return f"{', '.join(moving)} failed over or in a DR operation" if moving else None

    def _alert(self, problem: P.Problem) -> None:
        log.warning("recovery plan problem: %s: %s", problem.subject, problem.detail)
        if self.alerts is None:
            return
        self.alerts.raise_(A.Alert(A.RECOVERY_PLAN_PROBLEM, problem.subject, problem.detail, {
            "field": problem.field, "problem": problem.detail, "app": problem.app, "plan": P.plan_name(problem.app)
            if problem.app else None}))
