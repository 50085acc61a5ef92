"""File recoveries and exports: what a restore makes readable for a while, and undoes. Pure: records go in,
decisions come out (no I/O, no clock).

A *leased* restore's plan has steps that make (disks attached to the operator's VM; a disk to export; later a
vault point's item-level recovery session) and end steps that undo what they made. It runs its steps, then is
``ready`` until the operator says done (``DELETE /api/restores/{id}``) or its expiry passes; then ``ending``
runs the end steps, and it ends ``succeeded`` (ended as asked, or expired) — or ``failed``, when making failed:
what was made is undone all the same. An end step that fails stays ``ending`` (alerted once) and is tried
again; nothing else ends it. The expiry is written in the plan when the restore is accepted (and on every
resource it makes, as a tag), so a timer that reads the records — not any process's memory — ends what is
overdue after any crash.

Source kinds plug in as a ``Kind``: the target type and point family it serves, its make and end steps (the
restore steps run them by name), its default and longest duration. A vault point's item-level recovery
registers its own (provision → the client script; revoke): a session vmkeeper opened is revoked at the end; one
that was active before this restore asked (someone else opened it: the portal, another tool) is left to whoever
opened it — vmkeeper joins it (the same script) but never ends it; Azure does, at its 12 hours (``revokes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..instants import format_instant, parse_instant

READY, ENDING = "ready", "ending"  # restore states of their own (shared/restore/records.py)
DONE, EXPIRED, FAILED_MAKING = "done", "expired", "failed"  # why a lease ends
REDRIVE_AFTER = timedelta(minutes=5)  # an ending (or making) restore untouched this long is sent to the worker again
END_RETRY_SECONDS = 60  # an end step that failed is tried again after this
SWEEP_SCHEDULE = "0 */5 * * * *"  # the timer that ends what is overdue (functions/restore.py): at most 5 min late

# Step names (shared/restore/steps.py runs them).
CREATE_DISKS = "create_disks"
ATTACH_DISKS = "attach_disks"  # PATCH the operator's VM: its own data disks kept, ours added at the planned LUNs
REMOVE_DISKS = "remove_disks"  # each disk of the plan, if it carries this restore's tag: detached, access revoked, deleted
PROVISION_ILR = "provision_ilr"  # a vault point's item-level recovery session (shared/restore/ilr.py provision)
REVOKE_ILR = "revoke_ilr"  # ... revoked, if this restore opened it (``revokes``)


@dataclass(frozen=True)
class Kind:
    """A way of making a point's files reachable for a while."""

    target_type: str  # "files" | "export"
    family: str  # "disk" (snapshot sets, restore points) | "vault"
    make_steps: tuple[str, ...]
    end_steps: tuple[str, ...]
    default_hours: float
    max_hours: float
    min_hours: float = 0.0  # exclusive when 0 (any positive duration)


KINDS: dict[tuple[str, str], Kind] = {}


def register(kind: Kind) -> Kind:
    KINDS[(kind.family, kind.target_type)] = kind
    return kind


FILES = register(Kind("files", "disk", (CREATE_DISKS, ATTACH_DISKS), (REMOVE_DISKS,), 12.0, 72.0))
EXPORT = register(Kind("export", "disk", (CREATE_DISKS,), (REMOVE_DISKS,), 1.0, 24.0))
# Azure Backup's item-level recovery: default and at most Azure's 12 hours, at least a quarter of an hour
# (shared/restore/ilr.py DEFAULT_HOURS, MAX_HOURS, MIN_HOURS: a unit test checks they agree).
VAULT_FILES = register(Kind("files", "vault", (PROVISION_ILR,), (REVOKE_ILR,), 12.0, 12.0, 0.25))


def kind_of(family: str, target_type: str) -> Kind | None:
    return KINDS.get((family, target_type))


def is_leased(target_type: str) -> bool:
    return any(k.target_type == target_type for k in KINDS.values())


def expires_at(accepted: datetime, hours: float) -> datetime:
    return accepted + timedelta(seconds=round(hours * 3600))


# --- decisions on one record ------------------------------------------------------------------------------
@dataclass(frozen=True)
class View:
    """What the decisions read of a restore's record."""

    state: str
    expires_at: datetime | None
    ending: dict[str, Any] | None  # context["ending"]: {"why", "at"}
    began: bool  # a step has begun (something may have been made)
    updated_at: datetime | None


def view(record: Any) -> View:
    lease = (record.plan or {}).get("lease") or {}
    return View(record.state, parse_instant(lease.get("expires_at")), record.context.get("ending"), bool(record.steps),
                parse_instant(record.updated_at))


TERMINAL = ("succeeded", "failed", "cancelled")


def on_done(v: View) -> str:
    """What the operator's done does: ``cancel`` (nothing begun: nothing to undo), ``end``, or ``nothing``
    (ending or ended already)."""
    if v.state in TERMINAL or v.ending is not None:
        return "nothing"
    if v.state == "pending" and not v.began:
        return "cancel"
    return "end"


def on_sweep(v: View, now: datetime) -> str:
    """What the timer does with a leased restore: ``expire`` (its expiry passed: end it), ``redrive`` (it is
    ending or making and nobody has touched it for a while: a lost or poisoned message, a crashed worker; its
    steps are idempotent, so a second worker costs nothing), or ``nothing``."""
    if v.state in TERMINAL:
        return "nothing"
    if v.ending is None and v.expires_at is not None and now >= v.expires_at:
        return "expire"
    stale = v.updated_at is None or now - v.updated_at >= REDRIVE_AFTER
    if stale and (v.ending is not None or v.state in ("pending", "running")):
        return "redrive"
    return "nothing"


def next_move(v: View, next_step: str | None, now: datetime) -> tuple[str, str]:
    """What a worker does next with a leased restore: ("expire", "") — its expiry passed, end it —, ("ready", "")
    — made: ready until done or expired —, ("end", final state) — its end steps are done —, or ("run", step)."""
    if on_sweep(v, now) == "expire":
        return "expire", ""
    if next_step is not None:
        return "run", next_step
    if v.ending is None:
        return "ready", ""
    return "end", final_state(v.ending)


def on_fail(v: View) -> str:
    """A step that failed: ``undo`` (making failed: what was made is undone, then it ends failed) or ``retry`` (an end
    step: alerted once, tried again; nothing else ends it)."""
    return "undo" if v.ending is None else "retry"


def ending(why: str, now: datetime, error: dict[str, Any] | None = None) -> dict[str, Any]:
    """The context entry that turns a restore to its end steps."""
    out: dict[str, Any] = {"why": why, "at": format_instant(now)}
    if error:
        out["error"] = error
    return out


def final_state(end: dict[str, Any]) -> str:
    """A lease whose end steps are done: ``failed`` when making it failed (what it made is undone), else succeeded."""
    return "failed" if end.get("why") == FAILED_MAKING else "succeeded"


def revokes(context: dict[str, Any]) -> bool:
    """Whether a vault file recovery's end revokes the point's session: only when this restore noted, before it
    sent its provision, that no session was active (``ilr_was_active`` False) — then the session is the one it
    opened. One already active (someone else's, whose script they may be using) is not vmkeeper's to end; nor is
    anything when the provision never got as far as looking (nothing was sent)."""
    return context.get("ilr_was_active") is False


# --- what the end steps may touch ---------------------------------------------------------------------------
def ours(planned: list[str], found: dict[str, dict[str, str]], restore_id: str, tag: str) -> list[str]:
    """Of the resources the plan made (``planned`` ids), those that exist (``found``: id lower → tags) and carry
    this restore's tag: the only ones an end step detaches, revokes or deletes."""
    return [i for i in planned if (t := found.get(i.lower())) is not None and t.get(tag) == restore_id]


def detached_list(data_disks: list[dict[str, Any]], remove: list[str]) -> list[dict[str, Any]]:
    """The VM's data disks with only ``remove`` (ids) taken out: every other disk stays as it is."""
    gone = {i.lower() for i in remove}
    return [d for d in data_disks if ((d.get("managedDisk") or {}).get("id") or "").lower() not in gone]


def free_luns(used: list[int], most: int, wanted: int) -> list[int] | None:
    """The lowest LUNs free for ``wanted`` more data disks on a VM that takes ``most`` and uses ``used``; None when
    it has not room for them."""
    if len(used) + wanted > most:
        return None
    taken = set(used)
    free = [lun for lun in range(64) if lun not in taken]
    return free[:wanted]
