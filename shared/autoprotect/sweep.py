"""The protect sweep's one decision, pure: does the ledger already record this VM instance protected as the
policy document wants it? Only then is the VM left out of the sweep; anything else — no row, another outcome,
another instance (a VM deleted and created again under its name), another policy or vault, a row that can't be
read — sends a job, which reads Azure first and is create-only (an enrolled VM ends ``already_protected``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

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
