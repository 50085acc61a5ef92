"""vmkeeper policies: a versioned JSON document of named policies, checked against its JSON schema
(shared/policy/schema.json, Draft 2020-12) and then by meaning. Every problem is reported at once,
each as ``path: what is wrong`` with the field's JSON path, e.g.
``policies.gold.schedule.every_hours: must be between 1 and 168 (got 0)``.

A VM picks a policy with its ``vmkeeper-policy`` tag (Azure tag names are case-insensitive; so are
policy names here), opts out with ``vmkeeper-optout``, and otherwise gets the document's default.
"""

from __future__ import annotations

import json
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, time, timedelta, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from .. import tags as T
from .retention import RetentionPolicy

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
CONSISTENCIES = ("CrashConsistent", "ApplicationConsistent")
# Azure's minimum interval between two restore points of a VM, by the new one's consistency.
MIN_RESTORE_POINT_HOURS = {"CrashConsistent": 1, "ApplicationConsistent": 3}
EVERY_HOURS_RANGE = (1, 168)
MAX_DURATION = timedelta(days=36500)  # retention durations: a century at most
_UTC_NAMES = ("UTC", "Etc/UTC")
# A key written bare in a path; others are quoted: policies["gold.v2"].
_PLAIN = re.compile(r"^[A-Za-z0-9_-]+$")


class PolicyError(ValueError):
    """The policy document is invalid. ``errors`` lists every problem as 'path: what is wrong'."""

    def __init__(self, errors: list[str], source: str | None = None):
        self.errors = list(errors)
        self.source = source
        head = f"{source}: " if source else ""
        if len(self.errors) == 1:
            super().__init__(head + self.errors[0])
        else:
            super().__init__(
                f"{head}{len(self.errors)} errors in the policy document: " + "; ".join(self.errors)
            )


@dataclass(frozen=True)
class Schedule:
    """When slots start. hourly: every ``every_hours`` whole hours counted from the Unix epoch (UTC);
    daily: at ``at`` local time in ``tz``; weekly: on ``weekday`` (Monday = 0) at ``at`` in ``tz``."""

    kind: Literal["hourly", "daily", "weekly"]
    every_hours: int | None = None
    at: time | None = None
    weekday: int | None = None
    tz: str = "UTC"

    @property
    def min_interval_hours(self) -> int:
        """The shortest gap between two slots (a DST day is 23 h long: still more than any limit)."""
        if self.kind == "hourly":
            return self.every_hours or 0
        return 23 if self.kind == "daily" else 167


@dataclass(frozen=True)
class SnapshotSpec:
    luns: Literal["all"] | tuple[int, ...] = "all"
    include_os_disk: bool = True


@dataclass(frozen=True)
class RestorePointSpec:
    consistency: Literal["CrashConsistent", "ApplicationConsistent"] = "ApplicationConsistent"
    exclude_luns: tuple[int, ...] = ()


@dataclass(frozen=True)
class CopySpec:
    region: str


# The kinds of point an immutability policy can hold: Azure offers one on snapshots only (Compute 2026-03-02
# updateImmutabilityPolicy); a restore point or a vault's point has none of its own.
IMMUTABLE_KINDS = ("snapshot_sets", "copies", "isolated_copies")
NOT_IMMUTABLE = {
    "restore_points": "Azure offers no immutability policy on restore points (only on snapshots); protect them "
                      "with an immutable Azure Backup vault instead",
    "vault": "an Azure Backup vault's immutability is the vault's own setting (infra), not a policy's",
}


@dataclass(frozen=True)
class ImmutabilitySpec:
    """An immutability policy on the snapshots vmkeeper makes: at least ``days``, Unlocked, then Locked if ``locked``."""

    days: int
    locked: bool = False
    kinds: tuple[str, ...] = ("snapshot_sets",)


@dataclass(frozen=True)
class DrillSpec:
    every_days: int = 7
    point: Literal["copy", "snapshot_set", "restore_point", "replica"] = "copy"  # replica: a Site Recovery test failover
    all_vms: bool = False
    keep_hours: float = 0
    keep_failed_hours: float = 24
    ready_timeout_minutes: float = 30
    vm_size: str | None = None


@dataclass(frozen=True)
class NetworkMapping:
    source_vnet: str
    target_vnet: str
    target_subnet: str | None = None


@dataclass(frozen=True)
class ReplicationSpec:
    """Site Recovery (Azure-to-Azure) of the policy's VMs (shared/replication/): where to, through what."""

    target_region: str
    target_resource_group: str  # a group's id
    cache_storage_accounts: tuple[tuple[str, str], ...]  # (source region, storage account id), sorted
    isolated_network: bool = False  # vmkeeper makes a VNet of its own in the target group
    network_mappings: tuple[NetworkMapping, ...] = ()
    recovery_point_retention_hours: int = 24
    app_consistent_frequency_hours: int = 4
    consistency_group: str | None = None
    all_vms: bool = False  # else only VMs tagged vmkeeper-dr: critical
    rpo_minutes: int = 60  # compliance's RPO target for the replica kind (shared/compliance/replica.py)

    def cache_account(self, region: str) -> str | None:
        return dict(self.cache_storage_accounts).get(region)

    def mapping_for(self, source_vnet_id: str) -> NetworkMapping | None:
        return next((m for m in self.network_mappings if m.source_vnet.lower() == source_vnet_id.lower()), None)


@dataclass(frozen=True)
class BudgetSpec:
    """What a policy's points may cost a month (in ``currency``, the cost data's): over it, one alert a month."""

    monthly: float
    currency: str = "USD"


@dataclass(frozen=True)
class Policy:
    name: str  # as written in the document
    schedule: Schedule
    snapshots: SnapshotSpec | None = None
    restore_point: RestorePointSpec | None = None
    copy: CopySpec | None = None
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)  # no block: no rule, keep everything
    lock_days: int | None = None
    backup_policy: str | None = None
    rpo_hours: int | None = None  # overrides the RPO derived from the schedule (shared/compliance/rpo.py)
    drill: DrillSpec | None = None  # DR drills of the policy's VMs (shared/drill/)
    replication: ReplicationSpec | None = None  # Site Recovery of the policy's VMs (shared/replication/)
    immutability: ImmutabilitySpec | None = None  # immutability policies on its snapshots (Compute 2026-03-02)
    budget: BudgetSpec | None = None  # a monthly budget for what its points cost (shared/cost/)
    isolated: bool = False  # its sets are copied into the backup subscription (docs/isolated-copies.md)

    @property
    def copy_region(self) -> str | None:
        return self.copy.region if self.copy else None


@dataclass(frozen=True)
class Resolution:
    """What a VM's tags choose: a policy; or none, because it opted out (``opted_out``), because a tag
    is wrong (``error`` says which and why), or because it has no tag and there is no default."""

    policy: Policy | None
    reason: str
    error: str | None = None
    opted_out: bool = False


@dataclass(frozen=True)
class PolicySet:
    version: int
    default: str | None  # as written; matched case-insensitively
    policies: dict[str, Policy]  # keyed by lower-case name

    def get(self, name: str) -> Policy | None:
        return self.policies.get(name.strip().lower())

    @property
    def known(self) -> str:
        return ", ".join(sorted((p.name for p in self.policies.values()), key=str.lower))

    def for_vm(self, vm_tags: Mapping[str, str] | None) -> Resolution:
        # Azure tag names are case-insensitive; sorted so a (theoretical) duplicate resolves the same way every run.
        by_name: dict[str, str] = {}
        for name, value in sorted((vm_tags or {}).items()):
            by_name.setdefault(str(name).lower(), "" if value is None else str(value))
        optout = by_name.get(T.OPT_OUT, "")
        if optout.strip().lower() in T.TRUE_VALUES:
            return Resolution(None, f"opted out: tag '{T.OPT_OUT}' = {optout!r}", opted_out=True)
        wanted = by_name.get(T.POLICY, "").strip()
        if not wanted:  # an empty tag value is no choice: the default applies
            if self.default is None:
                return Resolution(None, f"no '{T.POLICY}' tag and no default policy")
            policy = self.policies[self.default.lower()]
            return Resolution(policy, f"default policy '{policy.name}'")
        policy = self.get(wanted)
        if policy is None:
            return Resolution(
                None, "bad tag", f"tag '{T.POLICY}' = {wanted!r} names no policy (known: {self.known})"
            )
        return Resolution(policy, f"tag '{T.POLICY}' = {wanted!r}")


# --- time zones -----------------------------------------------------------------------------------
def zone(name: str) -> tzinfo:
    """A policy's time zone. UTC needs no tz database: the Functions host may have none (no tzdata)."""
    if name in _UTC_NAMES:
        return UTC
    return zoneinfo.ZoneInfo(name)


def _zone_problem(name: str) -> str | None:
    try:
        zone(name)
        return None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    if not zoneinfo.available_timezones():
        return f"unknown time zone {name!r}: this host has no time zone database (install the tzdata package)"
    return f"unknown time zone {name!r} (expected an IANA name such as 'Europe/Amsterdam')"


# --- schema errors --------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema  # lazily: only loading a document needs it

    schema = json.loads(Path(__file__).with_name("schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _where(path: Any) -> str:
    """A JSON path as people write it: policies.gold.snapshots.luns[0] (a key with a dot is quoted)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN.match(part):
            out += f"[{json.dumps(part)}]"
        else:
            out += f".{part}" if out else part
    return out or "(document)"


def _got(value: Any) -> str:
    if isinstance(value, dict):
        return f"(has: {', '.join(value) or 'nothing'})"
    text = json.dumps(value)
    return f"(got {text if len(text) <= 60 else text[:57] + '...'})"


_ARTICLE = {
    "integer": "an integer",
    "string": "a string",
    "object": "an object",
    "array": "a list",
    "boolean": "true or false",
    "number": "a number",
}


def _schema_messages(error: Any) -> list[str]:
    """jsonschema's error as 'path: message' lines, worded for people editing the document."""
    path = list(error.absolute_path)
    if error.context:  # anyOf/oneOf: the alternative that got further into the value says what is wrong
        deepest = max(len(e.absolute_path) for e in error.context)
        if deepest > len(path):
            chosen = next(e.relative_schema_path[0] for e in error.context if len(e.absolute_path) == deepest)
            return [
                m for e in error.context if e.relative_schema_path[0] == chosen for m in _schema_messages(e)
            ]
    kind, value, schema = error.validator, error.validator_value, error.schema
    if kind == "required":
        return [f"{_where(path + [name])}: is required" for name in value if name not in error.instance]
    if kind == "additionalProperties":
        known = ", ".join(schema.get("properties", {}))
        return [
            f"{_where(path + [name])}: unknown field (known: {known})"
            for name in error.instance
            if name not in schema.get("properties", {})
        ]
    if kind == "dependentRequired":
        return [
            f"{_where(path + [need])}: is required with {name}"
            for name, needs in value.items()
            if name in error.instance
            for need in needs
            if need not in error.instance
        ]
    if "propertyNames" in error.schema_path:  # the error sits on the parent; name the offending key
        return [f"{_where(path + [error.instance])}: {schema.get('x-message', error.message)}"]
    if "x-message" in schema:
        return [f"{_where(path)}: {schema['x-message']} {_got(error.instance)}"]
    got = _got(error.instance)
    message = {
        "type": lambda: f"must be {_ARTICLE.get(value, value)} {got}",
        "enum": lambda: f"must be one of {', '.join(map(str, value))} {got}",
        "const": lambda: f"must be {json.dumps(value)} {got}",
        "minimum": lambda: f"must be at least {value} {got}",
        "maximum": lambda: f"must be at most {value} {got}",
        "minLength": lambda: "must not be empty",
        "minProperties": lambda: "must not be empty",
        "minItems": lambda: "must not be empty",
        "uniqueItems": lambda: f"must not repeat a value {got}",
    }.get(kind, lambda: error.message)()
    return [f"{_where(path)}: {message}"]


# --- meaning --------------------------------------------------------------------------------------
def _time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _schedule(raw: Mapping[str, Any], where: str, errors: list[str]) -> Schedule:
    if "every_hours" in raw:
        hours, (low, high) = raw["every_hours"], EVERY_HOURS_RANGE
        if not low <= hours <= high:
            errors.append(f"{where}.every_hours: must be between {low} and {high} (got {hours})")
        if "time_zone" in raw:
            errors.append(
                f"{where}.time_zone: applies to daily_at and weekly_on only "
                "(every_hours counts whole UTC hours from the Unix epoch)"
            )
        return Schedule("hourly", every_hours=hours)
    tz = raw.get("time_zone", "UTC")
    problem = _zone_problem(tz)
    if problem:
        errors.append(f"{where}.time_zone: {problem}")
    if "daily_at" in raw:
        return Schedule("daily", at=_time(raw["daily_at"]), tz=tz)
    return Schedule("weekly", at=_time(raw["at"]), weekday=WEEKDAYS.index(raw["weekly_on"]), tz=tz)


def _retention(raw: Mapping[str, Any], where: str, errors: list[str]) -> RetentionPolicy:
    """The retention block, parsed once (``max_age_days: N`` is ``max_age: "PND"``)."""
    retention = dict(raw)
    if "max_age_days" in retention:
        days = retention.pop("max_age_days")
        if "max_age" in retention:
            errors.append(f"{where}.max_age_days: give max_age or max_age_days, not both")
        elif isinstance(days, bool) or not isinstance(days, int) or days < 1:
            errors.append(f"{where}.max_age_days: must be a positive integer {_got(days)}")
        else:
            retention["max_age"] = f"P{days}D"
    try:
        parsed = RetentionPolicy.from_dict(retention, where=where)
    except (ValueError, OverflowError) as exc:
        errors.append(str(exc) if isinstance(exc, ValueError) else f"{where}: a duration is out of range ({exc})")
        return RetentionPolicy()
    for name in ("max_age", "orphan_grace", "deferral"):
        # An expiry is a slot plus max_age: beyond a century it overflows a date (and means nothing).
        value = getattr(parsed, name)
        if value is not None and value > MAX_DURATION:
            errors.append(f"{where}.{name}: must be at most {MAX_DURATION.days} days (got {value.days} days)")
    return parsed


def _replication(raw: Mapping[str, Any], where: str, errors: list[str]) -> ReplicationSpec:
    """The replication block's meaning (its shape is the schema's)."""
    target = raw["target_region"]
    caches = raw["cache_storage_accounts"]
    if target in caches:
        errors.append(f"{where}.cache_storage_accounts.{target}: is the target region: a VM replicates to another "
                      "region than its own, and its cache account is in its own (source) region")
    retention, app = raw.get("recovery_point_retention_hours", 24), raw.get("app_consistent_frequency_hours", 4)
    if app > retention:
        errors.append(f"{where}.app_consistent_frequency_hours: must not exceed recovery_point_retention_hours "
                      f"({app} > {retention}): an app-consistent point would never be kept")
    mappings = []
    seen: dict[str, int] = {}
    for i, m in enumerate(raw["network"].get("mappings", ())):
        at = f"{where}.network.mappings[{i}]"
        source = m["source_vnet"].lower()
        if source in seen:
            errors.append(f"{at}.source_vnet: maps the same VNet as mappings[{seen[source]}]")
        seen.setdefault(source, i)
        if source == m["target_vnet"].lower():
            errors.append(f"{at}.target_vnet: is the source VNet itself: the recovery VNet is in the target region")
        mappings.append(NetworkMapping(m["source_vnet"], m["target_vnet"], m.get("target_subnet")))
    return ReplicationSpec(target, raw["target_resource_group"], tuple(sorted(caches.items())),
                           bool(raw["network"].get("isolated")), tuple(mappings), retention, app,
                           raw.get("consistency_group"), raw.get("all_vms", False), raw.get("rpo_minutes", 60))


def _immutability(body: Mapping[str, Any], where: str, errors: list[str]) -> ImmutabilitySpec:
    """The immutability block's meaning: only kinds Azure can make immutable, and only kinds the policy takes."""
    raw = body["immutability"]
    default = ("snapshot_sets",) + (("copies",) if "copy" in body else ()) + (
        ("isolated_copies",) if body.get("isolated") is True else ())
    kinds = tuple(raw.get("kinds", default))
    for i, kind in enumerate(kinds):
        at = f"{where}.kinds[{i}]"
        if kind in NOT_IMMUTABLE:
            errors.append(f"{at}: {kind!r} cannot be made immutable: {NOT_IMMUTABLE[kind]}")
        elif kind not in IMMUTABLE_KINDS:
            errors.append(f"{at}: must be one of {', '.join(IMMUTABLE_KINDS)} {_got(kind)}")
    if "snapshots" not in body:
        errors.append(f"{where}: the policy takes no snapshot sets (give snapshots): Azure can make only snapshots "
                      "immutable, not restore points")
    if "copies" in kinds and "copy" not in body:
        errors.append(f"{where}.kinds: 'copies' needs the policy's copy (a second region); give copy, or leave "
                      "'copies' out")
    if "isolated_copies" in kinds and body.get("isolated") is not True:
        errors.append(f"{where}.kinds: 'isolated_copies' needs the policy's isolated: true; give it, or leave "
                      "'isolated_copies' out")
    return ImmutabilitySpec(raw["days"], raw.get("locked", False), tuple(k for k in IMMUTABLE_KINDS if k in kinds))


def _policy(
    name: str, body: Mapping[str, Any], where: str, errors: list[str], broken: set[str]
) -> Policy | None:
    """Check a policy's meaning, section by section: a section with schema errors (``broken``) is left
    out, as the checks rely on its types. None if the policy is invalid."""

    def ok(section: str) -> bool:
        return section in body and section not in broken

    schedule = _schedule(body["schedule"], f"{where}.schedule", errors) if ok("schedule") else None
    snapshots = restore_point = copy = None
    if ok("snapshots"):
        raw = body["snapshots"]
        luns = raw.get("luns", "all")
        snapshots = SnapshotSpec(
            "all" if luns == "all" else tuple(sorted(luns)), raw.get("include_os_disk", True)
        )
        if snapshots.luns == () and not snapshots.include_os_disk:
            errors.append(f"{where}.snapshots: selects no disk (luns is empty and include_os_disk is false)")
    if ok("restore_point"):
        raw = body["restore_point"]
        restore_point = RestorePointSpec(
            raw.get("consistency", "ApplicationConsistent"), tuple(sorted(raw.get("exclude_luns", ())))
        )
        need = MIN_RESTORE_POINT_HOURS[restore_point.consistency]
        # Out-of-range every_hours is reported once, above; this is about the restore points.
        if schedule and schedule.kind == "hourly" and EVERY_HOURS_RANGE[0] <= schedule.every_hours < need:
            errors.append(
                f"{where}.schedule.every_hours: {restore_point.consistency} restore points need at least "
                f"{need} h between them (got {schedule.every_hours})"
            )
    if "snapshots" not in body and "restore_point" not in body:
        errors.append(f"{where}: takes nothing: give snapshots and/or restore_point")
    if ok("copy"):
        copy = CopySpec(body["copy"]["region"])
    drill = DrillSpec(**body["drill"]) if ok("drill") else None
    if drill and drill.point == "copy" and "copy" not in body:
        errors.append(f"{where}.drill.point: 'copy' needs the policy's copy (a second region); "
                      "give copy, or drill.point snapshot_set, restore_point or replica")
    retention = _retention(body["retention"], f"{where}.retention", errors) if ok("retention") else RetentionPolicy()
    replication = _replication(body["replication"], f"{where}.replication", errors) if ok("replication") else None
    immutability = _immutability(body, f"{where}.immutability", errors) if ok("immutability") else None
    if body.get("isolated") is True and "snapshots" not in body:
        errors.append(f"{where}.isolated: the policy takes no snapshot sets (give snapshots): only snapshot sets are "
                      "copied into the backup subscription")
    if broken or schedule is None:
        return None
    if schedule.tz != retention.time_zone and not _zone_problem(schedule.tz):
        retention = replace(retention, time_zone=schedule.tz)  # GFS days are the schedule's local days
    return Policy(
        name,
        schedule,
        snapshots,
        restore_point,
        copy,
        retention,
        body.get("lock_days"),
        body.get("backup_policy"),
        body.get("rpo_hours"),
        drill,
        replication,
        immutability,
        BudgetSpec(float(body["budget"]["monthly"]), body["budget"].get("currency", "USD")) if ok("budget") else None,
        body.get("isolated") is True,
    )


def _group(error: Any) -> tuple[str | None, str | None]:
    """(policy, section) an error belongs to, to report by policy and to skip broken sections."""
    path = [str(p) for p in error.absolute_path]
    if path[:1] == ["policies"]:
        if len(path) >= 2:
            return path[1], path[2] if len(path) >= 3 else None
        if "propertyNames" in error.schema_path:
            return str(error.instance), None
    return None, None


def load_policies(text: str | bytes) -> PolicySet:
    """Parse and check a policy document. Raises PolicyError listing every problem found, top-level
    ones first, then each policy's in document order."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise PolicyError([f"(document): not valid JSON: {exc}"]) from None
    messages: dict[str | None, list[str]] = {}
    broken: dict[str, set[str]] = {}  # policy → sections with schema errors
    for error in _validator().iter_errors(document):
        policy, section = _group(error)
        messages.setdefault(policy, []).extend(_schema_messages(error))
        if policy is not None:
            broken.setdefault(policy, set()).update([section] if section else [])
    errors = messages.pop(None, [])
    if not isinstance(document, dict) or not isinstance(document.get("policies"), dict):
        raise PolicyError(list(dict.fromkeys(errors)))
    policies: dict[str, Policy] = {}
    names: dict[str, str] = {}  # lower-case → as written, for every policy (valid or not)
    for name, body in document["policies"].items():
        where = _where(["policies", name])
        errors.extend(messages.get(name, []))
        if name.lower() in names:
            errors.append(
                f"{where}: same name as '{names[name.lower()]}' (policy names are case-insensitive)"
            )
            continue
        names[name.lower()] = name
        if isinstance(body, dict):
            policy = _policy(name, body, where, errors, broken.get(name, set()))
            if policy is not None:
                policies[name.lower()] = policy
    default = document.get("default")
    if isinstance(default, str) and default.strip().lower() not in names:
        known = ", ".join(sorted(names.values(), key=str.lower))
        errors.append(f"default: {default!r} names no policy (known: {known})")
    errors = list(dict.fromkeys(errors))
    if errors:
        raise PolicyError(errors)
    return PolicySet(document["version"], default.strip() if default else None, policies)


def load_policy_file(path: str | Path) -> PolicySet:
    try:
        return load_policies(Path(path).read_text(encoding="utf-8"))
    except PolicyError as exc:
        raise PolicyError(exc.errors, source=str(path)) from None
