"""Auto-protect: a VM's Event Grid event → enrolled in Azure Backup in its region's vault, exactly once.
``events`` (pure: which events matter), ``steps`` (one protection job step), ``service`` (entry points)."""
