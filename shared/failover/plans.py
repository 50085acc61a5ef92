"""One recovery plan per application, decided from the fleet's tags (pure).

A replicated VM tagged ``vmkeeper-app: <name>`` belongs to application ``<name>`` (compared lower case), in boot
group ``vmkeeper-app-group: 1..n`` (absent: 1). The application's plan is ``vmkeeper-app-<name>`` in the vault its
VMs replicate in, its Boot groups in the order of the group values (1, 3 → Group 1, Group 2: ASR's groups are
positions, not labels); a group's VMs boot together, each group after the one before.

A tag that cannot be read is an error naming the tag, and loses nothing: a VM with a bad ``vmkeeper-app`` stays in
the plan it is in (and joins none); a bad ``vmkeeper-app-group`` keeps the VM in the boot group it is in, or, new to
the plan, puts it in the last group (booted after everything it may depend on). A VM whose tags are not readable at
all (not listed: deleted, or not a fleet member) keeps its place too: Site Recovery takes a VM out of its plans
itself when its replication is disabled. An application whose VMs replicate in more than one vault or region pair
cannot be one plan: an error, and its plan (if any) is left as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import tags as T
from .asr import ADDABLE_STATES, Group, Item, Plan

PREFIX = "vmkeeper-app-"
APP_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,38}[a-z0-9])?$")  # lower-cased: 1-40, a plan name's alphabet
MAX_GROUP = 20  # ours: a boot group past 20 is taken for a typo (ASR runs groups one after another)


def plan_name(app: str) -> str:
    """The deterministic name of an application's plan (an ASR object name: letters, digits, '_', '.', '-')."""
    return PREFIX + app


def app_of_plan(name: str) -> str | None:
    return name[len(PREFIX):].lower() if name.lower().startswith(PREFIX) else None


@dataclass(frozen=True)
class Problem:
    subject: str  # the VM's id (lower case), or the plan's
    field: str  # the tag at fault, or "plan"
    detail: str
    app: str = ""

    def to_json(self) -> dict[str, str]:
        return {"subject": self.subject, "field": self.field, "detail": self.detail, "app": self.app}


def _tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    """Azure tag names are case-insensitive (sorted: a duplicate resolves the same way every time)."""
    out: dict[str, str] = {}
    for name, value in sorted((tags or {}).items(), key=lambda kv: str(kv[0])):
        out.setdefault(str(name).lower(), "" if value is None else str(value))
    return out


def read_app(tags: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """(the application, None), (None, None) when untagged, or (None, what is wrong with the tag)."""
    by_name = _tags(tags)
    if T.APP not in by_name:
        return None, None
    value = by_name[T.APP].strip().lower()
    if not APP_NAME.fullmatch(value):
        return None, (f"{T.APP}: {by_name[T.APP][:100]!r} is not an application name (1-40 letters, digits, '-' or '_', "
                      "starting and ending with a letter or digit)")
    return value, None


def read_group(tags: Mapping[str, Any] | None) -> tuple[int | None, str | None]:
    """(the boot group, None) — 1 when untagged — or (None, what is wrong with the tag)."""
    by_name = _tags(tags)
    if T.APP_GROUP not in by_name:
        return 1, None
    value = by_name[T.APP_GROUP].strip()
    if not re.fullmatch(r"[0-9]{1,3}", value, re.ASCII) or not 1 <= int(value) <= MAX_GROUP:
        return None, f"{T.APP_GROUP}: {by_name[T.APP_GROUP][:100]!r} is not a boot group (a whole number 1-{MAX_GROUP})"
    return int(value), None


@dataclass
class Want:
    """An application's plan as the fleet's tags say it should be."""

    app: str
    name: str
    items: list[Item]  # every member, for the pair and the vault
    boot: list[list[Item]]  # Boot groups in order
    waiting: list[Item] = field(default_factory=list)  # tagged, not yet in a state a plan takes in

    @property
    def vault(self) -> Any:
        return self.items[0].vault

    @property
    def primary_fabric_id(self) -> str:
        return self.items[0].primary_fabric_id

    @property
    def recovery_fabric_id(self) -> str:
        return self.items[0].recovery_fabric_id

    def order(self) -> list[list[str]]:
        """Item ids per Boot group, lower case and sorted: what a plan is compared by."""
        return [sorted(i.id.lower() for i in g) for g in self.boot]


def _placements(plans: list[Plan]) -> dict[str, list[tuple[str, int]]]:
    """item id (lower) → [(application, boot group index)] in the plans named as vmkeeper names them."""
    out: dict[str, list[tuple[str, int]]] = {}
    for plan in plans:
        app = app_of_plan(plan.name)
        if app is None:
            continue
        for k, group in enumerate(plan.boot_groups):
            for item_id in group.items:
                out.setdefault(item_id.lower(), []).append((app, k))
    return out


def desired(entries: list[tuple[Item, Mapping[str, Any] | None]], plans: list[Plan]) -> tuple[list[Want], list[Problem]]:
    """Each application's plan from its VMs' tags. ``entries``: every replicated item with its VM's tags (None when
    the VM is not listed); ``plans``: the plans there are now (for the places a bad tag keeps)."""
    problems: list[Problem] = []
    placed = _placements(plans)
    # app → [(item, group value or None, index it keeps or None)]
    members: dict[str, list[tuple[Item, int | None, int | None]]] = {}
    for item, tags in sorted(entries, key=lambda e: e[0].id.lower()):
        current = placed.get(item.id.lower(), [])
        subject = (item.vm_id or item.id).lower()
        if tags is None:
            for app, k in current:
                members.setdefault(app, []).append((item, None, k))
            continue
        app, bad_app = read_app(tags)
        if bad_app:
            problems.append(Problem(subject, T.APP, f"{bad_app}: the VM stays where it is"
                                    + (f" (in {', '.join(plan_name(a) for a, _ in current)})" if current else
                                       " (in no recovery plan)"), current[0][0] if current else ""))
            for keep_app, k in current:
                members.setdefault(keep_app, []).append((item, None, k))
            continue
        if app is None:
            continue
        group, bad_group = read_group(tags)
        keep = next((k for a, k in current if a == app), None)
        if bad_group:
            where = f"it stays in boot group {keep + 1}" if keep is not None else "it goes into the last boot group"
            problems.append(Problem(subject, T.APP_GROUP, f"{bad_group}: {where} of {plan_name(app)}", app))
        members.setdefault(app, []).append((item, group, keep))

    wants = []
    for app, found in sorted(members.items()):
        pairs = sorted({(i.vault.id.lower(), i.primary_fabric_id.lower(), i.recovery_fabric_id.lower())
                        for i, _, _ in found})
        if len(pairs) > 1:
            told = "; ".join(f"vault {v.rsplit('/', 1)[-1]}, {p.rsplit('/', 1)[-1]} → {r.rsplit('/', 1)[-1]}"
                             for v, p, r in pairs)
            problems.append(Problem(plan_name(app), T.APP, f"{T.APP}: the VMs of application {app!r} replicate in "
                                    f"{len(pairs)} vaults or region pairs ({told}): one recovery plan fails over one; "
                                    "its plan is left as it is", app))
            continue
        wants.append(_want(app, found))
    return wants, problems


def _want(app: str, found: list[tuple[Item, int | None, int | None]]) -> Want:
    waiting = [i for i, _, keep in found if keep is None and i.state not in ADDABLE_STATES]
    ready = [(i, g, keep) for i, g, keep in found if keep is not None or i.state in ADDABLE_STATES]
    values = sorted({g for _, g, _ in ready if g is not None})
    boot: list[list[Item]] = [[] for _ in values]
    for item, group, keep in ready:
        if group is not None:
            boot[values.index(group)].append(item)
            continue
        if keep is None:  # new to the plan: last
            keep = max(len(boot) - 1, 0)
        while len(boot) <= keep:  # the group it is in stays, even if no tag names it any more
            boot.append([])
        boot[keep].append(item)
    return Want(app, plan_name(app), [i for i, _, _ in found],
                [sorted(g, key=lambda i: i.id.lower()) for g in boot if g], waiting)


def same_order(plan: Plan, want: Want) -> bool:
    return [sorted(i.lower() for i in g.items) for g in plan.boot_groups if g.items] == want.order()


def groups_for(want: Want, plan: Plan | None) -> list[Group]:
    """The plan's groups with ``want``'s Boot groups: Shutdown and Failover groups as they are, each Boot group's
    start and end actions kept by position (and a Boot group that carries actions kept, emptied, not dropped)."""
    boot = [Group("Boot", tuple(i.id for i in g), tuple(i.vm_id for i in g)) for g in want.boot]
    if plan is None:
        return boot
    old = plan.boot_groups
    out = [g for g in plan.groups if g.type != "Boot"]
    for k in range(max(len(boot), len(old))):
        items = boot[k] if k < len(boot) else Group("Boot", (), ())
        actions = old[k] if k < len(old) else None
        if k >= len(boot) and not (actions and (actions.start_actions or actions.end_actions)):
            continue
        out.append(Group("Boot", items.items, items.vms, actions.start_actions if actions else (),
                         actions.end_actions if actions else ()))
    return out
