"""Isolated copies (docs/isolated-copies.md): once a snapshot set is complete (its immutability and second-region
copies done), each snapshot is copied into the backup subscription, one disk at a time, with the second identity's
clients: the job runs in the same worker, only the credential differs. Production's identity has no role there, so
it can neither make nor delete these copies; the second identity has none in production beyond reading the sets
it copies (ARM's linked check on each source).

A copy is ``names.copy_name(source, region)`` in the backup group, in the source's region (createOption Copy:
Learn, "Copy snapshot of a managed disk to same or different subscription", same tenant), tagged as its set with
``vmkeeper-copy-of`` its source: retention under the second identity (shared/retention/isolated.py) judges them
as any set. Create-only, as every step: a copy found is this set's (tags, source) or the job fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import tags as T
from ..names import copy_name
from ..ports import Arm

MISSING = ("the policy asks for isolated copies, but VMKEEPER_ISOLATED_SUBSCRIPTION, VMKEEPER_ISOLATED_RESOURCE_GROUP "
           "and VMKEEPER_ISOLATED_IDENTITY_CLIENT_ID are not all set and valid (the app log's vmkeeper.isolated "
           "names the setting)")


@dataclass(frozen=True)
class IsolatedTarget:
    """Where isolated copies go, and the second identity's clients that make them."""

    subscription: str
    resource_group: str
    clients: Arm  # built on the second identity's credential (shared/wiring.py)


def region(job: dict[str, Any]) -> str:
    return str(job["location"]).replace(" ", "").lower()


def isolated_name(job: dict[str, Any], target: dict[str, Any]) -> str:
    """The copy of one of the set's snapshots in the backup subscription (vmkeeper's copy name: shared/points/owned.py)."""
    return copy_name(target["name"], region(job))


def copy_tags(job: dict[str, Any], target: dict[str, Any], source_id: str) -> dict[str, str]:
    """The set's tags, its disk's LUN, and its source: retention knows it as a copy of that set."""
    return dict(job["tags"], **{T.COPY_OF: source_id[-256:], T.LUN: str(target["lun"])})
