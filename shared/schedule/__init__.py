"""Scheduled protection: timer → plan → queue → paced workers taking snapshots and restore points.
``planner`` (pure), ``steps`` (one job step), ``service`` (entry points)."""
