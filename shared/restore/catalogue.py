"""The restore API's catalogue of a VM's recovery points is the inventory's (shared/points/model.py: the
pure model; shared/points/inventory.py: its reads). The names the restore module uses, from there."""

from ..points.model import (  # noqa: F401
    KINDS,
    RESTORE_POINT,
    SET_ID,
    SNAPSHOT_SET,
    VAULT,
    RecoveryPoint,
    RestoreDisk,
    expiring_note,
    merge,
    region_of,
    restore_points,
    snapshot_set_id,
    snapshot_sets,
    vault_points,
)

__all__ = ["KINDS", "RESTORE_POINT", "SET_ID", "SNAPSHOT_SET", "VAULT", "RecoveryPoint", "RestoreDisk", "expiring_note",
           "merge", "region_of", "restore_points", "snapshot_set_id", "snapshot_sets", "vault_points"]
