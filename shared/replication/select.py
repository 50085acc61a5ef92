"""Which VMs Site Recovery replicates, and where to: pure.

A VM is replicated when it is a fleet member (shared/membership.py: not a VM a restore, a drill or a test
failover made), has not opted out (``vmkeeper-optout``), its vmkeeper policy (its ``vmkeeper-policy`` tag or
the document's default, as for every other capability) has a ``replication`` block, and that block
replicates all its VMs or the VM is tagged ``vmkeeper-dr: critical``. A VM already in the target region is
not (a failed-over or test VM is there; A2A replicates to another region); a VM in a region the block has no
cache account for can't be, and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .. import tags as T
from ..membership import not_member_reason
from ..policy.document import PolicySet, ReplicationSpec
from . import names

# Outcomes of a VM left out, as recorded: the first few are choices (nothing to report), the last are
# mistakes in the tags or the document that leave a VM the operator marked critical unreplicated (reported).
SKIPS = ("not_fleet", "opted_out", "no_policy", "not_selected", "in_target_region")
MISTAKES = ("bad_tag", "no_replication_block", "no_cache_account")


@dataclass(frozen=True)
class Selection:
    spec: ReplicationSpec | None  # the block that applies; None: the VM is not replicated
    reason: str
    policy: str | None = None  # the vmkeeper policy, as the document writes it
    skip: str | None = None  # why not (SKIPS or MISTAKES)
    cache_account: str | None = None  # the VM's region's cache account


def _by_name(tags: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in sorted((tags or {}).items(), key=lambda kv: str(kv[0])):
        out.setdefault(str(name).lower(), "" if value is None else str(value))
    return out


def critical(tags: Mapping[str, str] | None) -> bool:
    """Tagged ``vmkeeper-dr: critical`` (names and values in any case)."""
    return _by_name(tags).get(T.DR, "").strip().lower() == T.DR_CRITICAL


def decide(tags: Mapping[str, str] | None, location: str, policies: PolicySet, vm_id: str | None = None,
           test_failover_vms: Mapping[str, str] | None = None) -> Selection:
    """``test_failover_vms``: shared/membership.py's, by VM id (a VM after a real failover is production: it is
    in the target region, so its own replication is the item's reprotect, not a new item)."""
    outside = not_member_reason(tags, vm_id, test_failover_vms)
    if outside:
        return Selection(None, outside, skip="not_fleet")
    resolution = policies.for_vm(tags)
    if resolution.error:
        return Selection(None, resolution.error, skip="bad_tag")
    if resolution.policy is None:
        return Selection(None, resolution.reason, skip="opted_out" if resolution.opted_out else "no_policy")
    policy, tagged = resolution.policy, critical(tags)
    spec = policy.replication
    if spec is None:
        if tagged:  # the operator marked it critical: a VM they think replicated is not
            return Selection(None, f"tagged '{T.DR}: {T.DR_CRITICAL}', but its policy '{policy.name}' "
                                   f"({resolution.reason}) has no replication block", policy.name,
                             skip="no_replication_block")
        return Selection(None, f"policy '{policy.name}' does not replicate", policy.name, skip="not_selected")
    if not spec.all_vms and not tagged:
        return Selection(None, f"policy '{policy.name}' replicates only VMs tagged '{T.DR}: {T.DR_CRITICAL}'",
                         policy.name, skip="not_selected")
    region = names.region(location)
    if region == spec.target_region:
        return Selection(None, f"the VM is in the target region '{region}' of policy '{policy.name}' (a failed-over "
                               "or test VM, or one already there): nothing to replicate it to", policy.name,
                         skip="in_target_region")
    cache = spec.cache_account(region)
    if cache is None:
        known = ", ".join(r for r, _ in spec.cache_storage_accounts)
        return Selection(None, f"policies.{policy.name}.replication.cache_storage_accounts: no cache storage account "
                               f"for the VM's region '{region}' (has: {known})", policy.name, skip="no_cache_account")
    why = "all its VMs" if spec.all_vms and not tagged else f"tag '{T.DR}: {T.DR_CRITICAL}'"
    return Selection(spec, f"policy '{policy.name}' ({resolution.reason}), {why}", policy.name, cache_account=cache)
