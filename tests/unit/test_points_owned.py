"""What vmkeeper made, by its names as well as its tags: a snapshot, a second-region copy, a restore point."""

from __future__ import annotations

from datetime import UTC, datetime

from shared import names
from shared import tags as T
from shared.points import owned as O
from shared.schedule.planner import DiskRef

RG = "/subscriptions/6d4a5a5c-2f4e-4c5e-9f5b-3c3f2d1e0a9b/resourceGroups/rg-prod"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/Web-01"
DISK = f"{RG}/providers/Microsoft.Compute/disks/web-01-data-0"
SLOT = datetime(2026, 11, 25, 6, tzinfo=UTC)
TAGS = {T.MANAGED_BY: T.MANAGED_BY_VALUE, T.VM: VM.lower(), T.SLOT: "2026-11-25T06:00:00Z", T.SET: "0123456789abcdef",
        T.LUN: "0"}
NAME = names.snapshot_name("Web-01", DiskRef(DISK, "", 0), SLOT)


def row(name: str, *, tags: dict = TAGS, source: str = DISK, location: str = "westeurope", option: str = "Copy") -> dict:
    return {"id": f"{RG}/providers/Microsoft.Compute/snapshots/{name}", "location": location, "tags": dict(tags),
            "source": source, "option": option}


def test_a_snapshot_is_vmkeepers_only_under_the_name_vmkeeper_derives_from_its_vm_disk_and_slot():
    assert O.snapshot_is_vmkeepers(NAME, TAGS, DISK)
    assert O.snapshot_is_vmkeepers(NAME.upper(), TAGS, DISK.upper())  # Azure's names are case-insensitive
    assert not O.snapshot_is_vmkeepers("before-upgrade", TAGS, DISK)  # tags copied, named by hand
    assert not O.snapshot_is_vmkeepers(NAME, TAGS, DISK + "-other")  # another disk's snapshot under this name
    assert not O.snapshot_is_vmkeepers(NAME, {**TAGS, T.LUN: "1"}, DISK)
    assert not O.snapshot_is_vmkeepers(NAME, {**TAGS, T.SLOT: "2026-11-25T07:00:00Z"}, DISK)
    assert not O.snapshot_is_vmkeepers(NAME, {k: v for k, v in TAGS.items() if k != T.SLOT}, DISK)
    assert not O.snapshot_is_vmkeepers(NAME, TAGS, "")


def test_a_copy_is_vmkeepers_under_its_sources_name_in_its_region_and_only_if_its_source_is():
    copy_tags = {**TAGS, T.COPY_OF: row(NAME)["id"]}
    source, forged = row(NAME), row("before-upgrade")
    copy = row(names.copy_name(NAME, "northeurope"), tags=copy_tags, source=source["id"], location="North Europe",
               option="CopyStart")
    hand = row("my-copy", tags=copy_tags, source=source["id"], location="northeurope", option="CopyStart")
    of_forged = row(names.copy_name("before-upgrade", "northeurope"), tags=copy_tags, source=forged["id"],
                    location="northeurope", option="CopyStart")
    owned = O.owned_snapshots([source, forged, copy, hand, of_forged])
    assert owned == {source["id"].lower(), copy["id"].lower()}
    # Its source no longer listed (deleted by retention): the source's name must still be vmkeeper's for it.
    assert O.owned_snapshots([copy]) == {copy["id"].lower()}
    assert O.owned_snapshots([of_forged]) == set()
    # Not managed at all: not vmkeeper's, whatever its name.
    assert O.owned_snapshots([row(NAME, tags={k: v for k, v in TAGS.items() if k != T.MANAGED_BY})]) == set()


def test_a_restore_point_is_vmkeepers_only_under_its_derived_name():
    name = names.restore_point_name(VM, SLOT)
    assert O.restore_point_is_vmkeepers(name, VM.lower()) and O.restore_point_slot(name) == SLOT
    assert not O.restore_point_is_vmkeepers("vmk-rp-202611250600-00000000", VM.lower())
    assert not O.restore_point_is_vmkeepers(name, None) and not O.restore_point_is_vmkeepers("by-hand", VM)
    assert O.restore_point_slot("vmk-rp-202613250600-00000000") is None
