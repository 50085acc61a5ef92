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
