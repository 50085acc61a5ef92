"""Tag names vmkeeper reads on VMs and writes on the artifacts it makes.

One place for them, so the planner, the workers and retention agree on what "ours" means.
"""

# On VMs (operators set these).
POLICY = "vmkeeper-policy"  # names a vmkeeper policy, e.g. "gold"
OPT_OUT = "vmkeeper-optout"  # "true" leaves the VM alone
DRILL = "vmkeeper-drill"  # "true": DR drills for this VM (its policy's drill block), when the policy doesn't drill all
DR = "vmkeeper-dr"  # "critical": Site Recovery replicates the VM (its policy's replication block), when the policy doesn't replicate all
DR_CRITICAL = "critical"
FLEET = "vmkeeper-fleet"  # "true" on a VM a restore or a drill made: the operator makes it a fleet member (shared/membership.py)
APP = "vmkeeper-app"  # the application a replicated VM belongs to, e.g. "billing": one recovery plan per application
APP_GROUP = "vmkeeper-app-group"  # its boot group in that plan: 1..n, booted in that order (absent: 1)

# On artifacts (vmkeeper sets these; retention trusts nothing without MANAGED_BY).
MANAGED_BY = "managed-by"
MANAGED_BY_VALUE = "vmkeeper"
VM = "vmkeeper-vm"  # the source VM's resource id, lower case
VM_INSTANCE = "vmkeeper-vm-instance"  # the source VM's vmId: one per instance (a VM created again keeps its id)
ARTIFACT_POLICY = "vmkeeper-policy"  # the policy that made the artifact
SLOT = "vmkeeper-slot"  # the schedule slot, ISO 8601 UTC, e.g. 2026-11-25T06:00:00Z
SET = "vmkeeper-set"  # shared by every disk snapshot of one run of one VM
SET_SIZE = "vmkeeper-set-size"  # on every snapshot of a set and its copies: how many disks the set has, e.g. "3"
LUN = "vmkeeper-lun"  # on a disk's snapshot: the disk's LUN ("None" for the OS disk); one member of its set
COPY_OF = "vmkeeper-copy-of"  # on a cross-region copy: the id of the snapshot it copies (its last 256 chars)
EXPIRES = "vmkeeper-expires"  # ISO 8601 UTC instant after which retention may delete it
HOLD = "vmkeeper-hold"  # present, with any value (empty too): never delete (legal hold, investigation...)
EXPIRING = "vmkeeper-expiring"  # set by retention's first pass: ISO 8601 UTC instant of planned deletion
LOCK_UNTIL = "vmkeeper-lock-until"  # ISO 8601 UTC instant until which vmkeeper's CanNotDelete lock stands
OWN_LOCK = "vmkeeper-lock"  # the name of that lock: retention lifts only locks so named, once LOCK_UNTIL has passed
RESTORE = "vmkeeper-restore"  # on what a restore creates: the restore's id (a re-run adopts only its own)
DRILL_ID = "vmkeeper-drill-id"  # on a drill's isolated resource group: the drill's id (teardown deletes only such groups)
REPLACED_BY_RESTORE = "vmkeeper-replaced-by-restore"  # on an OS disk a restore swapped out (kept): the restore's id
RESTORE_EXPIRES = "vmkeeper-restore-expires"  # on what a file recovery or export makes: when it is detached and deleted

# The one set of words for yes and no, in tags (opt-out) and settings alike, compared lower case.
TRUE_VALUES = frozenset({"true", "yes", "1", "on"})
FALSE_VALUES = frozenset({"false", "no", "0", "off"})


def is_managed(tags: dict[str, str] | None) -> bool:
    return (tags or {}).get(MANAGED_BY, "").strip().lower() == MANAGED_BY_VALUE
