"""The protect sweep's one decision, pure: does the ledger already record this VM instance protected as the
policy document wants it? Only then is the VM left out of the sweep; anything else — no row, another outcome,
another instance (a VM deleted and created again under its name), another policy or vault, a row that can't be
read — sends a job, which reads Azure first and is create-only (an enrolled VM ends ``already_protected``).
Two more rules (``decide``): a VM whose last sweep job failed with the same inputs is held until a retry interval
passes (not one poisoned job each sweep), and a protected row is looked at again once it is older than a
re-check interval (protection stopped outside vmkeeper)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ..instants import parse_instant

# The VM listing (each VM's instance id: the ledger's rows name the instance they protected).
VMS = ("Resources | where type =~ 'microsoft.compute/virtualmachines' "
       "| project id, location, tags, vmId = tostring(properties.vmId)")
DONE = ("protected", "already_protected")  # the worker's outcomes of a VM enrolled in its vault


def recorded_protected(row: Mapping[str, Any] | None, vm_instance: str, backup_policy: str, vault_id: str) -> bool:
    """Whether ``row`` (the ledger's row of the VM, partition ``vm``) says this instance is protected in ``vault_id``
    under ``backup_policy``. Conservative: any doubt is False."""
    if not row or row.get("outcome") not in DONE or not vm_instance:
        return False
    try:
        detail = json.loads(row.get("detail") or "")
    except (TypeError, ValueError):
        return False
    if not isinstance(detail, dict) or detail.get("document_policy"):  # protected under another policy than the document's
        return False

    def same(name: str, want: str) -> bool:
        return isinstance(detail.get(name), str) and detail[name].lower() == want.lower()

    return same("vm_instance", vm_instance) and same("policy", backup_policy) and same("vault", vault_id)


# Outcomes of a VM the job could not enrol as its inputs stand (no vault for its region, an item that protects
# another VM, a bad tag): sent again only when an input changes or the retry interval has passed.
HELD = ("failed", "bad_tag")


def lasting_failure(job: Mapping[str, Any]) -> bool:
    """Whether a protection job that failed would fail the same way with the same inputs: it failed at its first look
    (no vault for the region, an item that protects another VM). One that gave up after tries or errors (throttling,
    an outage) may pass next time, so the sweep does not hold it."""
    return not job.get("attempt") and not job.get("errors")


def inputs_key(vm_instance: str, location: str, tags: Mapping[str, Any] | None, vault_id: str, document: str) -> str:
    """What the job's outcome depends on that the sweep can see: the instance, its region, its tags, the region's
    vault (VMKEEPER_VAULTS) and the policy document (``document``: its digest). Any change makes another key."""
    parts = {"vm_instance": vm_instance.lower(), "location": location.replace(" ", "").lower(),
             "tags": dict(tags or {}), "vault": vault_id.lower(), "document": document}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _age(row: Mapping[str, Any], now: datetime) -> timedelta | None:
    when = parse_instant(row.get("updated"))
    return None if when is None else now - when


def recheck_due(age: timedelta, recheck_after: timedelta, vm_instance: str) -> bool:
    """Whether a recorded-protected row of this age is due a fresh look. Each VM is due somewhere in the last half of
    ``recheck_after``, by a hash of its instance id: the rows one sweep wrote don't all age out in one later sweep."""
    share = int(hashlib.sha256(vm_instance.lower().encode()).hexdigest()[:8], 16) / 0x100000000
    return age >= recheck_after * (1 - share / 2)


def decide(row: Mapping[str, Any] | None, vm_instance: str, backup_policy: str | None, vault_id: str, inputs: str,
           now: datetime, retry_after: timedelta, recheck_after: timedelta) -> str:
    """The sweep's decision for one fleet VM: ``protected`` (recorded protected so, looked at within
    ``recheck_after``, spread by VM: ``recheck_due``), ``held`` (its last job could not enrol it with these very inputs, within ``retry_after``:
    its failure is already poisoned, alerted and on the compliance report) or ``send``. A recorded-protected row
    older than ``recheck_after`` is sent again: protection stopped outside vmkeeper is found (the job reads
    backupStatus first and writes nothing while the VM is protected). Any doubt (no row, no time) sends."""
    if not row:
        return "send"
    age = _age(row, now)
    if backup_policy and vault_id and recorded_protected(row, vm_instance, backup_policy, vault_id):
        fresh = age is not None and age >= timedelta(0) and not recheck_due(age, recheck_after, vm_instance)
        return "protected" if fresh else "send"
    if row.get("outcome") in HELD and age is not None and timedelta(0) <= age < retry_after:
        try:
            detail = json.loads(row.get("detail") or "")
        except (TypeError, ValueError):
            return "send"
        if isinstance(detail, dict) and detail.get("inputs") == inputs:
            return "held"
    return "send"
