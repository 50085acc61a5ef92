"""Storage tables: created on first use."""

from __future__ import annotations

from ..ports import Table


def ensure_table(table: Table) -> None:
    """Create the table if it isn't there yet (idempotent)."""
    from azure.core.exceptions import ResourceExistsError

    try:
        table.create_table()
    except ResourceExistsError:
        pass


class OnFirstUse:
    """A table's owner that creates it on first use, once per instance."""

    def __init__(self, table: Table):
        self.table = table
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            ensure_table(self.table)
            self._ready = True
