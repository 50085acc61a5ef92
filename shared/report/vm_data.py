"""A big fleet's VM table as compact JSON (pure): the page stays small and quick at 10,000 VMs because the rows are
not HTML; the page's script (assets.py) builds the rows a person can see from this. Each value from the data is
text here and escaped by the script; strings repeated across VMs (groups, regions, policies, reasons) are sent once.

Shape: ``{"t": [strings], "s": [subscriptions], "sh": [their cells' HTML], "c": [kinds shown], "st": [states
styled], "v": [[name, vm id or 0 (0: the
usual id, built from subscription, group and name), subscription, group, region, policy (-1: none), state,
state rank, reason, missing HTML or 0, cells...]]}`` with indexes into ``t`` / ``sh``; a cell: 0 where the kind does
not apply; a kind of point ``[class, age hours or null, RPO hours(, tooltip)]``; a replica ``[class, text, sort key,
health(, tooltip)]``."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from shared.report.charts import css_class
from shared.report.model import KIND_STATES, REPLICA, STATES, KindStatus, VmRow


def _usual_id(vm: VmRow) -> str:
    return (f"/subscriptions/{vm.subscription}/resourceGroups/{vm.resource_group}/providers/Microsoft.Compute/"
            f"virtualMachines/{vm.name}")


def encode(vms: Sequence[VmRow], columns: Sequence[str], subscription_html: Callable[[str], str],
           missing_html: Callable[[VmRow], str], replica_text: Callable[[KindStatus], tuple[str, str, str]],
           immutability_text: Callable[[KindStatus], str] = lambda k: "") -> str:
    """The JSON, safe inside a <script type="application/json"> (no "</" and no "<!--")."""
    strings: dict[str, int] = {}
    subs: dict[str, int] = {}

    def s(text: str) -> int:
        return strings.setdefault(text, len(strings))

    def cell(k: KindStatus | None) -> Any:
        if k is None:
            return 0
        cls = s(css_class(k.state, KIND_STATES))
        if k.kind == REPLICA:
            text, sort, tip = replica_text(k)
            health = str((k.replication or {}).get("health") or "")
            return [cls, text, sort, health] + ([tip] if health and health != "Normal" else [])
        out: list[Any] = [cls, k.age_hours, k.rpo_hours]
        immutable = immutability_text(k)
        if k.state != "met":  # a met kind's tooltip (its newest point and id) is left out: it is most of the bytes
            tip = [f"{k.state.replace('_', ' ')}, RPO {k.rpo_hours:g} h"]
            tip += [f"newest {k.newest}"] if k.newest else []
            tip += [f"point {k.point_id}"] if k.point_id else []
            out.append("; ".join(tip + ([immutable] if immutable else [])))
        elif immutable:  # which points are immutable and until when: said for a met kind too
            out.append(immutable)
        return out

    rows = []
    for vm in vms:
        by_kind = {k.kind: k for k in vm.kinds}
        sub = subs.setdefault(vm.subscription, len(subs))
        rank = STATES.index(vm.state) if vm.state in STATES else len(STATES)
        rows.append([vm.name, 0 if vm.vm_id == _usual_id(vm) else vm.vm_id, sub, s(vm.resource_group), s(vm.region),
                     -1 if vm.policy is None else s(vm.policy), s(vm.state), rank, s(vm.reason),
                     missing_html(vm) or 0, *(cell(by_kind.get(c)) for c in columns)])
    doc = {"t": list(strings), "s": list(subs), "sh": [subscription_html(x) for x in subs], "c": list(columns), "st": list(STATES),
           "v": rows}
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c")  # no "</script>" nor "<!--" can end or bend the block
