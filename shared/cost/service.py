"""The daily cost run (the timer in functions/cost.py): per scope (each subscription of VMKEEPER_SUBSCRIPTIONS) one
Cost Management query (shared/cost/model.py), the estimate for points newer than the cost data priced from the
Retail Prices API (shared/cost/prices.py), the results per VM and per policy recorded in the cost table, then each
policy's budget judged and ``vmkeeper.cost.over_budget`` raised once per policy and month.

Throttling: a scope is queried once a day (UTC); a 429 is not slept on (Retry-After may be minutes): the scope's
row keeps when it may be asked again and a later run asks it, its previous results standing meanwhile. A timer that
runs more often than daily retries a throttled scope the same day and still asks each scope once a day.

Idempotent: results are upserts per (scope, VM) and (scope, policy); the budget alert's id is the policy and month
(shared/alerts/outbox.py inserts its row first: of two runs, concurrent or not, one raises it).
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import tags as T
from ..alerts import events as A
from ..azure.graph import query_all
from ..azure.ledger import Ledger
from ..azure.retry_after import retry_after_seconds
from ..instants import format_instant, parse_instant
from ..ports import Arm
from ..settings import CostSettings
from . import model as M
from .prices import RetailPrices

log = logging.getLogger("vmkeeper.cost")
SCOPES = "cost-scope"  # a scope's last query (day) and when it may be asked again (retryAfter)
VMS = "cost-vm"  # one row per (scope, VM): its costs and daily series
POLICIES = "cost-policy"  # one row per (scope, policy)
RUN = "cost-run"
LATEST = "latest"
DEFAULT_RETRY_SECONDS = 3600  # a 429 without advice: an hour
_OURS = f"tags['{T.MANAGED_BY}'] =~ '{T.MANAGED_BY_VALUE}'"
SNAPSHOTS = (f"Resources | where type =~ '{M.SNAPSHOTS}' and {_OURS} "
             "| project id, location, subscriptionId, tags, created = tostring(properties.timeCreated), "
             "size = properties.diskSizeGB")
COLLECTIONS = (f"Resources | where type =~ '{M.COLLECTIONS}' and {_OURS} "
               "| project id, name, location, resourceGroup, subscriptionId, tags")


RATE_RETRY = tuple(f"x-ms-ratelimit-microsoft.costmanagement-{k}-retry-after" for k in ("qpu", "entity", "tenant"))
GENERAL_RETRY = ("retry-after", "retry-after-ms", "x-ms-retry-after-ms")


def _seconds(value: Any) -> float | None:
    try:
        return float(str(value).strip())
    except ValueError:
        return None  # not a number (Retry-After may be an HTTP date)


def throttle_seconds(headers: Any) -> int | None:
    """When a throttled scope may be asked again: the longest of Cost Management's own advice (its qpu, entity and
    tenant ``…-retry-after`` headers, seconds) and ARM's (``Retry-After`` and the ``…-ms`` forms, as
    shared/azure/retry_after.py reads them); a zero reads as no advice. None when there is none."""
    if headers is None:
        return None
    found = {str(k).lower(): v for k, v in headers.items()}
    own = [s for s in (_seconds(found.get(name)) for name in RATE_RETRY if name in found) if s and s > 0]
    general = {}
    for name in GENERAL_RETRY:
        value = _seconds(found.get(name))
        if name in found and (value is None or value > 0):
            general["Retry-After" if name == "retry-after" else name] = found[name]
    arm = retry_after_seconds(general) if general else None
    seconds = [math.ceil(s) for s in own] + ([arm] if arm else [])
    return max(seconds) if seconds else None


def _tag(tags: Any, name: str) -> str:
    return next((str(v) for k, v in (tags or {}).items() if k.lower() == name), "").strip()


class CostService:
    def __init__(self, settings: CostSettings, arm: Arm, ledger: Ledger, prices: RetailPrices, alerts: Any = None):
        self.settings, self.arm, self.ledger, self.prices, self.alerts = settings, arm, ledger, prices, alerts

    # --- reads ------------------------------------------------------------------------------------------
    def artifacts(self, cut: datetime) -> tuple[dict[str, str], list[tuple[str, M.Point]], dict[str, str]]:
        """Every artifact vmkeeper made (id → the policy that made it) and the points created after ``cut``, with
        their subscription: snapshots by their own size, restore points by their disks' sizes (provisioned); and
        the collections whose read failed (id → why). A collection gone since the graph listed it is skipped."""
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        unread: dict[str, str] = {}
        subs = list(self.settings.subscriptions)
        artifacts: dict[str, str] = {}
        points: list[tuple[str, M.Point]] = []
        graph = self.arm.resource_graph()
        for row in query_all(graph, subs, SNAPSHOTS):
            artifacts[row["id"].lower()] = _tag(row.get("tags"), T.ARTIFACT_POLICY).lower() or M.NO_POLICY
            created = parse_instant(row.get("created"))
            vm = _tag(row.get("tags"), T.VM).lower()
            if created and created > cut and vm:
                points.append((row["subscriptionId"].lower(), M.Point(
                    row["id"], vm, artifacts[row["id"].lower()], str(row.get("location") or "").replace(" ", "").lower(),
                    float(row.get("size") or 0), created)))
        for row in query_all(graph, subs, COLLECTIONS):
            policy = _tag(row.get("tags"), T.ARTIFACT_POLICY).lower() or M.NO_POLICY
            vm = _tag(row.get("tags"), T.VM).lower()
            artifacts[row["id"].lower()] = policy
            if not vm:
                continue
            sub = row["subscriptionId"].lower()
            try:
                collection = self.arm.compute(sub).restore_point_collections.get(row["resourceGroup"], row["name"],
                                                                                  expand="restorePoints")
            except ResourceNotFoundError:  # deleted since: Resource Graph lags a delete
                continue
            except HttpResponseError as exc:  # its new points go unestimated, said in the run summary
                log.warning("cost: restore point collection %s could not be read: %s", row["id"], exc.message)
                unread[row["id"].lower()] = f"{exc.status_code}: {exc.message}"[:300]
                continue
            for rp in collection.restore_points or []:
                created = rp.time_created
                if created is None or created <= cut:
                    continue
                storage = rp.source_metadata.storage_profile if rp.source_metadata else None
                disks = ([storage.os_disk] if storage and storage.os_disk else []) + list(storage.data_disks or []) if storage else []
                size = sum(float(d.disk_size_gb or 0) for d in disks)
                points.append((sub, M.Point(row["id"], vm, policy, str(row.get("location") or "").lower(), size,
                                            created.astimezone(UTC))))
        return artifacts, points, unread

    def query(self, subscription: str, now: datetime, pages: list[int] | None = None) -> list[M.Row]:
        """The scope's one query, and its further pages (nextLink: the same body posted to it, each one more POST
        on the throttled scope). ``pages`` gets the count of pages read, also when a later one fails (a 429 there
        throws the pages read away: a part of the month is no result; the run says how far it got)."""
        from azure.core.rest import HttpRequest

        client = self.arm.cost_management()
        body = M.query(now)
        result = client.query.usage(f"/subscriptions/{subscription}", body)
        if result is None:  # 204: no cost data
            return []
        rows = M.parse(result.columns, result.rows or [])
        read = pages if pages is not None else []
        read.append(1)
        link = result.next_link
        while link:
            resp = client.send_request(HttpRequest("POST", link, json=body))
            resp.raise_for_status()
            page = resp.json()["properties"]
            rows += M.parse(page["columns"], page.get("rows") or [])
            read[0] += 1
            link = page.get("nextLink")
        return rows

    # --- the run ------------------------------------------------------------------------------------------
    def run(self, now: datetime) -> dict[str, Any]:
        from azure.core.exceptions import HttpResponseError

        from ..policy.document import load_policy_file

        policies = load_policy_file(self.settings.policy_file)
        today = now.astimezone(UTC).date().isoformat()
        cut = now - timedelta(hours=self.settings.data_lag_hours)
        out: dict[str, Any] = {"queried": [], "deferred": {}, "kept": [], "failed": {}, "unpriced": [], "alerts": 0}
        due = []
        for sub in self.settings.subscriptions:
            state = self.ledger.get(SCOPES, sub) or {}
            until = parse_instant(state.get("retryAfter"))
            if state.get("day") == today:
                out["kept"].append(sub)
            elif until is not None and until > now:
                out["deferred"][sub] = format_instant(until)
            else:
                due.append(sub)
        if due:
            artifacts, points, unread = self.artifacts(cut)
            if unread:
                out["unread"] = unread
            unpriced: set[str] = set()
            failed: dict[str, str] = {}
            for sub in due:
                pages: list[int] = []
                try:
                    rows = self.query(sub, now, pages)
                except HttpResponseError as exc:
                    if pages:  # the first page came, a later one failed: said, as the pages read are not kept
                        out.setdefault("pagesRead", {})[sub] = pages[0]
                    if exc.status_code != 429:
                        log.warning("cost: the query of subscription %s failed: %s", sub, exc.message)
                        out["failed"][sub] = f"{exc.status_code}: {exc.message}"[:500]
                        continue
                    wait = throttle_seconds(exc.response.headers if exc.response is not None else None)
                    until = now + timedelta(seconds=wait or DEFAULT_RETRY_SECONDS)
                    self.ledger.record(SCOPES, sub, {"retryAfter": format_instant(until)})
                    out["deferred"][sub] = format_instant(until)
                    continue
                # One currency per scope: the cost data's (else the scope's last, else the Retail Prices default),
                # the retail prices asked in it; a row in another is left out and said, never converted.
                state = self.ledger.get(SCOPES, sub) or {}
                currency = M.currency_of(rows) or state.get("currency") or "USD"
                rows, other = M.in_currency(rows, currency)
                if other:
                    out.setdefault("otherCurrency", {})[sub] = sorted({r.currency for r in other})
                mine = [p for s, p in points if s == sub]
                regions = {p.region for p in mine}
                prices = (self.prices.snapshot_prices(regions, now.astimezone(UTC).date(), failed, currency)
                          if regions else {})
                unpriced |= {f"{r} ({currency})" if currency != "USD" else r for r in regions - set(prices)}
                estimated = M.unbilled(M.estimate(mine, prices, now, cut, currency), rows)
                vms, pols = M.summarize(rows, estimated, artifacts, now, sub, currency)
                self._record(sub, vms, pols, now)
                self.ledger.record(SCOPES, sub, {"day": today, "at": format_instant(now), "retryAfter": "",
                                                 "currency": currency})
                out["queried"].append(sub)
            out["unpriced"] = sorted(unpriced)
            if failed:
                out["priceErrors"] = failed
        budgets = {name: p.budget for name, p in policies.policies.items() if p.budget is not None}
        if budgets:
            out["alerts"], skipped = self._budgets(budgets, now)
            if skipped:  # said, not silently passed over
                out["budgetsSkipped"] = skipped
        self.ledger.record(RUN, LATEST, {"at": format_instant(now), "summary": json.dumps(out),
                                         "period": json.dumps([d.isoformat() for d in M.window(now)]),
                                         "dataLagHours": self.settings.data_lag_hours})
        return out

    def _record(self, sub: str, vms: dict[str, M.Costs], pols: dict[str, M.Costs], now: datetime) -> None:
        month = now.astimezone(UTC).strftime("%Y-%m")
        for partition, found in ((VMS, vms), (POLICIES, pols)):
            rows = [(f"{sub}|{name}", {"name": name, "subscription": sub, "policy": c.policy, "month": month,
                                       "monthToDate": round(c.month_to_date, 6), "last30Days": round(c.last_30_days, 6),
                                       "estimate": round(c.estimate, 6), "currency": c.currency,
                                       "daily": json.dumps({k: round(v, 6) for k, v in sorted(c.daily.items())}),
                                       "at": format_instant(now)}) for name, c in found.items()]
            if rows:
                self.ledger.record_many(partition, rows)
            for old in self.ledger.rows(partition, f"subscription eq '{sub}'"):
                if old["name"] not in found:  # no cost in the window any more
                    self.ledger.delete(partition, old["item"])

    def _budgets(self, budgets: dict[str, Any], now: datetime) -> tuple[int, list[dict[str, Any]]]:
        """Alerts raised, and the budgets not compared (their policy's cost in another currency)."""
        month = now.astimezone(UTC).strftime("%Y-%m")
        spent: dict[str, dict[str, float]] = {}
        for row in self.ledger.rows(POLICIES, f"month eq '{month}'"):
            costs = spent.setdefault(row["name"], {})
            currency = row.get("currency") or "USD"
            costs[currency] = costs.get(currency, 0.0) + float(row.get("monthToDate") or 0)
        breaches, skipped = M.over_budget(spent, budgets, now)
        for skip in skipped:
            log.warning("cost: policy %s's budget (%s) not compared: its cost is in %s", skip.policy,
                        skip.budget_currency, ", ".join(skip.cost_currencies))
        raised = 0
        for breach in breaches:
            alert = A.Alert(A.COST_OVER_BUDGET, f"policy/{breach.policy}", f"{breach.policy}|{breach.month}",
                            {"policy": breach.policy, "month": breach.month, "monthToDate": breach.spent,
                             "budget": breach.monthly, "currency": breach.currency})
            if self.alerts is not None and self.alerts.raise_(alert):
                raised += 1
        return raised, [{"policy": k.policy, "budgetCurrency": k.budget_currency, "costCurrencies": list(k.cost_currencies)}
                        for k in skipped]

    # --- what the CLI and the report read ---------------------------------------------------------------------
    def recorded(self) -> dict[str, Any] | None:
        """The latest results: per VM and per policy (summed over scopes), with daily series; None before any run."""
        run = self.ledger.get(RUN, LATEST)
        if run is None:
            return None

        def load(partition: str) -> list[dict[str, Any]]:
            return [{"name": r["name"], "subscription": r["subscription"], "policy": r["policy"], "month": r["month"],
                     "month_to_date": float(r["monthToDate"]), "last_30_days": float(r["last30Days"]),
                     "estimate": float(r["estimate"]), "currency": r["currency"], "daily": json.loads(r["daily"]),
                     "at": r["at"]} for r in self.ledger.rows(partition)]

        vms = sorted(load(VMS), key=lambda r: (-r["month_to_date"], r["name"]))
        policies: dict[str, dict[str, Any]] = {}
        for r in load(POLICIES):
            p = policies.setdefault(r["name"], {"name": r["name"], "month_to_date": 0.0, "last_30_days": 0.0,
                                                "estimate": 0.0, "currency": r["currency"], "daily": {}})
            for k in ("month_to_date", "last_30_days", "estimate"):
                p[k] += r[k]
            for day, v in r["daily"].items():
                p["daily"][day] = p["daily"].get(day, 0.0) + v
        return {"at": run["at"], "period": json.loads(run["period"]), "data_lag_hours": run.get("dataLagHours"),
                "run": json.loads(run["summary"]), "vms": vms,
                "policies": sorted(policies.values(), key=lambda r: (-r["month_to_date"], r["name"]))}
