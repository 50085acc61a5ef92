"""Retention: decide which vmkeeper artifacts to keep, mark for deletion, delete, or leave alone.

Pure: no I/O, no Azure SDK, no clock (``now`` is an argument). The caller lists artifacts, calls
:func:`decide`, and applies the decisions (or only prints them: a dry run is the caller's business).

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
   a. no ``managed-by: vmkeeper`` tag -> skip ``not_owned``;
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
   different VMs, policies or SET_SIZEs (one without it among members with it counts as different), or
   more distinct members than their SET_SIZE).
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
   (VM id, kind, region, is_copy), newest first: a VM's snapshot sets and its restore points are separate
   lineages (a policy may take both), and copies in another region are lineages of their own, so each kind
   and each copy region has its own newest good point. Each set is judged by its own policy against the
   whole lineage; the first matching rule wins:
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
      of the newest N UTC days / ISO weeks / months / years that hold a good set (buckets without a set
      are not counted, as in restic/borg ``forget``).
   h. ``expires_not_reached``: a member's EXPIRES instant is still in the future (EXPIRES is a floor).
   i. ``max_age_not_reached``: the policy has max_age and the set is younger.
   Otherwise the set is expired: rule ``max_age`` (older than max_age) or ``not_selected``.
   Not good (a failed member, or incomplete) means never the newest good set and never selected by 4f-g.
5. VM protection. A live VM (in ``live_vm_ids``) is always protected. A gone VM is protected until
   ``since + grace``, where ``since`` is the later of ``vm_last_seen[vm]`` and the newest ``created`` of
   any artifact of that VM (so unknown = gone since its newest artifact), and ``grace`` is the longest
   ``orphan_grace`` among the policies of the sets rule 4b-c protect and of its collections. After that
   its sets are judged by rules 4d and 4f-i alone (keep_* rules still apply to a gone VM's sets).
6. Restore point collections (after everything else). Its restore points are the artifacts whose id
   starts with ``{collection id}/restorePoints/``; any not decided ``delete`` in this run keep it
   (``collection_not_empty``). An empty collection is kept with ``no_rule`` as in 4a, ``orphan_grace``
   while a gone VM is protected, ``in_progress`` while a live VM's collection is younger than
   ``orphan_grace`` (a worker may be about to add a point), ``expires_not_reached`` as in 4h;
   otherwise it expires with rule ``empty_collection`` and is marked, then deleted.
7. Deferral. An expired set is marked first: ``delete_after`` is the latest of its members' EXPIRING
   instants, or ``now + deferral`` (rounded up to a second) for a member without one. It is deleted only
   once ``now > delete_after``.

Idempotence: after the caller applies a run (deletes gone, marks written, unmarks removed), running again
with the same ``now`` deletes nothing and marks nothing new: removing unselected sets never unselects
another set, an incomplete set that rule 4e lets go has a newer good set that rule 4b keeps, and the
instants of rule 5 cannot move while the sets they protect are kept.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import tags as T

SNAPSHOT = "snapshot"
RESTORE_POINT = "restore_point"
COLLECTION = "restore_point_collection"
KINDS = (SNAPSHOT, RESTORE_POINT, COLLECTION)
ACTIONS = ("keep", "mark", "delete", "skip")

_COUNTS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
_DURATIONS = ("max_age", "orphan_grace", "deferral")
_DATE_TAGS = (T.SLOT, T.EXPIRES, T.EXPIRING, T.LOCK_UNTIL)
_RP_INFIX = "/restorepoints/"
_LINEAGE_NAMES = {SNAPSHOT: "snapshot sets", RESTORE_POINT: "restore points"}

# Calendar buckets for the GFS rules (all in UTC).
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

    ``vm_id`` and ``set_id`` default to the VM and SET tags. ``good`` has no default on purpose: guessing
    it wrong either protects an unfinished copy as "the newest good point" or fails to protect a good one.
    """

    id: str  # ARM resource id
    kind: str  # one of KINDS
    tags: Mapping[str, str]
    created: datetime  # timezone-aware
    region: str
    good: bool  # provisioning succeeded / copy completed
    vm_id: str | None = None  # source VM id (compared lower case)
    set_id: str | None = None  # snapshots of one run of one VM share it
    is_copy: bool = False  # a cross-region copy
    locked: bool = False  # under any resource lock, at any scope
    lock_is_ours_and_expired: bool = False  # every lock on it is vmkeeper's own and LOCK_UNTIL has passed


@dataclass(frozen=True)
class Decision:
    artifact_id: str
    action: str  # one of ACTIONS
    rule: str
    reason: str
    delete_after: datetime | None = None  # for mark (the instant to write) and delete (the instant passed)
    unlock: bool = False  # delete: remove vmkeeper's own expired lock first


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    max_age: timedelta | None = None
    orphan_grace: timedelta = timedelta(days=7)
    deferral: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        for name in _COUNTS:
            _check_count(getattr(self, name), f"retention.{name}")
        if self.max_age is not None:
            _check_duration(self.max_age, "retention.max_age", positive=True)
        _check_duration(self.orphan_grace, "retention.orphan_grace")
        _check_duration(self.deferral, "retention.deferral")

    @property
    def has_rules(self) -> bool:
        return self.max_age is not None or any(getattr(self, name) for name in _COUNTS)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "retention") -> RetentionPolicy:
        """Parse a config mapping. Durations: ISO 8601 ("P30D", "PT12H", "P1DT6H", "P2W") or "30d",
        "12h", "90m", "2w", "45s". Unknown keys are errors: a typo must not silently mean 0."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: must be a mapping of retention settings")
        known = _COUNTS + _DURATIONS
        for key in data:
            if key not in known:
                raise ValueError(f"{where}.{key}: unknown setting (expected one of {', '.join(known)})")
        kwargs: dict[str, Any] = {}
        for name in _COUNTS:
            if name in data:
                kwargs[name] = _check_count(data[name], f"{where}.{name}")
        if data.get("max_age") is not None:
            kwargs["max_age"] = _parse_duration(data["max_age"], f"{where}.max_age", positive=True)
        for name in ("orphan_grace", "deferral"):
            if name in data:
                kwargs[name] = _parse_duration(data[name], f"{where}.{name}")
        return cls(**kwargs)


# ------------------------------------------------------------------------------------------------ helpers


def parse_instant(value: Any) -> datetime | None:
    """An ISO 8601 instant with a UTC offset, as UTC; None if it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def format_instant(when: datetime) -> str:
    """The tag form of an instant, e.g. 2026-11-25T06:00:00Z; parse_instant reads it back exactly."""
    return _utc(when, "instant").isoformat().replace("+00:00", "Z")


def plan_summary(decisions: Iterable[Decision]) -> dict[str, dict[str, int]]:
    """Counts per action, then per rule: {"keep": {"keep_daily": 3, ...}, "mark": {...}, ...}."""
    counts: dict[str, dict[str, int]] = {action: {} for action in ACTIONS}
    for decision in decisions:
        per_rule = counts.setdefault(decision.action, {})
        per_rule[decision.rule] = per_rule.get(decision.rule, 0) + 1
    return {action: dict(sorted(per_rule.items())) for action, per_rule in counts.items()}


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: must be a non-negative integer")
    return value


def _check_duration(value: Any, name: str, *, positive: bool = False) -> timedelta:
    if not isinstance(value, timedelta) or value < timedelta(0) or (positive and not value):
        raise ValueError(f"{name}: must be a {'positive' if positive else 'non-negative'} duration")
    return value


_ISO_DURATION = re.compile(
    r"P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?",
    re.IGNORECASE,
)
_SHORT_DURATION = re.compile(r"(\d+)\s*([wdhms])", re.IGNORECASE)
_SHORT_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def _parse_duration(value: Any, name: str, *, positive: bool = False) -> timedelta:
    if isinstance(value, timedelta):
        return _check_duration(value, name, positive=positive)
    text = value.strip() if isinstance(value, str) else ""
    iso = _ISO_DURATION.fullmatch(text)
    short = _SHORT_DURATION.fullmatch(text)
    parts: dict[str, int] = {}
    if iso and text.upper() not in ("P", "PT") and not text.upper().endswith("T"):
        parts = {unit: int(n) for unit, n in iso.groupdict().items() if n is not None}
    elif short:
        parts = {_SHORT_UNITS[short.group(2).lower()]: int(short.group(1))}
    if not parts:
        raise ValueError(f"{name}: must be a duration such as 'P30D', 'PT12H', '30d' or '12h'")
    return _check_duration(timedelta(**parts), name, positive=positive)


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
# Written for speed (100,000 artifacts well under a second): per artifact one pass over its tags (lower-cased
# only when a name is not already), instants parsed once per distinct tag value, the per-artifact facts kept
# in a few parallel lists rather than an object each (fewer objects for the garbage collector to walk), and
# reason texts built once per lineage or policy where they can be.


@dataclass(slots=True, eq=False)
class _Table:
    """Rules 1-2's reading of every artifact, by index (parallel lists)."""

    arts: Sequence[Artifact]
    policies: Mapping[str, RetentionPolicy]
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


@dataclass(slots=True, eq=False)
class _Set:
    key: tuple
    members: tuple[int, ...]  # indices into the table
    time: datetime
    good: bool
    candidate: bool  # every member judgeable and they agree on VM, policy and SET_SIZE
    lineage: tuple[str, str, str, bool] | None = None  # (VM id, kind, region, is_copy)
    pos: int = 0  # rank in its lineage, 0 = newest
    policy_name: str | None = None
    policy: RetentionPolicy | None = None
    expires: datetime | None = None
    size: int | None = None  # SET_SIZE, if its members carry it
    present: int = 0  # distinct members (disks) present
    incomplete: bool = False  # fewer distinct members than SET_SIZE

    def label(self, t: _Table) -> str:
        return f"set {self.key[1]}" if self.key[0] == "set" else _short(t.arts[self.members[0]].id)


@dataclass(slots=True)
class _VmState:
    live: bool
    protected: bool
    since: datetime | None = None
    until: datetime | None = None


@dataclass(slots=True, eq=False)
class _Lineage:
    sets: list[_Set]  # newest first
    newest_good: int | None  # index into sets
    where: str  # e.g. "snapshot sets of vm1 in westeurope (copies)", for reasons
    chosen: dict[str, dict[tuple, str]] = field(default_factory=dict)  # policy name -> set key -> rule
    reasons: dict[tuple, str] = field(default_factory=dict)  # reason texts shared by its sets


# A verdict: (keep, rule, reason).
_Verdict = tuple[bool, str, str]


# ------------------------------------------------------------------------------------------------- decide


def decide(
    artifacts: Sequence[Artifact],
    policies: Mapping[str, RetentionPolicy],
    live_vm_ids: Collection[str],
    now: datetime,
    vm_last_seen: Mapping[str, datetime] | None = None,
) -> list[Decision]:
    """One Decision per artifact, in input order. See the module docstring for the rules.

    ``live_vm_ids``: ids of the VMs that exist now (any case). ``vm_last_seen``: when each gone VM was
    last seen, if the caller keeps track; missing entries fall back to the VM's newest artifact.
    Raises ValueError for naive datetimes, unknown kinds and duplicate ids (a caller bug: decide nothing).
    """
    now = _utc(now, "now")
    live = {vm.lower() for vm in live_vm_ids}
    last_seen = {vm.lower(): _utc(when, f"vm_last_seen[{vm}]") for vm, when in (vm_last_seen or {}).items()}
    t = _examine(artifacts, policies, now)
    sets = _group_sets(t)
    lineages = _lineages(sets, t)
    collections = [i for i, a in enumerate(artifacts) if a.kind == COLLECTION]
    vms = _vm_states(t, lineages, collections, policies, live, last_seen, now)

    decided: list[Decision | None] = [None] * len(artifacts)
    has_rules = {name: policy.has_rules for name, policy in policies.items()}
    for s in sets:
        verdict = _judge_set(s, lineages[s.lineage], vms, now, has_rules, t) if s.candidate else None
        _decide_members(s, verdict, now, decided, t)
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
    try:
        if "".join(tags).islower():  # no upper case letter in any name (and some letter)
            return tags
    except TypeError:  # a name that is not a string
        pass
    return {str(k).lower(): v for k, v in tags.items()}


def _held(tags: Mapping[str, str]) -> bool:
    return T.HOLD in tags  # presence holds: an empty value too (keys already lower case)


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
    t = _Table(
        artifacts, policies, lids, [], [], [], [], [None] * n, [None] * n, [False] * n, [], [None] * n, {}, {}
    )
    add_created, add_vm, add_set_id = t.created.append, t.vm.append, t.set_id.append
    add_policy, add_judgeable = t.policy_name.append, t.judgeable.append
    expiring, expires, unlocks, forced_list = t.expiring, t.expires, t.unlock, t.forced
    instants: dict[
        str, datetime | None
    ] = {}  # per tag value: a slot, a mark or a lock date is on many artifacts
    date_tags = sorted(_DATE_TAGS)  # sorted: the bad ones are named in this order
    managed_by, hold, vm_tag, set_tag, policy_tag = T.MANAGED_BY, T.HOLD, T.VM, T.SET, T.ARTIFACT_POLICY

    for i, (art, lid, tags) in enumerate(zip(artifacts, lids, all_tags, strict=True)):
        kind, get = art.kind, tags.get
        created = art.created
        if type(created) is not datetime or created.tzinfo is not UTC:  # (the message only when needed)
            created = _utc(created, f"{art.id}: created")
        add_created(created)
        vm = art.vm_id or get(vm_tag)
        vm = (vm.strip().lower() or None) if vm else None
        add_vm(vm)
        set_id = art.set_id or get(set_tag)
        set_id = (set_id.strip() or None) if set_id else None
        add_set_id(set_id)
        policy_name = get(policy_tag)
        policy_name = (policy_name.strip() or None) if policy_name else None
        add_policy(policy_name)

        bad_dates = lock_until = None
        for name in date_tags:
            if name in tags:
                value = tags[name]
                try:
                    when = instants[value]
                except (KeyError, TypeError):  # TypeError: not a string (nor hashable): parse_instant says no
                    when = parse_instant(value)
                    if type(value) is str:
                        instants[value] = when
                if when is None:
                    bad_dates = [*(bad_dates or ()), name]
                elif name == T.EXPIRING:
                    expiring[i] = when
                elif name == T.EXPIRES:
                    expires[i] = when
                elif name == T.LOCK_UNTIL:
                    lock_until = when
        unlock = art.locked and art.lock_is_ours_and_expired and lock_until is not None and lock_until <= now
        unlocks[i] = unlock

        managed = (get(managed_by) or "").strip().lower() == T.MANAGED_BY_VALUE
        forced = None
        if not managed:
            forced = Decision(art.id, "skip", "not_owned", f"no {managed_by}: {T.MANAGED_BY_VALUE} tag")
        elif hold in tags:
            forced = Decision(art.id, "skip", "hold", f"{hold} = {tags[hold]!r}")
        elif kind == RESTORE_POINT and _parent_collection(lid) in held:
            forced = Decision(art.id, "skip", "hold", "its restore point collection is held")
        elif art.locked and not unlock:
            forced = Decision(art.id, "skip", "locked", "under a resource lock")

        doubt = None
        if bad_dates:
            doubt = ("bad_tag", f"not an ISO 8601 UTC instant: {', '.join(bad_dates)}")
        elif policy_name is None:
            doubt = ("unknown_policy", f"no {policy_tag} tag")
        elif policy_name not in policies:
            doubt = ("unknown_policy", f"policy {policy_name!r} is not configured")
        elif vm is None:
            doubt = ("bad_tag", f"no {vm_tag} tag")
        elif kind == SNAPSHOT and set_id is None:
            doubt = ("bad_tag", f"no {set_tag} tag")
        if kind == SNAPSHOT and T.SET_SIZE in tags:
            size = t.set_size[i] = _parse_size(tags[T.SET_SIZE])
            t.disk[i] = _disk(lid, tags)
            if size is None and doubt is None:
                doubt = ("bad_tag", f"{T.SET_SIZE} = {tags[T.SET_SIZE]!r}: not a number of disks")
        add_judgeable(managed and doubt is None)
        if doubt is not None and forced is None:
            forced = Decision(art.id, "keep", *doubt)
        if forced is not None:
            forced_list[i] = forced
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


def _group_sets(t: _Table) -> list[_Set]:
    """Rule 3's sets: snapshots by (set id, region, is_copy); any other snapshot or restore point alone."""
    groups: dict[tuple, list[int]] = {}
    sets: list[_Set] = []
    created, judgeable = t.created, t.judgeable
    for i, art in enumerate(t.arts):
        kind = art.kind
        set_id = t.set_id[i]
        if kind == SNAPSHOT and set_id is not None:
            key = (set_id, art.region.lower(), art.is_copy)
            members = groups.get(key)
            if members is None:
                groups[key] = [i]
            else:
                members.append(i)
        elif kind != COLLECTION:  # restore points, and snapshots that rule 2 already keeps: alone
            s = _Set(("one", t.lids[i]), (i,), created[i], art.good, judgeable[i])
            if s.candidate:  # one member: no disagreement possible, no SET_SIZE to count
                s.lineage = (t.vm[i], kind, art.region.lower(), art.is_copy)
                s.policy_name, s.expires = t.policy_name[i], t.expires[i]
                s.policy = t.policies[s.policy_name]
            sets.append(s)
    sets.extend(_make_set(("set", *key), tuple(members), t) for key, members in groups.items())
    return sets


def _make_set(key: tuple, members: tuple[int, ...], t: _Table) -> _Set:
    first = members[0]
    if len(members) == 1:
        s = _Set(key, members, t.created[first], t.arts[first].good, t.judgeable[first])
        vms = names = 1
        sizes = {t.set_size.get(first)}
    else:
        s = _Set(
            key,
            members,
            max(t.created[m] for m in members),
            all(t.arts[m].good for m in members),
            all(t.judgeable[m] for m in members),
        )
        vms = len({t.vm[m] for m in members})
        names = len({t.policy_name[m] for m in members})
        sizes = {t.set_size.get(m) for m in members}
    corrupt = None
    if vms > 1 or names > 1 or len(sizes) > 1:
        what = "VMs" if vms > 1 else "policies" if names > 1 else f"{T.SET_SIZE}s"
        corrupt = f"members of {s.label(t)} name different {what}"
    elif (size := sizes.pop()) is not None:
        s.size, s.present = size, len({t.disk[m] for m in members})
        s.incomplete = s.present < size
        s.good = s.good and not s.incomplete
        if s.present > size:
            corrupt = f"{s.label(t)} has {s.present} disks, more than its {T.SET_SIZE} {size}"
    if s.candidate and corrupt:
        s.candidate = False  # a corrupt set: keep it all, on doubt
        for m in members:
            t.forced[m] = t.forced[m] or Decision(t.arts[m].id, "keep", "bad_tag", corrupt)
    if s.candidate:
        art = t.arts[first]
        s.lineage = (t.vm[first], art.kind, art.region.lower(), art.is_copy)
        s.policy_name = t.policy_name[first]
        s.policy = t.policies[s.policy_name]
        s.expires = max((t.expires[m] for m in members if t.expires[m]), default=None)
    return s


def _lineages(sets: list[_Set], t: _Table) -> dict[tuple, _Lineage]:
    grouped: dict[tuple, list[_Set]] = defaultdict(list)
    for s in sets:
        if s.candidate:
            grouped[s.lineage].append(s)
    out = {}
    for lineage, members in grouped.items():
        members.sort(key=_rank, reverse=True)
        newest_good = None
        for pos, s in enumerate(members):
            s.pos = pos
            if newest_good is None and s.good:
                newest_good = pos
        vm_id, kind, region, is_copy = lineage
        where = f"{_LINEAGE_NAMES[kind]} of {_short(vm_id)} in {region}{' (copies)' if is_copy else ''}"
        out[lineage] = _Lineage(members, newest_good, where)
    return out


def _rank(s: _Set) -> tuple:
    # Newest first; ties broken by key (the sets of a lineage have keys of one shape): deterministic.
    return (s.time, s.key)


def _orphan_protected(lin: _Lineage) -> list[_Set]:
    """The sets rule 4b-c protect while a gone VM is within grace: the newest good and anything newer."""
    return lin.sets if lin.newest_good is None else lin.sets[: lin.newest_good + 1]


def _vm_states(
    t: _Table,
    lineages: dict[tuple, _Lineage],
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
    for (vm, *_), lin in lineages.items():
        if vm not in live:
            graces[vm] += [s.policy.orphan_grace for s in _orphan_protected(lin)]
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


def _chosen(lin: _Lineage, name: str, policy: RetentionPolicy) -> dict[tuple, str]:
    """Sets of the lineage that `policy`'s keep_last and GFS rules select (set key -> first rule)."""
    chosen = lin.chosen.get(name)
    if chosen is None:
        good = [s for s in lin.sets if s.good]
        chosen = {s.key: "keep_last" for s in good[: policy.keep_last]}
        for rule, bucket_of in _BUCKETS.items():
            left, last = getattr(policy, rule), None
            for s in good:
                if left <= 0:
                    break
                bucket = bucket_of(s.time)
                if bucket != last:  # newest first, so the first set seen in a bucket is its newest
                    chosen.setdefault(s.key, rule)
                    left, last = left - 1, bucket
        lin.chosen[name] = chosen
    return chosen


def _judge_set(
    s: _Set,
    lin: _Lineage,
    vms: dict[str, _VmState],
    now: datetime,
    has_rules: Mapping[str, bool],
    t: _Table,
) -> _Verdict:
    """Rules 4-5 for one candidate set."""
    name, vm, pos, newest_good = s.policy_name, vms[s.lineage[0]], s.pos, lin.newest_good
    if not has_rules[name]:
        return (True, "no_rule", f"policy {name!r} has no keep rule and no max_age")
    if vm.protected:
        if pos == newest_good:
            reason = lin.reasons.get(("newest_good",))
            if reason is None:
                why = (
                    "live VM"
                    if vm.live
                    else f"VM gone since {format_instant(vm.since)}, grace until {format_instant(vm.until)}"
                )
                reason = lin.reasons[("newest_good",)] = f"newest good point of {lin.where} ({why})"
            return (True, "newest_good", reason)
        if not vm.live and (newest_good is None or pos < newest_good):
            return (True, "orphan_grace", f"VM gone, grace until {format_instant(vm.until)}")
    policy = s.policy
    if not s.good and now - s.time < policy.orphan_grace:
        what = f"incomplete ({s.present} of {s.size} disks)" if s.incomplete else "not good yet"
        return (True, "in_progress", f"{what}, younger than orphan_grace {policy.orphan_grace}")
    if s.incomplete and vm.protected and (newest_good is None or newest_good > pos):
        return (
            True,
            "incomplete_no_newer_complete",
            f"{s.label(t)} has {s.present} of {s.size} disks, and no newer complete set in {lin.where}",
        )
    rule = _chosen(lin, name, policy).get(s.key)
    if rule:
        reason = lin.reasons.get((rule, name))
        if reason is None:
            reason = lin.reasons[(rule, name)] = f"{rule} = {getattr(policy, rule)} selects it in {lin.where}"
        return (True, rule, reason)
    if s.expires is not None and s.expires > now:
        return (True, "expires_not_reached", f"{T.EXPIRES} {format_instant(s.expires)}")
    if policy.max_age is not None:
        if now - s.time < policy.max_age:
            return (True, "max_age_not_reached", f"younger than max_age {policy.max_age}")
        return (False, "max_age", f"older than max_age {policy.max_age}")
    return (False, "not_selected", f"no keep rule of policy {name!r} selects it")


def _keep(d: Sequence[Artifact], i: int, expiring: datetime | None, rule: str, reason: str) -> Decision:
    if expiring is not None:  # no longer expiring: the caller removes the mark
        return Decision(d[i].id, "keep", "unmark", f"{rule}: {reason}; remove {T.EXPIRING}")
    return Decision(d[i].id, "keep", rule, reason)


def _expire(
    members: Sequence[int], verdict: _Verdict, deferral: timedelta, now: datetime, t: _Table
) -> list[Decision]:
    """Rule 7: mark first; delete once every member's mark has passed. One instant for the whole set."""
    _, rule, reason = verdict
    planned = _ceil_second(now + deferral)
    when = max(t.expiring[m] or planned for m in members)
    arts = t.arts
    if now > when:
        return [
            Decision(arts[m].id, "delete", rule, reason, delete_after=when, unlock=t.unlock[m])
            for m in members
        ]
    reason = f"{reason}; delete after {format_instant(when)}"
    return [Decision(arts[m].id, "mark", rule, reason, delete_after=when) for m in members]


def _decide_members(s: _Set, verdict: _Verdict | None, now: datetime, decided: list, t: _Table) -> None:
    """Rule 3: the set's fate applies to all its members, and any member kept by rule 1-2 keeps them all."""
    members, forced, arts, expiring = s.members, t.forced, t.arts, t.expiring
    if verdict is not None and verdict[0] and len(members) == 1 and forced[members[0]] is None:
        m = members[0]  # the common case, in short
        decided[m] = _keep(arts, m, expiring[m], verdict[1], verdict[2])
        return
    why = None
    free = []
    for m in members:
        if forced[m] is not None:
            decided[m] = forced[m]
            why = m if why is None else why
        else:
            free.append(m)
    if not free:
        return
    if verdict is not None and verdict[0]:
        for m in free:
            decided[m] = _keep(arts, m, expiring[m], verdict[1], verdict[2])
    elif (
        why is not None or verdict is None
    ):  # (a set that is no candidate always has a member kept by rule 1-2)
        reason = f"{s.label(t)}: {_short(arts[why].id)} is kept ({forced[why].rule})"
        for m in free:
            decided[m] = _keep(arts, m, expiring[m], "set_member_kept", reason)
    else:
        for m, decision in zip(free, _expire(free, verdict, s.policy.deferral, now, t), strict=True):
            decided[m] = decision


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

    def keep(rule: str, reason: str) -> Decision:
        return _keep(t.arts, i, t.expiring[i], rule, reason)

    remaining = [c for c in children if decided[c].action != "delete"]
    if remaining:
        return keep("collection_not_empty", f"{len(remaining)} restore point(s) remain")
    name = t.policy_name[i]
    policy, vm, expires = policies[name], vms[t.vm[i]], t.expires[i]
    if not policy.has_rules:
        return keep("no_rule", f"policy {name!r} has no keep rule and no max_age")
    if vm.protected and not vm.live:
        return keep("orphan_grace", f"empty, but VM gone only since {format_instant(vm.since)}")
    if vm.live and now - t.created[i] < policy.orphan_grace:
        return keep("in_progress", f"empty, younger than orphan_grace {policy.orphan_grace}")
    if expires is not None and expires > now:
        return keep("expires_not_reached", f"{T.EXPIRES} {format_instant(expires)}")
    verdict = (False, "empty_collection", "empty restore point collection")
    return _expire([i], verdict, policy.deferral, now, t)[0]
