"""Retention: decide which vmkeeper artifacts to keep, mark for deletion, delete, or leave alone.

Pure: no I/O, no Azure SDK, no clock (``now`` is an argument). The caller lists artifacts, calls
:func:`decide`, and applies the decisions (or only prints them: a dry run is the caller's business).
(One process-wide effect, unobservable in the results: Python's cyclic garbage collector is paused while
:func:`decide` runs, and restored -- see ``_cyclic_gc_paused``.)

Actions
-------
* ``skip``   -- not ours, held or locked: reported, never touched (not even tags).
* ``keep``   -- retained; ``rule`` says why. Rule ``unmark`` means "retained, but it carries an
  EXPIRING tag from an earlier pass: remove that tag" (the reason names the retaining rule). This is how
  an operator stops a pending deletion: change the policy so the artifact is retained again.
* ``mark``   -- expired: write EXPIRING = ``delete_after`` (the planned deletion instant) on it. Every
  member of a set gets the same instant. A mark that is already in place is repeated unchanged.
* ``delete`` -- expired, and every member of its set carries an EXPIRING instant that is in the past
  (``now > delete_after``). ``unlock`` asks the caller to remove vmkeeper's own, expired lock first.

Rules (the contract; applied in this order)
-------------------------------------------
1. Gate, per artifact. Tag names are matched case-insensitively (Azure treats them so).
   a. no ``managed-by: vmkeeper`` tag, or ``owned`` False (its name is not the one vmkeeper gives it:
      shared/points/owned.py; tags can be copied by hand) -> skip ``not_owned``, and it is in no set;
   b. a HOLD tag, whatever its value -- empty included (Azure allows empty tag values; the tag's presence
      is the hold) -- on the artifact, or on the restore point collection holding a restore point
      -> skip ``hold``;
   c. ``locked`` -> skip ``locked``; unless ``lock_is_ours_and_expired`` is set *and* the LOCK_UNTIL tag
      parses and is not after ``now`` (then the artifact is judged normally; deletes carry ``unlock``).
2. Doubt, per artifact -> keep (nothing is deleted on doubt, and its tags are left as they are, so an
   EXPIRING instant already passed takes effect as soon as the doubt is resolved):
   ``unknown_policy`` (no policy tag, or a name not in ``policies``); ``bad_tag`` (SLOT, EXPIRES, EXPIRING
   or LOCK_UNTIL present but not an ISO 8601 instant with a UTC offset; no VM id; a snapshot without a
   set id; a snapshot's SET_SIZE present but not a positive decimal integer; members of one set naming
   different VMs, VM instances, policies or SET_SIZEs (one without it among members with it counts as
   different), or more distinct members than their SET_SIZE).
3. Sets. Snapshots sharing (set id, region, is_copy) form a set; each restore point (and each collection)
   is a set of its own. A set is kept or deleted WHOLE: if any member is skipped or kept by rule 1-2,
   members that would otherwise be marked or deleted are kept with rule ``set_member_kept``.
   A set's time is its newest member's ``created``. A snapshot set is *complete* unless its members carry
   SET_SIZE (``vmkeeper-set-size``: the number of disks of the run, a decimal string such as ``"3"``,
   written on every snapshot of the set and on its copies) and fewer distinct members than that are
   present in the set (its region and copy lineage: a copy set counts its copies only). Members are told
   apart by disk: a source snapshot's LUN tag (``vmkeeper-lun``), else a copy's COPY_OF tag
   (``vmkeeper-copy-of``), else its id -- two snapshots of one disk count once. A set without SET_SIZE
   (made before it existed) is complete as far as anyone can know; restore points are always complete.
   A set whose later disks failed to be created, whose copy stopped half-way, or whose disks were
   deleted is *incomplete*. A set is good only if it is complete and every member is good.
4. Lineages. Sets whose members all pass rule 2 (held/locked ones included) are ranked per lineage
   (VM id, VM instance, kind, region, is_copy), newest first: a VM's snapshot sets and its restore points
   are separate lineages (a policy may take both), and copies in another region are lineages of their own,
   so each kind and each copy region has its own newest good point. So is each instance of a VM: a VM
   deleted and created again under its name keeps its ARM id, not its ``vmId``, and the old instance's
   last good point is what an operator needs, however many newer points the new one has. A set's instance
   is its members' INSTANCE tag (``vmkeeper-vm-instance``; a restore point's is ``instance``: its source
   metadata's vmId). A set made before vmkeeper wrote it: if ``instances`` says when the VM's current
   instance was created, a set made since is that instance's, one made before an *earlier instance's*
   (one lineage for all such sets); if not, the set is in a lineage of its own, *instance not recorded*,
   judged as the current instance's (rule 5: kept, not merged, on doubt). Each set is judged by its own
   policy against the whole lineage; the first matching rule wins:
   a. ``no_rule``: the policy has every keep_* count 0 and no max_age -> keep everything.
   b. ``newest_good``: the lineage's newest good set, while its VM is protected (rule 5).
   c. ``orphan_grace``: a set newer than the newest good one (or any set, if none is good) of a gone VM
      that is still within its grace (rule 5).
   d. ``in_progress``: a set that is not good and younger than ``orphan_grace`` (it may still complete).
   e. ``incomplete_no_newer_complete``: an incomplete set (rule 3) while its VM is protected (rule 5) and
      no newer good set exists in its lineage: the partial data is the best there is, so it is not
      cleaned up (not even past max_age) before a complete set replaces it. (For a gone VM within grace
      rule 4c already keeps it; once that grace is over, its sets go by rules 4d, 4f-i alone -- the
      newest good set too, so an incomplete one is not kept for longer than a complete one would be.)
   f. ``keep_last``: among the ``keep_last`` newest good sets.
   g. ``keep_daily`` / ``keep_weekly`` / ``keep_monthly`` / ``keep_yearly``: the newest good set of each
      of the newest N days / ISO weeks / months / years that hold a good set (buckets without a set
      are not counted, as in restic/borg ``forget``), counted in the policy's time zone (its schedule's:
      a ``daily_at 01:30`` Europe/Berlin set belongs to its Berlin day, whatever UTC day it falls on).
   h. ``expires_not_reached``: a member's EXPIRES instant is still in the future (EXPIRES is a floor).
   i. ``max_age_not_reached``: the policy has max_age and the set is younger.
   Otherwise the set is expired: rule ``max_age`` (older than max_age) or ``not_selected``.
   Not good (a failed member, or incomplete) means never the newest good set and never selected by 4f-g.
5. VM protection. A live VM (in ``live_vm_ids``) is always protected. A gone VM is protected until
   ``since + grace``, where ``since`` is the later of ``vm_last_seen[vm]`` and the newest ``created`` of
   any artifact of that VM (so unknown = gone since its newest artifact), and ``grace`` is the longest
   ``orphan_grace`` among the policies of the sets rule 4b-c protect and of its collections. After that
   its sets are judged by rules 4d and 4f-i alone (keep_* rules still apply to a gone VM's sets).
   Instances: every lineage of a gone VM is judged by the VM's protection. Of a live VM, the lineages of
   its current instance (``instances[vm]``), of *instance not recorded*, and all of them while its current
   instance is not known, are a live VM's; any other instance's is a gone VM's, gone since the later of its
   newest set and the current instance's creation, its grace the longest ``orphan_grace`` among the sets
   rule 4b-c protect in that instance's lineages.
6. Restore point collections (after everything else). Its restore points are the artifacts whose id
   starts with ``{collection id}/restorePoints/``; any not decided ``delete`` in this run keep it
   (``collection_not_empty``). An empty collection is kept with ``no_rule`` as in 4a, ``orphan_grace``
   while a gone VM is protected, ``in_progress`` while a live VM's collection is younger than
   ``orphan_grace`` (a worker may be about to add a point), ``expires_not_reached`` as in 4h;
   otherwise it expires with rule ``empty_collection`` and is marked, then deleted.
7. Pins (shared/points/pins.py): a set that would be marked or deleted, one of whose members is pinned
   (a copy of it in flight, its scheduled job still running, a restore or drill pending or running from
   it), is kept whole with rule ``pinned`` and the pin's reason -- an EXPIRING mark already on it is left
   as it is (neither written nor removed), so it goes once the pin ends, and not before. A pin past its
   bound (``until`` not after ``now``) pins nothing (a copy in flight is pinned afresh by every pass's listing).
7b. Immutability: a set that would be marked or deleted, one of whose members carries an immutability policy
   that has not expired (``immutable_until``, its ``policyExpirationTime``, after ``now``; Unlocked or Locked:
   Azure refuses the delete either way), is never deleted: a member without a mark is marked now (rule 8), its
   ``delete_after`` no sooner than the policy's expiry, so the set goes at the first pass after it; a set whose
   members all carry a mark is kept whole with rule ``immutable``, the marks left as they are. Once the policy has
   expired it is judged as any other set (rule 8): its marks have passed, and it is deleted.
8. Deferral. An expired set is marked first: ``delete_after`` is the latest of its members' EXPIRING
   instants, or ``now + deferral`` (rounded up to a second) for a member without one. It is deleted only
   once ``now > delete_after``.

Idempotence: after the caller applies a run (deletes gone, marks written, unmarks removed), running again
with the same ``now`` deletes nothing and marks nothing new: removing unselected sets never unselects
another set, an incomplete set that rule 4e lets go has a newer good set that rule 4b keeps, and the
instants of rule 5 cannot move while the sets they protect are kept (nor can an instance's creation).
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import tags as T
from ..instants import format_instant, parse_instant
from ..points.pins import Pin, PinIndex
from ..policy.retention import RetentionPolicy

__all__ = ["ACTIONS", "COLLECTION", "KINDS", "RESTORE_POINT", "SNAPSHOT", "Artifact", "Decision", "Instance",
           "RetentionPolicy", "decide", "format_instant", "parse_instant", "plan_summary"]  # RetentionPolicy: the rules it applies

SNAPSHOT = "snapshot"
RESTORE_POINT = "restore_point"
COLLECTION = "restore_point_collection"
KINDS = (SNAPSHOT, RESTORE_POINT, COLLECTION)
ACTIONS = ("keep", "mark", "delete", "skip")

_DATE_TAGS = (T.SLOT, T.EXPIRES, T.EXPIRING, T.LOCK_UNTIL)
_RP_INFIX = "/restorepoints/"
_LINEAGE_NAMES = {SNAPSHOT: "snapshot sets", RESTORE_POINT: "restore points"}
# A set's instance when it does not say it (made before vmkeeper wrote INSTANCE): not known, or known to be
# an instance before the current one (made before the current one was created). Neither is a vmId.
UNRECORDED, EARLIER = "", "(earlier)"
_ABSENT = object()  # a tag that is not there (None could be a value)
_KNOWN_TAGS = frozenset(
    name.lower()
    for name in (T.MANAGED_BY, T.VM, T.VM_INSTANCE, T.ARTIFACT_POLICY, T.SLOT, T.SET, T.SET_SIZE, T.LUN, T.COPY_OF)
    + (T.EXPIRES, T.HOLD, T.EXPIRING, T.LOCK_UNTIL, T.POLICY, T.OPT_OUT)
)

# Calendar buckets for the GFS rules, of a set's time in its policy's time zone.
_BUCKETS = {
    "keep_daily": lambda t: t.date(),
    "keep_weekly": lambda t: t.isocalendar()[:2],
    "keep_monthly": lambda t: (t.year, t.month),
    "keep_yearly": lambda t: t.year,
}


# ---------------------------------------------------------------------------------------------- API types


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """One backup artifact as listed by the caller.

    ``vm_id``, ``instance`` and ``set_id`` default to the VM, INSTANCE and SET tags. ``good`` has no default
    on purpose: guessing it wrong either protects an unfinished copy as "the newest good point" or fails to
    protect a good one.
    """

    id: str  # ARM resource id
    kind: str  # one of KINDS
    tags: Mapping[str, str]
    created: datetime  # timezone-aware
    region: str
    good: bool  # provisioning succeeded / copy completed
    vm_id: str | None = None  # source VM id (compared lower case)
    instance: str | None = None  # the source VM's instance, its vmId (compared lower case); default: the INSTANCE tag
    set_id: str | None = None  # snapshots of one run of one VM share it
    is_copy: bool = False  # a cross-region copy
    locked: bool = False  # under any resource lock, at any scope
    lock_is_ours_and_expired: bool = False  # every lock on it is vmkeeper's own and LOCK_UNTIL has passed
    owned: bool = True  # False: its name is not vmkeeper's for it (copied tags): never judged, in no set
    immutable_until: datetime | None = None  # its immutability policy's policyExpirationTime (rule 7b); None: none


@dataclass(frozen=True)
class Instance:
    """A live VM's current instance: its ``vmId`` (properties.vmId) and when it was created
    (properties.timeCreated; None: not known)."""

    id: str
    created: datetime | None = None


@dataclass(frozen=True)
class Decision:
    artifact_id: str
    action: str  # one of ACTIONS
    rule: str
    reason: str
    delete_after: datetime | None = None  # mark: the instant to write; delete: the instant passed; pinned: the mark kept
    unlock: bool = False  # delete: remove vmkeeper's own expired lock first


# ------------------------------------------------------------------------------------------------ helpers


def plan_summary(decisions: Iterable[Decision]) -> dict[str, dict[str, int]]:
    """Counts per action, then per rule: {"keep": {"keep_daily": 3, ...}, "mark": {...}, ...}."""
    counts: dict[str, dict[str, int]] = {action: {} for action in ACTIONS}
    for decision in decisions:
        per_rule = counts.setdefault(decision.action, {})
        per_rule[decision.rule] = per_rule.get(decision.rule, 0) + 1
    return {action: dict(sorted(per_rule.items())) for action, per_rule in counts.items()}


def _utc(when: datetime, what: str) -> datetime:
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ValueError(f"{what}: must be a timezone-aware datetime")
    return when.astimezone(UTC)


def _ceil_second(when: datetime) -> datetime:
    # Whole seconds make tidy tags; rounding up keeps "marked now" from ever being "due now".
    return when if not when.microsecond else when.replace(microsecond=0) + timedelta(seconds=1)


def _short(resource_id: str | None) -> str:
    return (resource_id or "?").rstrip("/").rsplit("/", 1)[-1]


# ------------------------------------------------------------------------------------------ internal model
#
# Written for speed (100,000 artifacts well under a second; `python -m bench retention`): one pass over each
# artifact's tags (lower-cased only when a name is not already), instants parsed once per distinct tag value,
# per-artifact facts in a few parallel lists and each set a plain tuple rather than an object each (less to
# build), reason texts built once per lineage or policy where they can be, and the cyclic garbage collector
# paused meanwhile (see _cyclic_gc_paused). tests/unit/test_retention.py holds the rules' examples.


@dataclass(slots=True, eq=False)
class _Table:
    """Rules 1-2's reading of every artifact, by index (parallel lists)."""

    arts: Sequence[Artifact]
    lids: list[str]  # ids, lower case
    created: list[datetime]
    vm: list[str | None]
    set_id: list[str | None]
    policy_name: list[str | None]
    expiring: list[datetime | None]
    expires: list[datetime | None]
    unlock: list[bool]
    judgeable: list[bool]  # passes rule 2 (holds and locks aside)
    forced: list[Decision | None]  # the rule 1-2 decision, if any
    set_size: dict[int, int | None]  # snapshots with a SET_SIZE tag (None: malformed)
    disk: dict[int, tuple[str, str]]  # what tells such a snapshot apart from the other members of its set
    texts: dict[tuple, Any] = field(default_factory=dict)  # reason texts (and instants) many sets share
    pins: PinIndex | None = None  # rule 7 (None: nothing pinned)
    instance: list[str] = field(default_factory=list)  # the INSTANCE each says, lower case ("": none)
    current: dict[str, tuple[str, datetime | None]] = field(default_factory=dict)  # live VM -> (vmId, created)
    groups: dict[tuple, list[int]] = field(default_factory=dict)  # (set id, region, is_copy) -> snapshots
    singles: list[int] = field(default_factory=list)  # restore points, and snapshots without a set id


# A candidate set (rule 3), as a tuple: it sorts by time, then key (unique in its lineage).
#   (time, key, members, good, policy name, expires, SET_SIZE or None, distinct members present)
# key: ("set", set id, region, is_copy) for a snapshot set, ("one", lower-case id) for a restore point.
_SetRow = tuple[datetime, tuple, tuple[int, ...], bool, str, "datetime | None", "int | None", int]
_TIME, _KEY, _MEMBERS, _GOOD, _POLICY = range(5)


@dataclass(slots=True, eq=False)
class _Lineage:
    vm: str
    instance: str  # the VM instance (vmId), or UNRECORDED or EARLIER
    where: str  # e.g. "snapshot sets of vm1 (instance 5d1a...) in westeurope (copies)", for reasons
    sets: list[_SetRow] = field(default_factory=list)  # newest first, once sorted
    newest_good: int | None = None  # index into sets
    state: _VmState | None = None  # rule 5, once known


@dataclass(slots=True)
class _VmState:
    live: bool
    protected: bool
    since: datetime | None = None
    until: datetime | None = None
    what: str = "VM"  # what is gone: the VM, or one instance of a VM that lives on as another


# ------------------------------------------------------------------------------------------------- decide


def decide(
    artifacts: Sequence[Artifact],
    policies: Mapping[str, RetentionPolicy],
    live_vm_ids: Collection[str],
    now: datetime,
    vm_last_seen: Mapping[str, datetime] | None = None,
    pins: Iterable[Pin] = (),
    instances: Mapping[str, Instance] | None = None,
) -> list[Decision]:
    """One Decision per artifact, in input order. See the module docstring for the rules.

    ``live_vm_ids``: ids of the VMs that exist now (any case). ``vm_last_seen``: when each gone VM was
    last seen, if the caller keeps track; missing entries fall back to the VM's newest artifact.
    ``pins``: what is in use (rule 7), as shared/points/pins.py gives them. ``instances``: each live VM's
    current instance (VM id, any case -> Instance), where known (rules 4-5).
    Raises ValueError for naive datetimes, unknown kinds and duplicate ids (a caller bug: decide nothing).
    """
    now = _utc(now, "now")
    live = {vm.lower() for vm in live_vm_ids}
    last_seen = {vm.lower(): _utc(when, f"vm_last_seen[{vm}]") for vm, when in (vm_last_seen or {}).items()}
    current = {
        vm.lower(): (inst.id.strip().lower(), None if inst.created is None else _utc(inst.created, f"instances[{vm}]"))
        for vm, inst in (instances or {}).items()
        if vm.lower() in live and isinstance(inst.id, str) and inst.id.strip()
    }
    index = PinIndex(pins, now)
    with _cyclic_gc_paused():
        return _decide(artifacts, policies, live, now, last_seen, index or None, current)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while deciding, as Mercurial's ``util.nogc`` does for bulk
    work. ``decide`` makes a few objects per artifact and no reference cycle (reference counting frees
    all it drops), but every ~70,000 new objects the collector would walk the caller's whole heap -- most
    of the time spent on 100,000 artifacts, and what made that time grow faster than their number. Only
    collection is deferred (nothing observable changes); the previous setting is restored on the way out,
    and if it was already off (another thread deciding, or the caller's choice) it is left alone."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _decide(
    artifacts: Sequence[Artifact],
    policies: Mapping[str, RetentionPolicy],
    live: set[str],
    now: datetime,
    last_seen: dict[str, datetime],
    pins: PinIndex | None = None,
    current: dict[str, tuple[str, datetime | None]] | None = None,
) -> list[Decision]:
    t = _examine(artifacts, policies, now)
    t.pins, t.current = pins, current or {}
    lineages, loose = _group_sets(t)
    collections = [i for i, a in enumerate(artifacts) if a.kind == COLLECTION]
    vms = _vm_states(t, lineages, collections, policies, live, last_seen, now)
    _instance_states(lineages, vms, t.current, policies, now)

    decided: list[Decision | None] = [None] * len(artifacts)
    has_rules = {name: policy.has_rules for name, policy in policies.items()}
    for lin in lineages:
        _decide_lineage(lin, lin.state, policies, has_rules, now, decided, t)
    for key, members in loose:  # sets that are no candidate: some member is kept by rule 1-2
        _apply(key, members, True, "", "", None, now, decided, t)
    if collections:
        children = _collection_children(t)
        for i in collections:
            decided[i] = _decide_collection(i, children.get(t.lids[i], ()), decided, vms, policies, now, t)
    return decided  # type: ignore[return-value]  # every slot is filled


def _check_ids(artifacts: Sequence[Artifact]) -> list[str]:
    """The ids, lower case; raises on an unknown kind or an id listed twice."""
    lids = [a.id.lower() for a in artifacts]
    if len(set(lids)) != len(lids) or not {a.kind for a in artifacts} <= set(KINDS):
        seen: set[str] = set()
        for a, lid in zip(artifacts, lids, strict=True):
            if a.kind not in KINDS:
                raise ValueError(f"{a.id}: unknown kind {a.kind!r} (expected one of {', '.join(KINDS)})")
            if lid in seen:
                raise ValueError(f"{a.id}: listed twice")
            seen.add(lid)
    return lids


def _lower_keys(tags: Mapping[str, str] | None) -> Mapping[str, str]:
    """The tags with their names in lower case (Azure's names are case-insensitive); as they are if they
    already are (vmkeeper writes them so: the common case, and read-only here)."""
    if not tags:
        return {}
    if _KNOWN_TAGS.issuperset(tags):  # only names vmkeeper writes: the common case, and the cheapest test
        return tags
    try:
        if "".join(tags).islower():  # no upper case letter in any name (and some letter)
            return tags
    except TypeError:  # a name that is not a string
        pass
    return {str(k).lower(): v for k, v in tags.items()}


def _parent_collection(lowered_id: str) -> str | None:
    return lowered_id.rsplit(_RP_INFIX, 1)[0] if _RP_INFIX in lowered_id else None


def _examine(artifacts: Sequence[Artifact], policies: Mapping[str, RetentionPolicy], now: datetime) -> _Table:
    """Read every artifact's tags once and apply rules 1-2 (one loop: this is the hot path)."""
    lids = _check_ids(artifacts)
    all_tags = [_lower_keys(a.tags) for a in artifacts]
    held = {
        lid
        for a, lid, tags in zip(artifacts, lids, all_tags, strict=True)
        if a.kind == COLLECTION and T.HOLD in tags
    }
    n = len(artifacts)
    t = _Table(artifacts, lids, [], [], [], [], [None] * n, [None] * n, [False] * n, [], [None] * n, {}, {})
    add_created, add_vm, add_set_id = t.created.append, t.vm.append, t.set_id.append
    add_policy, add_judgeable = t.policy_name.append, t.judgeable.append
    expiring, expires, unlocks, forced_list, set_sizes = t.expiring, t.expires, t.unlock, t.forced, t.set_size
    managed_by, managed_value, hold, vm_tag, set_tag = T.MANAGED_BY, T.MANAGED_BY_VALUE, T.HOLD, T.VM, T.SET
    policy_tag, slot_tag, expires_tag, expiring_tag, lock_tag = (
        T.ARTIFACT_POLICY,
        T.SLOT,
        T.EXPIRES,
        T.EXPIRING,
        T.LOCK_UNTIL,
    )
    size_tag, lun_tag, absent, disks = T.SET_SIZE, T.LUN, _ABSENT, t.disk
    instance_tag, add_instance = T.VM_INSTANCE, t.instance.append
    groups, add_single = t.groups, t.singles.append
    instants: dict[
        str, datetime | None
    ] = {}  # per tag value: a slot, a mark, a lock date is on many artifacts

    def instant(value: Any) -> datetime | None:
        try:
            return instants[value]
        except (KeyError, TypeError):  # TypeError: not a string (nor hashable), which parse_instant refuses
            when = parse_instant(value)
            if type(value) is str:
                instants[value] = when
            return when

    for i, (art, lid, tags) in enumerate(zip(artifacts, lids, all_tags, strict=True)):
        kind, get = art.kind, tags.get
        created = art.created
        if type(created) is not datetime or created.tzinfo is not UTC:  # (the message only when needed)
            created = _utc(created, f"{art.id}: created")
        add_created(created)
        vm = art.vm_id or get(vm_tag)
        vm = (vm.strip().lower() or None) if vm else None
        add_vm(vm)
        instance = art.instance if art.instance is not None else get(instance_tag)
        add_instance(instance.strip().lower() if type(instance) is str else UNRECORDED)
        owned = art.owned
        set_id = (art.set_id or get(set_tag)) if owned else None
        set_id = (set_id.strip() or None) if set_id else None
        add_set_id(set_id)
        policy_name = get(policy_tag)
        policy_name = (policy_name.strip() or None) if policy_name else None
        add_policy(policy_name)

        bad_dates = False
        if (value := get(slot_tag, absent)) is not absent and instant(value) is None:
            bad_dates = True
        if (value := get(expires_tag, absent)) is not absent:
            if (when := instant(value)) is None:
                bad_dates = True
            expires[i] = when
        if (value := get(expiring_tag, absent)) is not absent:
            if (when := instant(value)) is None:
                bad_dates = True
            expiring[i] = when
        lock_until = None
        if (value := get(lock_tag, absent)) is not absent and (lock_until := instant(value)) is None:
            bad_dates = True
        unlock = art.locked and art.lock_is_ours_and_expired and lock_until is not None and lock_until <= now
        unlocks[i] = unlock

        managed = get(managed_by)
        managed = managed == managed_value or (
            type(managed) is str and managed.strip().lower() == managed_value
        )
        forced = None
        if not managed:
            forced = Decision(art.id, "skip", "not_owned", f"no {managed_by}: {managed_value} tag")
        elif not owned:
            managed = False
            forced = Decision(art.id, "skip", "not_owned", "its name is not the one vmkeeper gives it (tags copied?)")
        elif hold in tags:
            forced = Decision(art.id, "skip", "hold", f"{hold} = {tags[hold]!r}")
        elif held and kind == RESTORE_POINT and _parent_collection(lid) in held:
            forced = Decision(art.id, "skip", "hold", "its restore point collection is held")
        elif art.locked and not unlock:
            forced = Decision(art.id, "skip", "locked", "under a resource lock")

        doubt = None
        if bad_dates:
            bad = ", ".join(
                name for name in sorted(_DATE_TAGS) if name in tags and instant(tags[name]) is None
            )
            doubt = ("bad_tag", f"not an ISO 8601 UTC instant: {bad}")
        elif policy_name is None:
            doubt = ("unknown_policy", f"no {policy_tag} tag")
        elif policy_name not in policies:
            doubt = ("unknown_policy", f"policy {policy_name!r} is not configured")
        elif vm is None:
            doubt = ("bad_tag", f"no {vm_tag} tag")
        elif kind == SNAPSHOT and set_id is None:
            doubt = ("bad_tag", f"no {set_tag} tag")
        if kind == SNAPSHOT and (value := get(size_tag, absent)) is not absent:
            if type(value) is str and value.isdigit() and value.isascii() and value[0] != "0":
                size = set_sizes[i] = int(value)  # the common case, in short
            else:
                size = set_sizes[i] = _parse_size(value)
            lun = get(lun_tag)
            if type(lun) is str and (lun := lun.strip().lower()):
                disks[i] = (lun_tag, lun)  # the common case, in short
            else:
                disks[i] = _disk(lid, tags)
            if size is None and doubt is None:
                doubt = ("bad_tag", f"{size_tag} = {value!r}: not a number of disks")
        add_judgeable(managed and doubt is None)
        if doubt is not None and forced is None:
            forced = Decision(art.id, "keep", *doubt)
        if forced is not None:
            forced_list[i] = forced
        # Rule 3's sets, while the artifact is at hand.
        if kind == SNAPSHOT and set_id is not None:
            key = (set_id, art.region.lower(), art.is_copy)
            members = groups.get(key)
            if members is None:
                groups[key] = [i]
            else:
                members.append(i)
        elif kind != COLLECTION:
            add_single(i)
    return t


def _parse_size(value: Any) -> int | None:
    text = value.strip() if isinstance(value, str) else ""
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None


def _disk(lid: str, tags: Mapping[str, str]) -> tuple[str, str]:
    for name in (T.LUN, T.COPY_OF):
        value = tags.get(name)
        value = value.strip().lower() if isinstance(value, str) else ""
        if value:
            return (name, value)
    return ("id", lid)


def _group_sets(t: _Table) -> tuple[list[_Lineage], list[tuple[tuple, tuple[int, ...]]]]:
    """Rule 3's sets: snapshots by (set id, region, is_copy); any other snapshot or restore point alone.
    The candidates go to their lineages (rule 4), sorted newest first; the others are returned apart."""
    lineages: dict[tuple, _Lineage] = {}
    loose: list[tuple[tuple, tuple[int, ...]]] = []
    arts, created, judgeable, vms, names, expires = (
        t.arts,
        t.created,
        t.judgeable,
        t.vm,
        t.policy_name,
        t.expires,
    )
    for i in t.singles:
        art = arts[i]
        if judgeable[i]:  # a restore point: a set of one, so no disagreement, no SET_SIZE to count
            lineage = (vms[i], _instance_of(vms[i], t.instance[i], created[i], t), art.kind, art.region.lower(),
                       art.is_copy)
            row = (created[i], ("one", t.lids[i]), (i,), art.good, names[i], expires[i], None, 1)
            lin = lineages.get(lineage) or lineages.setdefault(lineage, _new_lineage(lineage))
            lin.sets.append(row)
        else:  # kept by rule 1-2 (a snapshot without a set id always is)
            loose.append((("one", t.lids[i]), (i,)))
    for key, members in t.groups.items():
        row, lineage = _make_set(("set", *key), tuple(members), t)
        if lineage is None:
            loose.append((row[_KEY], row[_MEMBERS]))
        else:
            lin = lineages.get(lineage) or lineages.setdefault(lineage, _new_lineage(lineage))
            lin.sets.append(row)
    for lin in lineages.values():
        lin.sets.sort(reverse=True)  # newest first; ties broken by key: deterministic
        lin.newest_good = next((pos for pos, row in enumerate(lin.sets) if row[_GOOD]), None)
    return list(lineages.values()), loose


def _new_lineage(lineage: tuple) -> _Lineage:
    vm, instance, kind, region, is_copy = lineage
    which = {UNRECORDED: "instance not recorded", EARLIER: "an earlier instance, not recorded"}.get(
        instance, f"instance {instance}")
    return _Lineage(vm, instance, f"{_LINEAGE_NAMES[kind]} of {_short(vm)} ({which}) in {region}"
                                  f"{' (copies)' if is_copy else ''}")


def _instance_of(vm: str, said: str, time: datetime, t: _Table) -> str:
    """A set's instance (rule 4): the one it says; else, if the VM's current instance and its creation are known,
    that instance for a set made since, EARLIER for one made before; else UNRECORDED."""
    if said:
        return said
    current = t.current.get(vm)
    if current is None or current[1] is None:
        return UNRECORDED
    return current[0] if time >= current[1] else EARLIER


def _make_set(key: tuple, members: tuple[int, ...], t: _Table) -> tuple[_SetRow, tuple | None]:
    """A snapshot set's row, and its lineage (None: no candidate, kept whole by rule 1-3)."""
    arts, created, judgeable, vms, names, set_sizes = (
        t.arts,
        t.created,
        t.judgeable,
        t.vm,
        t.policy_name,
        t.set_size,
    )
    first, instances = members[0], t.instance
    time, good, candidate = created[first], arts[first].good, judgeable[first]
    vm, name, size, instance = vms[first], names[first], set_sizes.get(first), instances[first]
    other_vm = other_name = other_size = other_instance = False
    for m in members[1:]:
        if created[m] > time:
            time = created[m]
        good = good and arts[m].good
        candidate = candidate and judgeable[m]
        other_vm = other_vm or vms[m] != vm
        other_instance = other_instance or instances[m] != instance
        other_name = other_name or names[m] != name
        other_size = other_size or set_sizes.get(m) != size
    present, corrupt = len(members), None
    if other_vm or other_instance or other_name or other_size:
        what = ("VMs" if other_vm else "VM instances" if other_instance else "policies" if other_name
                else f"{T.SET_SIZE}s")
        corrupt = f"members of set {key[1]} name different {what}"
    elif size is not None:
        present = len({t.disk[m] for m in members})
        good = good and present >= size
        if present > size:
            corrupt = f"set {key[1]} has {present} disks, more than its {T.SET_SIZE} {size}"
    if candidate and corrupt:
        candidate = False  # a corrupt set: keep it all, on doubt
        for m in members:
            t.forced[m] = t.forced[m] or Decision(arts[m].id, "keep", "bad_tag", corrupt)
    if not candidate:
        return (time, key, members, good, name, None, size, present), None
    expires = max((t.expires[m] for m in members if t.expires[m]), default=None)
    art = arts[first]
    return (time, key, members, good, name, expires, size, present), (
        vm,
        _instance_of(vm, instance, time, t),
        art.kind,
        art.region.lower(),
        art.is_copy,
    )


def _orphan_protected(lin: _Lineage) -> list[_SetRow]:
    """The sets rule 4b-c protect while a gone VM is within grace: the newest good and anything newer."""
    return lin.sets if lin.newest_good is None else lin.sets[: lin.newest_good + 1]


def _vm_states(
    t: _Table,
    lineages: list[_Lineage],
    collections: list[int],
    policies: Mapping[str, RetentionPolicy],
    live: set[str],
    last_seen: dict[str, datetime],
    now: datetime,
) -> dict[str, _VmState]:
    newest: dict[str, datetime] = {}
    for vm, created in zip(t.vm, t.created, strict=True):
        if vm:
            seen = newest.get(vm)
            if seen is None or created > seen:
                newest[vm] = created
    # The longest grace among what the grace protects: those artifacts stay, so the grace cannot shrink
    # between two runs with the same `now`, and neither can `since` (its newest artifact stays too).
    graces: dict[str, list[timedelta]] = defaultdict(list)
    for lin in lineages:
        if lin.vm not in live:
            graces[lin.vm] += [policies[row[_POLICY]].orphan_grace for row in _orphan_protected(lin)]
    for i in collections:
        if t.judgeable[i] and t.vm[i] not in live:
            graces[t.vm[i]].append(policies[t.policy_name[i]].orphan_grace)
    states = {}
    live_state = _VmState(live=True, protected=True)
    for vm in newest.keys() | last_seen.keys():
        if vm in live:
            states[vm] = live_state
            continue
        since = max(when for when in (newest.get(vm), last_seen.get(vm)) if when is not None)
        until = since + max(graces.get(vm, []), default=timedelta(0))
        states[vm] = _VmState(live=False, protected=now < until, since=since, until=until)
    return states


def _instance_states(
    lineages: list[_Lineage],
    vms: dict[str, _VmState],
    current: dict[str, tuple[str, datetime | None]],
    policies: Mapping[str, RetentionPolicy],
    now: datetime,
) -> None:
    """Rule 5 per lineage: a gone VM's lineages share its state, as do a live VM's but for those of an instance
    that is not its current one (known): each such instance is a gone VM of its own."""
    replaced: dict[tuple[str, str], list[_Lineage]] = defaultdict(list)
    for lin in lineages:
        state, now_is = vms[lin.vm], current.get(lin.vm)
        if state.live and now_is is not None and lin.instance not in (now_is[0], UNRECORDED):
            replaced[(lin.vm, lin.instance)].append(lin)
        else:
            lin.state = state
    for (vm, instance), lins in replaced.items():
        # Gone since its newest set (kept while the grace runs, as rule 4b-c keeps it) or, later, since the
        # current instance was created (it had gone by then): neither moves while the sets it protects are kept.
        since = max(lin.sets[0][_TIME] for lin in lins)
        created = current[vm][1]
        if created is not None and created > since:
            since = created
        grace = max((policies[row[_POLICY]].orphan_grace for lin in lins for row in _orphan_protected(lin)),
                    default=timedelta(0))
        what = "an earlier instance" if instance == EARLIER else f"instance {instance}"
        state = _VmState(live=False, protected=now < since + grace, since=since, until=since + grace, what=what)
        for lin in lins:
            lin.state = state


def _chosen(sets: list[_SetRow], policy: RetentionPolicy) -> dict[int, str]:
    """The sets (by rank) of a lineage that `policy`'s keep_last and GFS rules select, with the first rule."""
    good = [pos for pos, row in enumerate(sets) if row[_GOOD]]
    chosen = {pos: "keep_last" for pos in good[: policy.keep_last]}
    zone = policy.tzinfo if any(getattr(policy, rule) for rule in _BUCKETS) else UTC
    local: dict[int, datetime] = {}  # a set's time in the policy's zone: its days are the slots' own
    for rule, bucket_of in _BUCKETS.items():
        left, last = getattr(policy, rule), None
        for pos in good:
            if left <= 0:
                break
            when = local.get(pos)
            if when is None:
                when = local[pos] = sets[pos][_TIME] if zone is UTC else sets[pos][_TIME].astimezone(zone)
            bucket = bucket_of(when)
            if bucket != last:  # newest first, so the first set seen in a bucket is its newest
                chosen.setdefault(pos, rule)
                left, last = left - 1, bucket
    return chosen


def _decide_lineage(
    lin: _Lineage,
    vm: _VmState,
    policies: Mapping[str, RetentionPolicy],
    has_rules: Mapping[str, bool],
    now: datetime,
    decided: list,
    t: _Table,
) -> None:
    """Rules 4-5 for each set of one lineage, then rules 3, 7 and 8 for its members."""
    newest_good, protected, where = lin.newest_good, vm.protected, lin.where
    forced, arts, expiring = t.forced, t.arts, t.expiring
    chosen: dict[str, dict[int, str]] = {}  # policy name -> rank -> rule
    reasons: dict[tuple, str] = {}  # texts shared by the sets of the lineage
    for pos, (time, key, members, good, name, expires, size, present) in enumerate(lin.sets):
        policy = policies[name]
        incomplete = size is not None and present < size
        if not has_rules[name]:
            keep, rule, reason = True, "no_rule", _text(t, "no_rule", policy, name)
        elif protected and pos == newest_good:
            keep, rule = True, "newest_good"
            reason = reasons.get(("newest_good",))
            if reason is None:
                why = (
                    "live VM"
                    if vm.live
                    else f"{vm.what} gone since {format_instant(vm.since)}, grace until {format_instant(vm.until)}"
                )
                reason = reasons[("newest_good",)] = f"newest good point of {where} ({why})"
        elif protected and not vm.live and (newest_good is None or pos < newest_good):
            keep, rule, reason = True, "orphan_grace", f"{vm.what} gone, grace until {format_instant(vm.until)}"
        elif not good and now - time < policy.orphan_grace:
            what = f"incomplete ({present} of {size} disks)" if incomplete else "not good yet"
            keep, rule, reason = (
                True,
                "in_progress",
                f"{what}, younger than orphan_grace {policy.orphan_grace}",
            )
        elif incomplete and protected and (newest_good is None or newest_good > pos):
            keep, rule = True, "incomplete_no_newer_complete"
            reason = f"{_label(key, members, t)} has {present} of {size} disks, and no newer complete set in {where}"
        else:
            selected = chosen.get(name)
            if selected is None:
                selected = chosen[name] = _chosen(lin.sets, policy)
            rule = selected.get(pos)
            if rule:
                keep = True
                reason = reasons.get((rule, name))
                if reason is None:
                    reason = reasons[(rule, name)] = f"{rule} = {getattr(policy, rule)} selects it in {where}"
            elif expires is not None and expires > now:
                keep, rule, reason = True, "expires_not_reached", f"{T.EXPIRES} {format_instant(expires)}"
            elif policy.max_age is None:
                keep, rule, reason = False, "not_selected", _text(t, "not_selected", policy, name)
            elif now - time < policy.max_age:
                keep, rule, reason = (
                    True,
                    "max_age_not_reached",
                    _text(t, "max_age_not_reached", policy, name),
                )
            else:
                keep, rule, reason = False, "max_age", _text(t, "max_age", policy, name)
        if not keep:
            _apply(key, members, keep, rule, reason, policy, now, decided, t)
            continue
        for m in members:  # kept (as in _apply, in short: this is the common case)
            if forced[m] is not None:
                decided[m] = forced[m]
            elif expiring[m] is not None:
                decided[m] = Decision(arts[m].id, "keep", "unmark", f"{rule}: {reason}; remove {T.EXPIRING}")
            else:
                decided[m] = Decision(arts[m].id, "keep", rule, reason)


_TEXTS = {
    "no_rule": "policy {name!r} has no keep rule and no max_age",
    "not_selected": "no keep rule of policy {name!r} selects it",
    "max_age_not_reached": "younger than max_age {policy.max_age}",
    "max_age": "older than max_age {policy.max_age}",
}


def _text(t: _Table, rule: str, policy: RetentionPolicy, name: str) -> str:
    """The reason for a rule that depends on the policy alone, written once per run."""
    text = t.texts.get((rule, name))
    if text is None:
        text = t.texts[(rule, name)] = _TEXTS[rule].format(name=name, policy=policy)
    return text


def _label(key: tuple, members: tuple[int, ...], t: _Table) -> str:
    return f"set {key[1]}" if key[0] == "set" else _short(t.arts[members[0]].id)


def _apply(
    key: tuple,
    members: tuple[int, ...],
    keep: bool,
    rule: str,
    reason: str,
    policy: RetentionPolicy | None,
    now: datetime,
    decided: list,
    t: _Table,
) -> None:
    """Rule 3: the set's fate applies to all its members, and any member kept by rule 1-2 keeps them all
    (``policy`` None: a set that is no candidate, which always has such a member). Rules 7-8 for the rest."""
    forced, arts, expiring = t.forced, t.arts, t.expiring
    if not keep or policy is None:
        why = next((m for m in members if forced[m] is not None), None)
        pin = _pinned(members, t) if why is None else None
        if pin is not None:  # rule 7: in use, so kept whole; a mark already there stays for when the pin ends
            reason = f"{_label(key, members, t)}: {pin.describe()}"
            for m in members:
                decided[m] = Decision(arts[m].id, "keep", "pinned", reason, delete_after=expiring[m])
            return
        until = _immutable_until(members, now, t) if why is None else None
        if until is not None:  # rule 7b: Azure refuses the delete until the policy expires
            if any(expiring[m] is None for m in members):  # marked now, to go at the first pass after it expires
                for m, decision in zip(members, _expire(members, rule, f"{reason}; immutable until "
                                                         f"{format_instant(until)}", policy.deferral, now, t,
                                                         not_before=_ceil_second(until)), strict=True):
                    decided[m] = decision
                return
            reason = f"{_label(key, members, t)}: immutable until {format_instant(until)}"
            for m in members:
                decided[m] = Decision(arts[m].id, "keep", "immutable", reason, delete_after=expiring[m])
            return
        if why is None:
            for m, decision in zip(
                members, _expire(members, rule, reason, policy.deferral, now, t), strict=True
            ):
                decided[m] = decision
            return
        if len(members) == 1:  # (it is the one kept)
            decided[why] = forced[why]
            return
        rule = "set_member_kept"
        reason = f"{_label(key, members, t)}: {_short(arts[why].id)} is kept ({forced[why].rule})"
    for m in members:
        if forced[m] is not None:
            decided[m] = forced[m]
        elif expiring[m] is not None:  # no longer expiring: the caller removes the mark
            decided[m] = Decision(arts[m].id, "keep", "unmark", f"{rule}: {reason}; remove {T.EXPIRING}")
        else:
            decided[m] = Decision(arts[m].id, "keep", rule, reason)


def _immutable_until(members: Sequence[int], now: datetime, t: _Table) -> datetime | None:
    """Rule 7b: the latest unexpired immutability policy's expiry among the set's members, or None."""
    until = None
    for m in members:
        when = t.arts[m].immutable_until
        if when is not None:
            when = _utc(when, f"{t.arts[m].id}: immutable_until")
            if when > now and (until is None or when > until):
                until = when
    return until


def _pinned(members: Sequence[int], t: _Table) -> Pin | None:
    """Rule 7: the pin on any member of the set (the first found), or None."""
    if t.pins is None:
        return None
    for m in members:
        pin = t.pins.find(t.lids[m], t.set_id[m] if t.arts[m].kind == SNAPSHOT else None)
        if pin is not None:
            return pin
    return None


def _expire(
    members: Sequence[int], rule: str, reason: str, deferral: timedelta, now: datetime, t: _Table,
    not_before: datetime | None = None,
) -> list[Decision]:
    """Rule 8: mark first; delete once every member's mark has passed. One instant for the whole set, never before
    ``not_before`` (an immutable set's policyExpirationTime: rule 7b)."""
    planned = t.texts.get(("planned", deferral))
    if planned is None:
        planned = t.texts[("planned", deferral)] = _ceil_second(now + deferral)
    when = max(t.expiring[m] or planned for m in members)
    when = max(when, not_before) if not_before is not None else when
    arts = t.arts
    if now > when:
        return [
            Decision(arts[m].id, "delete", rule, reason, delete_after=when, unlock=t.unlock[m])
            for m in members
        ]
    text = t.texts.get(("mark", reason, when))
    if text is None:
        text = t.texts[("mark", reason, when)] = f"{reason}; delete after {format_instant(when)}"
    reason = text
    return [Decision(arts[m].id, "mark", rule, reason, delete_after=when) for m in members]


def _collection_children(t: _Table) -> dict[str, list[int]]:
    children: dict[str, list[int]] = defaultdict(list)
    for i, (art, lid) in enumerate(zip(t.arts, t.lids, strict=True)):
        if _RP_INFIX in lid and art.kind != COLLECTION:
            children[lid.rsplit(_RP_INFIX, 1)[0]].append(i)
    return children


def _decide_collection(
    i: int,
    children: Sequence[int],
    decided: list,
    vms: dict[str, _VmState],
    policies: Mapping[str, RetentionPolicy],
    now: datetime,
    t: _Table,
) -> Decision:
    """Rule 6, after every restore point is decided."""
    if t.forced[i]:
        return t.forced[i]
    remaining = sum(decided[c].action != "delete" for c in children)
    name = t.policy_name[i]
    policy, vm, expires = policies[name], vms[t.vm[i]], t.expires[i]
    if remaining:
        keep, rule, reason = True, "collection_not_empty", f"{remaining} restore point(s) remain"
    elif not policy.has_rules:
        keep, rule, reason = True, "no_rule", _text(t, "no_rule", policy, name)
    elif vm.protected and not vm.live:
        keep, rule, reason = True, "orphan_grace", f"empty, but VM gone only since {format_instant(vm.since)}"
    elif vm.live and now - t.created[i] < policy.orphan_grace:
        keep, rule, reason = True, "in_progress", f"empty, younger than orphan_grace {policy.orphan_grace}"
    elif expires is not None and expires > now:
        keep, rule, reason = True, "expires_not_reached", f"{T.EXPIRES} {format_instant(expires)}"
    else:
        keep, rule, reason = False, "empty_collection", "empty restore point collection"
    _apply(("one", t.lids[i]), (i,), keep, rule, reason, policy, now, decided, t)
    return decided[i]
