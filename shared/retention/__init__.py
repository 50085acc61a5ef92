"""Retention: deletes only what vmkeeper made and what has expired.
``engine`` (pure decisions), ``service`` (list, decide, apply)."""
