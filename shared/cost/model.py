"""Cost per VM and per policy, pure: the one query a scope gets a run (``query``), its rows read back (``parse``),
the estimate for points newer than the cost data (``estimate``), the sums per VM and per policy (``summarize``)
and the budget decision (``over_budget``). shared/cost/service.py does the reading and writing.

Why this query: Cost Management throttles tightly (a few queries per scope a minute), so each scope gets ONE query
a run: ``Custom`` from the earlier of the month's first day and 29 days ago to today, ``Daily`` (at most 31 days,
within the daily limit), which gives month-to-date, last-30-days and the trend from the same rows. Grouped by the
tag ``vmkeeper-vm`` (the source VM's id, lower case, on every snapshot and restore point collection vmkeeper makes)
and by ResourceId (which artifact: its ``vmkeeper-policy`` tag says which policy made it), filtered to snapshots,
restore point collections and Recovery Services vaults. A row without the tag, or with an empty value (Azure
tag values may be empty), is ``untagged``: a vault's cost (Azure Backup bills the vault, not the VM) is there too.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .. import tags as T

UNTAGGED = "untagged"
NO_POLICY = "(none)"
SNAPSHOTS = "microsoft.compute/snapshots"
COLLECTIONS = "microsoft.compute/restorepointcollections"
VAULTS = "microsoft.recoveryservices/vaults"
RESOURCE_TYPES = (SNAPSHOTS, COLLECTIONS, VAULTS)
COST_COLUMNS = ("cost", "pretaxcost", "costusd", "pretaxcostusd")
DAYS = 30


def window(now: datetime) -> tuple[date, date]:
    """The days one query covers: month-to-date and the last 30 days (today included), whichever starts first."""
    today = now.astimezone(UTC).date()
    return min(today.replace(day=1), today - timedelta(days=DAYS - 1)), today


def query(now: datetime) -> dict[str, Any]:
    """The Cost Management query body (``QueryDefinition`` as JSON)."""
    first, last = window(now)
    return {"type": "ActualCost", "timeframe": "Custom",
            "timePeriod": {"from": f"{first.isoformat()}T00:00:00+00:00", "to": f"{last.isoformat()}T23:59:59+00:00"},
            "dataset": {"granularity": "Daily",
                        "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
                        "grouping": [{"type": "TagKey", "name": T.VM}, {"type": "Dimension", "name": "ResourceId"}],
                        "filter": {"dimensions": {"name": "ResourceType", "operator": "In",
                                                  "values": list(RESOURCE_TYPES)}}}}


@dataclass(frozen=True)
class Row:
    vm: str  # the VM's id (lower case), or UNTAGGED
    resource_id: str  # lower case
    day: date
    cost: float
    currency: str


def _day(value: Any) -> date:
    text = str(int(value)) if isinstance(value, int | float) else str(value)
    if len(text) == 8 and text.isdigit():  # yyyymmdd, as Daily answers
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    return datetime.fromisoformat(text.replace("Z", "+00:00")).date()


def parse(columns: Iterable[Any], rows: Iterable[list[Any]]) -> list[Row]:
    """The query's rows by their columns' names (not positions: Azure's order is not a contract)."""
    names = [str(getattr(c, "name", None) or (c.get("name") if isinstance(c, Mapping) else c)).lower() for c in columns]
    at = {n: i for i, n in enumerate(names)}
    cost_at = next((at[n] for n in COST_COLUMNS if n in at), None)
    if cost_at is None or "usagedate" not in at:
        raise ValueError(f"cost query: columns {names} lack a cost column or UsageDate")
    out = []
    for r in rows:
        key = str(r[at["tagkey"]]) if "tagkey" in at and r[at["tagkey"]] is not None else ""
        value = str(r[at["tagvalue"]]) if "tagvalue" in at and r[at["tagvalue"]] is not None else ""
        vm = value.strip().lower() if key.lower() == T.VM and value.strip() else UNTAGGED
        out.append(Row(vm, str(r[at["resourceid"]]).lower() if "resourceid" in at else "", _day(r[at["usagedate"]]),
                       float(r[cost_at] or 0.0), str(r[at["currency"]]) if "currency" in at else "USD"))
    return out


@dataclass(frozen=True)
class Point:
    """A point vmkeeper made (a snapshot, or a restore point's disks), as read: what the estimate prices."""

    resource_id: str  # what Cost Management will bill: the snapshot, or the restore point's collection
    vm: str
    policy: str
    region: str
    size_gb: float  # used size if known, else provisioned (an upper bound: an incremental point holds less)
    created: datetime


def month_share(day: date) -> float:
    """A day's share of its month: a monthly price spread over the month's days, as Azure bills storage daily."""
    return 1.0 / calendar.monthrange(day.year, day.month)[1]


def estimate(points: Iterable[Point], prices: Mapping[str, float], now: datetime, cut: datetime,
             currency: str = "USD") -> list[Row]:
    """Rows for the points newer than the cost data (created after ``cut``): retail price per GB-month of the point's
    region × size × each day's part since creation. ``prices`` are in ``currency`` (the cost data's: asked so). A
    region with no price is left out (said by the caller)."""
    out = []
    for p in points:
        if p.created <= cut or p.created >= now or p.region not in prices:
            continue
        t = p.created
        while t < now:
            day = t.date()
            end = min(now, datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1))
            share = (end - t).total_seconds() / 86400.0 * month_share(day)
            out.append(Row(p.vm, p.resource_id.lower(), day, prices[p.region] * p.size_gb * share, currency))
            t = end
    return out


def currency_of(rows: Iterable[Row]) -> str | None:
    """The cost data's currency: its rows' (the most of them, should a scope ever answer in two); None if no row."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.currency] = counts.get(r.currency, 0) + 1
    return max(sorted(counts), key=lambda c: counts[c]) if counts else None


def in_currency(rows: Iterable[Row], currency: str) -> tuple[list[Row], list[Row]]:
    """The rows in ``currency`` and the others: sums are never mixed, nor converted."""
    rows = list(rows)
    return [r for r in rows if r.currency == currency], [r for r in rows if r.currency != currency]


def unbilled(estimated: Iterable[Row], actual: Iterable[Row]) -> list[Row]:
    """The estimate rows Cost Management has no row for yet: a point made within the data lag may already be billed
    for its first day (the lag is hours, not a whole day), and counting both would count it twice."""
    billed = {(r.resource_id, r.day) for r in actual}
    return [r for r in estimated if (r.resource_id, r.day) not in billed]


@dataclass
class Costs:
    """One VM's or one policy's cost: actual (Cost Management) and estimated, month-to-date and the last 30 days,
    and the daily series (actual + estimate) for the trend."""

    name: str  # the VM's id or UNTAGGED; the policy's name
    policy: str = NO_POLICY
    subscription: str = ""
    month_to_date: float = 0.0
    last_30_days: float = 0.0
    estimate: float = 0.0  # month-to-date's part that is estimated (in both sums)
    currency: str = "USD"
    daily: dict[str, float] = field(default_factory=dict)  # yyyy-mm-dd → cost

    def add(self, row: Row, now: datetime, estimated: bool) -> None:
        if row.currency != self.currency:  # one currency per VM and policy (in_currency first)
            raise ValueError(f"cost: a {row.currency} row added to {self.name}'s {self.currency} sums")
        today = now.astimezone(UTC).date()
        if (row.day.year, row.day.month) == (today.year, today.month):
            self.month_to_date += row.cost
            if estimated:
                self.estimate += row.cost
        if row.day > today - timedelta(days=DAYS):
            self.last_30_days += row.cost
        key = row.day.isoformat()
        self.daily[key] = self.daily.get(key, 0.0) + row.cost


def policy_of(row: Row, artifacts: Mapping[str, str], vm_policies: Mapping[str, str]) -> str:
    """The policy an artifact's cost counts to: the one that made it (its ``vmkeeper-policy`` tag), else (gone since)
    its VM's, else none."""
    return artifacts.get(row.resource_id) or vm_policies.get(row.vm) or NO_POLICY


def summarize(actual: Iterable[Row], estimated: Iterable[Row], artifacts: Mapping[str, str], now: datetime,
              subscription: str = "", currency: str | None = None) -> tuple[dict[str, Costs], dict[str, Costs]]:
    """Per VM and per policy, in one currency (``currency``, else the rows'; a row in another is a ValueError: pass
    rows through ``in_currency``). ``artifacts``: an artifact's id (lower case) → the policy that made it."""
    actual, estimated = list(actual), list(estimated)
    currency = currency or currency_of(actual) or currency_of(estimated) or "USD"
    vm_policies: dict[str, str] = {}  # a VM's policy: the one that made its artifacts (the newest rows last)
    for row in sorted([*actual, *estimated], key=lambda r: r.day, reverse=True):
        if row.resource_id in artifacts and row.vm != UNTAGGED:
            vm_policies.setdefault(row.vm, artifacts[row.resource_id])
    vms: dict[str, Costs] = {}
    policies: dict[str, Costs] = {}
    for rows, estimated_ in ((actual, False), (estimated, True)):
        for row in rows:
            policy = NO_POLICY if row.vm == UNTAGGED and row.resource_id not in artifacts else policy_of(row, artifacts, vm_policies)
            vm = vms.setdefault(row.vm, Costs(row.vm, vm_policies.get(row.vm, NO_POLICY), subscription,
                                              currency=currency))
            vm.add(row, now, estimated_)
            policies.setdefault(policy, Costs(policy, policy, subscription, currency=currency)).add(row, now, estimated_)
    return vms, policies


@dataclass(frozen=True)
class Breach:
    policy: str
    month: str  # yyyy-mm
    spent: float  # month-to-date, actual and estimated
    monthly: float
    currency: str


@dataclass(frozen=True)
class Skipped:
    """A budget not compared: its policy's cost is (partly) in another currency."""

    policy: str
    budget_currency: str
    cost_currencies: tuple[str, ...]


def over_budget(spent: Mapping[str, Mapping[str, float]], budgets: Mapping[str, Any],
                now: datetime) -> tuple[list[Breach], list[Skipped]]:
    """The policies whose month-to-date cost (actual + estimate) is over their monthly budget, and the budgets not
    compared. ``spent``: policy name (lower case) → currency → cost (summed over scopes, each in its own currency);
    ``budgets``: policy name (lower case) → its BudgetSpec. A policy with cost in another currency than its budget's
    is never compared, never converted: it is in the second list (the caller records it)."""
    month = now.astimezone(UTC).strftime("%Y-%m")
    out, skipped = [], []
    for name, budget in sorted(budgets.items()):
        costs = spent.get(name) or {}
        if set(costs) - {budget.currency}:
            skipped.append(Skipped(name, budget.currency, tuple(sorted(costs))))
            continue
        cost = costs.get(budget.currency, 0.0)
        if cost > budget.monthly:
            out.append(Breach(name, month, round(cost, 6), budget.monthly, budget.currency))
    return out, skipped
