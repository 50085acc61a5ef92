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


@dataclass
class _Item:
    """One artifact with its tags read once."""

    art: Artifact
    index: int
    created: datetime
    vm: str | None
    set_id: str | None
    policy_name: str | None
    policy: RetentionPolicy | None
    expiring: datetime | None
    expires: datetime | None
    set_size: int | None  # a snapshot's SET_SIZE (None: absent)
    disk: tuple[str, str] | None  # what tells a snapshot apart from the other members of its set
    unlock: bool
    judgeable: bool  # passes rule 2 (holds and locks aside)
    forced: Decision | None  # the rule 1-2 decision, if any


@dataclass
class _Set:
    key: tuple
    members: list[_Item]
    time: datetime
    good: bool
    candidate: bool  # every member judgeable and they agree on VM and policy
    lineage: tuple[str, str, str, bool] | None = None  # (VM id, kind, region, is_copy)
    pos: int = 0  # rank in its lineage, 0 = newest
    policy_name: str | None = None
    policy: RetentionPolicy | None = None
    expires: datetime | None = None
    label: str = ""
    size: int | None = None  # SET_SIZE, if its members carry it
    present: int = 0  # distinct members (disks) present
    incomplete: bool = False  # fewer distinct members than SET_SIZE


@dataclass(frozen=True)
class _Verdict:
    keep: bool
    rule: str
    reason: str


@dataclass
class _VmState:
    live: bool
    protected: bool
    since: datetime | None = None
    until: datetime | None = None


@dataclass
class _Lineage:
    sets: list[_Set]  # newest first
    newest_good: int | None  # index into sets
    chosen: dict[str, dict[tuple, str]] = field(default_factory=dict)  # policy name -> set key -> rule


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
    _check_ids(artifacts)

    held_collections = {
        a.id.lower() for a in artifacts if a.kind == COLLECTION and _held(_lower_keys(a.tags))
    }
    items = [_examine(a, i, policies, now, held_collections) for i, a in enumerate(artifacts)]
    collections = [it for it in items if it.art.kind == COLLECTION]
    sets = _group_sets([it for it in items if it.art.kind != COLLECTION])
    lineages = _lineages(sets)
    vms = _vm_states(items, lineages, collections, live, last_seen, now)

    decided: dict[int, Decision] = {}
    for s in sets:
        verdict = _judge_set(s, lineages, vms, now) if s.candidate else None
        decided.update(_decide_members(s, verdict, now))
    children = _collection_children(items)
    for it in collections:
        decided[it.index] = _decide_collection(it, children.get(it.art.id.lower(), []), decided, vms, now)
    return [decided[i] for i in range(len(items))]


def _check_ids(artifacts: Sequence[Artifact]) -> None:
    seen: set[str] = set()
    for a in artifacts:
        if a.kind not in KINDS:
            raise ValueError(f"{a.id}: unknown kind {a.kind!r} (expected one of {', '.join(KINDS)})")
        if a.id.lower() in seen:
            raise ValueError(f"{a.id}: listed twice")
        seen.add(a.id.lower())


def _lower_keys(tags: Mapping[str, str] | None) -> dict[str, str]:
    return {str(k).lower(): v for k, v in (tags or {}).items()}


def _held(tags: Mapping[str, str]) -> bool:
    return T.HOLD in tags  # presence holds: an empty value too (keys already lower case)


def _parent_collection(resource_id: str) -> str | None:
    lowered = resource_id.lower()
    return lowered.rsplit(_RP_INFIX, 1)[0] if _RP_INFIX in lowered else None


def _examine(
    art: Artifact,
    index: int,
    policies: Mapping[str, RetentionPolicy],
    now: datetime,
    held_collections: set[str],
) -> _Item:
    """Read tags once and apply rules 1-2."""
    tags = _lower_keys(art.tags)
    created = _utc(art.created, f"{art.id}: created")
    vm = (art.vm_id or tags.get(T.VM) or "").strip().lower() or None
    set_id = (art.set_id or tags.get(T.SET) or "").strip() or None
    dates = {name: parse_instant(tags[name]) for name in _DATE_TAGS if name in tags}
    bad_dates = sorted(name for name, when in dates.items() if when is None)
    policy_name = (tags.get(T.ARTIFACT_POLICY) or "").strip() or None
    policy = policies.get(policy_name) if policy_name else None
    lock_until = dates.get(T.LOCK_UNTIL)
    unlock = art.locked and art.lock_is_ours_and_expired and lock_until is not None and lock_until <= now

    def skip(rule: str, reason: str) -> Decision:
        return Decision(art.id, "skip", rule, reason)

    def doubt(rule: str, reason: str) -> Decision:
        return Decision(art.id, "keep", rule, reason)

    if not T.is_managed(tags):
        forced = skip("not_owned", f"no {T.MANAGED_BY}: {T.MANAGED_BY_VALUE} tag")
    elif _held(tags):
        forced = skip("hold", f"{T.HOLD} = {tags[T.HOLD]!r}")
    elif art.kind == RESTORE_POINT and _parent_collection(art.id) in held_collections:
        forced = skip("hold", "its restore point collection is held")
    elif art.locked and not unlock:
        forced = skip("locked", "under a resource lock")
    else:
        forced = None
    doubt_decision = None
    if bad_dates:
        doubt_decision = doubt("bad_tag", f"not an ISO 8601 UTC instant: {', '.join(bad_dates)}")
    elif policy_name is None:
        doubt_decision = doubt("unknown_policy", f"no {T.ARTIFACT_POLICY} tag")
    elif policy is None:
        doubt_decision = doubt("unknown_policy", f"policy {policy_name!r} is not configured")
    elif vm is None:
        doubt_decision = doubt("bad_tag", f"no {T.VM} tag")
    elif art.kind == SNAPSHOT and set_id is None:
        doubt_decision = doubt("bad_tag", f"no {T.SET} tag")
    set_size = disk = None
    if art.kind == SNAPSHOT:
        disk = _disk(art, tags)
        if T.SET_SIZE in tags:
            set_size = _parse_size(tags[T.SET_SIZE])
            if set_size is None and doubt_decision is None:
                doubt_decision = doubt(
                    "bad_tag", f"{T.SET_SIZE} = {tags[T.SET_SIZE]!r}: not a number of disks"
                )
    return _Item(
        art=art,
        index=index,
        created=created,
        vm=vm,
        set_id=set_id,
        policy_name=policy_name,
        policy=policy,
        expiring=dates.get(T.EXPIRING),
        expires=dates.get(T.EXPIRES),
        set_size=set_size,
        disk=disk,
        unlock=unlock,
        judgeable=T.is_managed(tags) and doubt_decision is None,
        forced=forced or doubt_decision,
    )


def _parse_size(value: str) -> int | None:
    text = value.strip()
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None


def _disk(art: Artifact, tags: Mapping[str, str]) -> tuple[str, str]:
    for name in (T.LUN, T.COPY_OF):
        value = (tags.get(name) or "").strip().lower()
        if value:
            return (name, value)
    return ("id", art.id.lower())


def _set_key(it: _Item) -> tuple:
    if it.art.kind == SNAPSHOT and it.set_id is not None:
        return ("set", it.set_id, it.art.region.lower(), it.art.is_copy)
    return ("one", it.art.id.lower())  # restore points, and snapshots that rule 2 already keeps


def _group_sets(items: list[_Item]) -> list[_Set]:
    groups: dict[tuple, list[_Item]] = defaultdict(list)
    for it in items:
        groups[_set_key(it)].append(it)
    return [_make_set(key, members) for key, members in groups.items()]


def _make_set(key: tuple, members: list[_Item]) -> _Set:
    first = members[0]
    s = _Set(
        key=key,
        members=members,
        time=max(m.created for m in members),
        good=all(m.art.good for m in members),
        candidate=all(m.judgeable for m in members),
        label=f"set {first.set_id}" if key[0] == "set" else _short(first.art.id),
    )
    vms = {m.vm for m in members}
    names = {m.policy_name for m in members}
    sizes = {m.set_size for m in members}
    corrupt = None
    if len(vms) > 1 or len(names) > 1 or len(sizes) > 1:
        what = "VMs" if len(vms) > 1 else "policies" if len(names) > 1 else f"{T.SET_SIZE}s"
        corrupt = f"members of {s.label} name different {what}"
    elif key[0] == "set" and (size := sizes.pop()) is not None:
        s.size, s.present = size, len({m.disk for m in members})
        s.incomplete = s.present < size
        s.good = s.good and not s.incomplete
        if s.present > size:
            corrupt = f"{s.label} has {s.present} disks, more than its {T.SET_SIZE} {size}"
    if s.candidate and corrupt:
        s.candidate = False  # a corrupt set: keep it all, on doubt
        for m in members:
            m.forced = m.forced or Decision(m.art.id, "keep", "bad_tag", corrupt)
    if s.candidate:
        s.lineage = (first.vm, first.art.kind, first.art.region.lower(), first.art.is_copy)
        s.policy_name, s.policy = first.policy_name, first.policy
        s.expires = max((m.expires for m in members if m.expires), default=None)
    return s


def _lineages(sets: list[_Set]) -> dict[tuple, _Lineage]:
    grouped: dict[tuple, list[_Set]] = defaultdict(list)
    for s in sets:
        if s.candidate:
            grouped[s.lineage].append(s)
    out = {}
    for lineage, members in grouped.items():
        members.sort(key=lambda s: (s.time, repr(s.key)), reverse=True)  # ties broken by key: deterministic
        for pos, s in enumerate(members):
            s.pos = pos
        newest_good = next((s.pos for s in members if s.good), None)
        out[lineage] = _Lineage(members, newest_good)
    return out


def _orphan_protected(lin: _Lineage) -> list[_Set]:
    """The sets rule 4b-c protect while a gone VM is within grace: the newest good and anything newer."""
    return lin.sets if lin.newest_good is None else lin.sets[: lin.newest_good + 1]


def _vm_states(
    items: list[_Item],
    lineages: dict[tuple, _Lineage],
    collections: list[_Item],
    live: set[str],
    last_seen: dict[str, datetime],
    now: datetime,
) -> dict[str, _VmState]:
    newest: dict[str, datetime] = {}
    for it in items:
        if it.vm:
            newest[it.vm] = max(newest.get(it.vm, it.created), it.created)
    # The longest grace among what the grace protects: those artifacts stay, so the grace cannot shrink
    # between two runs with the same `now`, and neither can `since` (its newest artifact stays too).
    graces: dict[str, list[timedelta]] = defaultdict(list)
    for (vm, *_), lin in lineages.items():
        graces[vm] += [s.policy.orphan_grace for s in _orphan_protected(lin)]
    for it in collections:
        if it.judgeable:
            graces[it.vm].append(it.policy.orphan_grace)
    states = {}
    for vm in newest.keys() | last_seen.keys():
        if vm in live:
            states[vm] = _VmState(live=True, protected=True)
            continue
        since = max(t for t in (newest.get(vm), last_seen.get(vm)) if t is not None)
        until = since + max(graces.get(vm, []), default=timedelta(0))
        states[vm] = _VmState(live=False, protected=now < until, since=since, until=until)
    return states


def _chosen(lin: _Lineage, name: str, policy: RetentionPolicy) -> dict[tuple, str]:
    """Sets of the lineage that `policy`'s keep_last and GFS rules select (set key -> first rule)."""
    if name not in lin.chosen:
        good = [s for s in lin.sets if s.good]
        chosen: dict[tuple, str] = {s.key: "keep_last" for s in good[: policy.keep_last]}
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
    return lin.chosen[name]


def _judge_set(s: _Set, lineages: dict[tuple, _Lineage], vms: dict[str, _VmState], now: datetime) -> _Verdict:
    """Rules 4-5 for one candidate set."""
    policy, lin, vm, pos = s.policy, lineages[s.lineage], vms[s.lineage[0]], s.pos
    vm_id, kind, region, is_copy = s.lineage
    where = f"{_LINEAGE_NAMES[kind]} of {_short(vm_id)} in {region}{' (copies)' if is_copy else ''}"

    if not policy.has_rules:
        return _Verdict(True, "no_rule", f"policy {s.policy_name!r} has no keep rule and no max_age")
    if vm.protected and pos == lin.newest_good:
        why = (
            "live VM"
            if vm.live
            else f"VM gone since {format_instant(vm.since)}, grace until {format_instant(vm.until)}"
        )
        return _Verdict(True, "newest_good", f"newest good point of {where} ({why})")
    if vm.protected and not vm.live and (lin.newest_good is None or pos < lin.newest_good):
        return _Verdict(True, "orphan_grace", f"VM gone, grace until {format_instant(vm.until)}")
    if not s.good and now - s.time < policy.orphan_grace:
        what = f"incomplete ({s.present} of {s.size} disks)" if s.incomplete else "not good yet"
        return _Verdict(True, "in_progress", f"{what}, younger than orphan_grace {policy.orphan_grace}")
    if s.incomplete and vm.protected and (lin.newest_good is None or lin.newest_good > pos):
        return _Verdict(
            True,
            "incomplete_no_newer_complete",
            f"{s.label} has {s.present} of {s.size} disks, and no newer complete set in {where}",
        )
    rule = _chosen(lin, s.policy_name, policy).get(s.key)
    if rule:
        return _Verdict(True, rule, f"{rule} = {getattr(policy, rule)} selects it in {where}")
    if s.expires is not None and s.expires > now:
        return _Verdict(True, "expires_not_reached", f"{T.EXPIRES} {format_instant(s.expires)}")
    if policy.max_age is not None:
        if now - s.time < policy.max_age:
            return _Verdict(True, "max_age_not_reached", f"younger than max_age {policy.max_age}")
        return _Verdict(False, "max_age", f"older than max_age {policy.max_age}")
    return _Verdict(False, "not_selected", f"no keep rule of policy {s.policy_name!r} selects it")


def _keep(it: _Item, rule: str, reason: str) -> Decision:
    if it.expiring is not None:  # no longer expiring: the caller removes the mark
        return Decision(it.art.id, "keep", "unmark", f"{rule}: {reason}; remove {T.EXPIRING}")
    return Decision(it.art.id, "keep", rule, reason)


def _expire(
    members: list[_Item], verdict: _Verdict, deferral: timedelta, now: datetime
) -> dict[int, Decision]:
    """Rule 7: mark first; delete once every member's mark has passed. One instant for the whole set."""
    planned = _ceil_second(now + deferral)
    when = max(m.expiring or planned for m in members)
    if now > when:
        return {
            m.index: Decision(
                m.art.id, "delete", verdict.rule, verdict.reason, delete_after=when, unlock=m.unlock
            )
            for m in members
        }
    reason = f"{verdict.reason}; delete after {format_instant(when)}"
    return {m.index: Decision(m.art.id, "mark", verdict.rule, reason, delete_after=when) for m in members}


def _decide_members(s: _Set, verdict: _Verdict | None, now: datetime) -> dict[int, Decision]:
    """Rule 3: the set's fate applies to all its members, and any member kept by rule 1-2 keeps them all."""
    out = {m.index: m.forced for m in s.members if m.forced}
    free = [m for m in s.members if not m.forced]
    if not free:
        return out
    if verdict is not None and verdict.keep:
        out.update({m.index: _keep(m, verdict.rule, verdict.reason) for m in free})
    elif out or verdict is None:  # (a set that is no candidate always has a member kept by rule 1-2)
        why = next(m for m in s.members if m.forced)
        reason = f"{s.label}: {_short(why.art.id)} is kept ({why.forced.rule})"
        out.update({m.index: _keep(m, "set_member_kept", reason) for m in free})
    else:
        out.update(_expire(free, verdict, s.policy.deferral, now))
    return out


def _collection_children(items: list[_Item]) -> dict[str, list[_Item]]:
    children: dict[str, list[_Item]] = defaultdict(list)
    for it in items:
        parent = _parent_collection(it.art.id) if it.art.kind != COLLECTION else None
        if parent:
            children[parent].append(it)
    return children


def _decide_collection(
    it: _Item, children: list[_Item], decided: dict[int, Decision], vms: dict[str, _VmState], now: datetime
) -> Decision:
    """Rule 6, after every restore point is decided."""
    if it.forced:
        return it.forced
    remaining = [c for c in children if decided[c.index].action != "delete"]
    if remaining:
        return _keep(it, "collection_not_empty", f"{len(remaining)} restore point(s) remain")
    policy, vm = it.policy, vms[it.vm]
    if not policy.has_rules:
        return _keep(it, "no_rule", f"policy {it.policy_name!r} has no keep rule and no max_age")
    if vm.protected and not vm.live:
        return _keep(it, "orphan_grace", f"empty, but VM gone only since {format_instant(vm.since)}")
    if vm.live and now - it.created < policy.orphan_grace:
        return _keep(it, "in_progress", f"empty, younger than orphan_grace {policy.orphan_grace}")
    if it.expires is not None and it.expires > now:
        return _keep(it, "expires_not_reached", f"{T.EXPIRES} {format_instant(it.expires)}")
    verdict = _Verdict(False, "empty_collection", "empty restore point collection")
    return _expire([it], verdict, policy.deferral, now)[it.index]
