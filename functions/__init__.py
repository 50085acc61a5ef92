"""Thin trigger adapters: each module owns one blueprint that translates a trigger into a call
into ``shared``. ``BLUEPRINTS`` lists them for function_app.py."""

from . import (
    autoprotect,
    compliance,
    cost,
    drill,
    failover,
    health,
    replication,
    report,
    restore,
    retention,
    scheduled,
)

BLUEPRINTS = (health.bp, autoprotect.bp, scheduled.bp, retention.bp, restore.bp, compliance.bp, report.bp, drill.bp,
              replication.bp, failover.bp, cost.bp)
