"""vmkeeper policies: a versioned JSON document of named policies, validated with its JSON schema
(shared/policy.schema.json) and then by meaning, every error naming its field by path.

A VM picks a policy with its ``vmkeeper-policy`` tag (tag names are case-insensitive in Azure, and
so are the values here), opts out with ``vmkeeper-optout``, and otherwise gets the default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import tags as T

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MIN_HOURS = {"CrashConsistent": 1, "ApplicationConsistent": 3}  # Azure's minimum interval between restore points


class PolicyError(ValueError):
    """The document is invalid; ``errors`` lists every problem as 'path: what is wrong'."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


@dataclass(frozen=True)
class Schedule:
    kind: str  # "hourly" | "daily" | "weekly"
    every_hours: int = 24
    at: time = time(0, 0)
    weekday: int = 0  # Monday = 0
    tz: str = "UTC"

    @property
    def min_interval_hours(self) -> int:
        return self.every_hours if self.kind == "hourly" else 24 if self.kind == "daily" else 168


@dataclass(frozen=True)
class SnapshotSpec:
    luns: str | tuple[int, ...] = "all"
    include_os_disk: bool = True


@dataclass(frozen=True)
class RestorePointSpec:
    consistency: str = "ApplicationConsistent"
    exclude_luns: tuple[int, ...] = ()


@dataclass(frozen=True)
class Policy:
    name: str
    schedule: Schedule
    snapshots: SnapshotSpec | None = None
    restore_point: RestorePointSpec | None = None
    copy_region: str | None = None
    retention: dict[str, Any] = field(default_factory=dict)
    lock_days: int | None = None
    backup_policy: str | None = None


@dataclass(frozen=True)
class Resolution:
    policy: Policy | None  # None: opted out, or an error
    reason: str
    error: str | None = None


@dataclass(frozen=True)
class PolicySet:
    version: int
    default: str | None
    policies: dict[str, Policy]  # keyed by lower-case name

    def for_vm(self, vm_tags: dict[str, str] | None) -> Resolution:
        by_name = {k.lower(): v for k, v in (vm_tags or {}).items()}
        if by_name.get(T.OPT_OUT, "").strip().lower() in T.TRUE_VALUES:
            return Resolution(None, f"tag '{T.OPT_OUT}' opts the VM out")
        wanted = by_name.get(T.POLICY, "").strip()
        if not wanted:
            if self.default is None:
                return Resolution(None, "no policy tag and no default policy")
            return Resolution(self.policies[self.default.lower()], "default policy")
        policy = self.policies.get(wanted.lower())
        if policy is None:
            known = ", ".join(sorted(self.policies))
            return Resolution(None, "bad tag", f"tag '{T.POLICY}' = {wanted!r} names no policy (known: {known})")
        return Resolution(policy, f"tag '{T.POLICY}' = {wanted!r}")


@lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    schema = json.loads((Path(__file__).with_name("policy.schema.json")).read_text())
    return jsonschema.Draft202012Validator(schema)


def _path(error: Any) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) or "(document)"


def _describe(error: Any) -> str:
    """'path: message'; for a oneOf (schedule forms, lun lists) the closest alternative's own error."""
    while error.context:  # the alternative that got furthest into the value is the one meant
        error = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "required"))
    return f"{_path(error)}: {error.message}"


def _time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _zone(name: str, where: str, errors: list[str]) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(f"{where}: unknown time zone {name!r}")
    return name


def load_policies(text: str) -> PolicySet:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise PolicyError([f"(document): not JSON ({exc})"]) from None
    errors = sorted({_describe(e) for e in _validator().iter_errors(document)})
    if errors:
        raise PolicyError(errors)
    policies: dict[str, Policy] = {}
    for name, body in document["policies"].items():
        where = f"policies.{name}"
        raw = body["schedule"]
        if "every_hours" in raw:
            hours = raw["every_hours"]
            if not 1 <= hours <= 168:
                errors.append(f"{where}.schedule.every_hours: must be between 1 and 168 (got {hours})")
            schedule = Schedule("hourly", every_hours=hours)
        elif "daily_at" in raw:
            schedule = Schedule("daily", at=_time(raw["daily_at"]),
                                tz=_zone(raw.get("time_zone", "UTC"), f"{where}.schedule.time_zone", errors))
        else:
            schedule = Schedule("weekly", at=_time(raw["at"]), weekday=WEEKDAYS.index(raw["weekly_on"]),
                                tz=_zone(raw.get("time_zone", "UTC"), f"{where}.schedule.time_zone", errors))
        snapshots = None
        if "snapshots" in body:
            luns = body["snapshots"].get("luns", "all")
            snapshots = SnapshotSpec("all" if luns == "all" else tuple(luns), body["snapshots"].get("include_os_disk", True))
        restore_point = None
        if "restore_point" in body:
            rp = body["restore_point"]
            restore_point = RestorePointSpec(rp.get("consistency", "ApplicationConsistent"), tuple(rp.get("exclude_luns", [])))
            need = MIN_HOURS[restore_point.consistency]
            if schedule.min_interval_hours < need:
                errors.append(f"{where}.schedule.every_hours: {restore_point.consistency} restore points need at least "
                              f"{need} h between them (got {schedule.min_interval_hours} h)")
        if snapshots is None and restore_point is None:
            errors.append(f"{where}: takes nothing: give snapshots and/or restore_point")
        if "retention" in body:
            from .retention import RetentionPolicy

            try:
                RetentionPolicy.from_dict(body["retention"], where=f"{where}.retention")
            except ValueError as exc:
                errors.append(str(exc))
        policies[name.lower()] = Policy(name, schedule, snapshots, restore_point, (body.get("copy") or {}).get("region"),
                                        dict(body.get("retention") or {}), body.get("lock_days"), body.get("backup_policy"))
    default = document.get("default")
    if default is not None and default.lower() not in policies:
        errors.append(f"default: {default!r} names no policy (known: {', '.join(sorted(policies))})")
    if errors:
        raise PolicyError(errors)
    return PolicySet(document["version"], default, policies)


def load_policy_file(path: str | Path) -> PolicySet:
    return load_policies(Path(path).read_text(encoding="utf-8"))
