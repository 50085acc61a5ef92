"""A restore request, read strictly from its JSON body. Pure: every problem names its field.

    {"vm": "<the source VM's id>", "recovery_point": "<an id from its catalogue>",
     "target": {"type": "disks" | "vm" | "os_disk" | "original_location", ...}, "dry_run": false}

Targets:
- ``disks``: new managed disks in ``resource_group`` (a vault point: Azure Backup's RestoreDisks,
  which also needs ``staging_storage_account``);
- ``vm``: those disks and a new VM ``vm_name`` in ``resource_group`` with a new NIC in ``subnet``,
  ``vm_size`` defaulting to the source's (a vault point: AlternateLocation, with ``staging_storage_account``);
  standalone unless ``virtual_machine_scale_set`` names a Flexible scale set for it to join (snapshot sets and
  restore points), in ``platform_fault_domain`` if given (else the platform balances);
- ``os_disk``: the OS disk of the existing VM ``vm`` swapped for one restored from the point
  (snapshot sets and restore points);
- ``original_location``: Azure Backup's OriginalLocation, the source VM's disks replaced in place
  (vault points; ``staging_storage_account``);
- ``files``: disks made from the point's disks (``luns``, default every data disk; ``os_disk: true`` adds the OS
  disk, as a data disk) attached to the existing VM ``vm`` for ``duration_hours`` (shared/restore/lease.py);
- ``export``: one disk made from the point's disk ``lun`` (or ``os_disk: true``) in ``resource_group``, whose
  read SAS the caller takes once (``POST /api/restores/{id}/access``) for ``duration_hours``;
- ``files`` on a vault point: Azure Backup's item-level recovery session on the point for ``duration_hours``
  (default and at most Azure's 12), its mount script taken by a Restore.Operator (``POST
  /api/restores/{id}/script``) and run on the VM ``vm`` (optional: named, it is checked against the allow-list and
  the point's OS).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..access import BadId, ParsedId, parse_id
from . import catalogue, lease

TARGET_TYPES = ("disks", "vm", "os_disk", "original_location", "files", "export")
VM_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?$")
VM_SIZE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
TOP_FIELDS = {"vm", "recovery_point", "target", "dry_run"}
# What each target takes: (required, optional) per source kind family ("vault" or "disk" for the other two).
TARGET_FIELDS: dict[tuple[str, str], tuple[set[str], set[str]]] = {
    ("disk", "disks"): ({"resource_group"}, set()),
    ("disk", "vm"): ({"resource_group", "vm_name", "subnet"}, {"vm_size", "virtual_machine_scale_set",
                                                               "platform_fault_domain"}),
    ("disk", "os_disk"): ({"vm"}, set()),
    ("vault", "disks"): ({"resource_group", "staging_storage_account"}, set()),
    ("vault", "vm"): ({"resource_group", "vm_name", "subnet", "staging_storage_account"}, set()),
    ("vault", "original_location"): ({"staging_storage_account"}, set()),
    ("disk", "files"): ({"vm"}, {"luns", "os_disk", "duration_hours"}),
    ("disk", "export"): ({"resource_group"}, {"lun", "os_disk", "duration_hours"}),
    ("vault", "files"): (set(), {"vm", "duration_hours"}),
}
ID_FIELDS = {"resource_group": "resource_group", "subnet": "subnet", "vm": "vm",
             "staging_storage_account": "storage_account", "virtual_machine_scale_set": "scale_set"}
MAX_FAULT_DOMAIN = 2  # a Flexible scale set has at most 3 fault domains (platformFaultDomainCount 1-3)


@dataclass(frozen=True)
class FieldProblem:
    field: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "detail": self.detail}


class BadRequest(ValueError):
    def __init__(self, problems: list[FieldProblem]):
        super().__init__("; ".join(f"{p.field}: {p.detail}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class RestoreRequest:
    vm: ParsedId
    recovery_point: str
    source_kind: str  # catalogue.SNAPSHOT_SET | RESTORE_POINT | VAULT, from the point's id
    target_type: str
    target: dict[str, Any]  # ids as ParsedId, the rest as given
    dry_run: bool = False

    def target_ids(self) -> list[tuple[str, ParsedId]]:
        """Every id a restore writes to or into, by field: what the allow-list must admit."""
        out = [(f"target.{k}", v) for k, v in self.target.items() if isinstance(v, ParsedId)]
        if self.target_type == "original_location":
            out.append(("vm", self.vm))  # restored in place: the source VM is the target
        return out

    def to_json(self) -> dict[str, Any]:
        target = {k: (v.id if isinstance(v, ParsedId) else v) for k, v in self.target.items()}
        return {"vm": self.vm.id, "recovery_point": self.recovery_point, "target": {"type": self.target_type, **target},
                "dry_run": self.dry_run}


def _luns(value: Any, parsed: dict[str, Any], bad: Any, kind: Any) -> None:
    if not isinstance(value, list) or not value or len(value) > 64 or not all(_is_lun(v) for v in value) \
            or len(set(value)) != len(value):
        bad("target.luns", "a list of distinct LUNs (0-63) of the point's data disks")
    else:
        parsed["luns"] = sorted(value)


def _lun(value: Any, parsed: dict[str, Any], bad: Any, kind: Any) -> None:
    if not _is_lun(value):
        bad("target.lun", "the LUN (0-63) of the point's data disk to export")
    else:
        parsed["lun"] = value


def _os_disk(value: Any, parsed: dict[str, Any], bad: Any, kind: Any) -> None:
    if not isinstance(value, bool):
        bad("target.os_disk", "must be true or false")
    else:
        parsed["os_disk"] = value


def _hours(value: Any, parsed: dict[str, Any], bad: Any, kind: Any) -> None:
    most, least = (kind.max_hours, kind.min_hours) if kind else (0, 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= most or value < least:
        lower = f"from {least:g}" if least else "above 0"
        bad("target.duration_hours", f"a number of hours {lower} and at most {most:g} (default "
                                     f"{kind.default_hours if kind else 0:g})")
    else:
        parsed["duration_hours"] = value


def _is_lun(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 63


LEASE_FIELDS = {"luns": _luns, "lun": _lun, "os_disk": _os_disk, "duration_hours": _hours}


def targets_for(kind: str) -> list[str]:
    """The target types a point of this kind restores to (the catalogue says them per point)."""
    family = "vault" if kind == catalogue.VAULT else "disk"
    return [t for f, t in TARGET_FIELDS if f == family]


def point_kind(value: str) -> str:
    """The kind of recovery point an id names; ValueError when it names none."""
    if catalogue.SET_ID.fullmatch(value):
        return catalogue.SNAPSHOT_SET
    for kind, shape in ((catalogue.RESTORE_POINT, "restore_point"), (catalogue.VAULT, "vault_point")):
        try:
            parse_id(value, shape)
            return kind
        except BadId:
            pass
    raise ValueError("not a recovery point id from the catalogue (snapshot-set:{set}:{region}, a restore point id "
                     "or an Azure Backup recovery point id)")


def _key(name: Any) -> str:
    """An unknown field's name as a problem names it: never empty (``{"": 1}`` is a field too)."""
    return str(name)[:100] or '""'


def parse(body: Any) -> RestoreRequest:
    problems: list[FieldProblem] = []

    def bad(field: str, detail: str) -> None:
        problems.append(FieldProblem(field, detail))

    if not isinstance(body, dict):
        raise BadRequest([FieldProblem("body", "must be a JSON object")])
    for extra in sorted(set(body) - TOP_FIELDS):
        bad(_key(extra), "unknown field")
    vm = None
    try:
        vm = parse_id(body.get("vm"), "vm")
    except BadId as exc:
        bad("vm", "required" if "vm" not in body else str(exc))
    point = body.get("recovery_point")
    kind = None
    if not isinstance(point, str) or not point:
        bad("recovery_point", "required: the id of a point from GET /api/vms/{subscription}/{group}/{vm}/recovery-points")
    elif len(point) > 2048:
        bad("recovery_point", "too long")
    else:
        try:
            kind = point_kind(point)
        except ValueError as exc:
            bad("recovery_point", str(exc))
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        bad("dry_run", "must be true or false")
    target = body.get("target")
    parsed: dict[str, Any] = {}
    target_type = ""
    if not isinstance(target, dict):
        bad("target", "required: an object with a type (" + ", ".join(TARGET_TYPES) + ")")
    else:
        target_type = target.get("type") if isinstance(target.get("type"), str) else ""
        if target_type not in TARGET_TYPES:
            bad("target.type", "must be one of " + ", ".join(TARGET_TYPES))
        elif kind is not None:
            family = "vault" if kind == catalogue.VAULT else "disk"
            fields = TARGET_FIELDS.get((family, target_type))
            if fields is None:
                bad("target.type", f"'{target_type}' does not restore a {kind.replace('_', ' ')} (it takes "
                    + ", ".join(t for f, t in TARGET_FIELDS if f == family) + ")")
            else:
                required, optional = fields
                for extra in sorted(set(target) - required - optional - {"type"}):
                    bad(f"target.{_key(extra)}", f"not taken by a '{target_type}' target")
                for name in sorted(required | optional):
                    if name not in target:
                        if name in required:
                            bad(f"target.{name}", "required")
                        continue
                    value = target[name]
                    if name in ID_FIELDS:
                        try:
                            parsed[name] = parse_id(value, ID_FIELDS[name])
                        except BadId as exc:
                            bad(f"target.{name}", str(exc))
                    elif name == "vm_name":
                        if not isinstance(value, str) or not VM_NAME.fullmatch(value):
                            bad("target.vm_name", "1-64 letters, digits, '_', '.', '-' (not ending in '.' or '-')")
                        else:
                            parsed[name] = value
                    elif name == "platform_fault_domain":
                        if "virtual_machine_scale_set" not in target:
                            bad("target.platform_fault_domain", "applies only with target.virtual_machine_scale_set")
                        elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_FAULT_DOMAIN:
                            bad("target.platform_fault_domain",
                                f"a fault domain of the scale set: an integer from 0 to {MAX_FAULT_DOMAIN}")
                        else:
                            parsed[name] = value
                    elif name == "vm_size":
                        if not isinstance(value, str) or not VM_SIZE.fullmatch(value):
                            bad("target.vm_size", "a VM size such as Standard_D2s_v5")
                        else:
                            parsed[name] = value
                    elif name in LEASE_FIELDS:
                        LEASE_FIELDS[name](value, parsed, bad, lease.kind_of(family, target_type))
                if target_type == "export" and "lun" in target and target.get("os_disk") is True:
                    bad("target.lun", "one disk is exported: a lun, or os_disk: true, not both")
                elif target_type == "export" and "lun" not in target and target.get("os_disk") is not True:
                    bad("target.lun", "required: the LUN of the point's disk to export (or os_disk: true)")
                if (family, target_type) == ("disk", "files") and "luns" not in target \
                        and target.get("os_disk") is not True:
                    parsed.setdefault("luns", None)  # every data disk of the point
    if problems:
        raise BadRequest(problems)
    assert vm is not None and kind is not None
    return RestoreRequest(vm, point, kind, target_type, parsed, dry_run)
