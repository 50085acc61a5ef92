"""The one place vmkeeper is wired: from app settings and a credential, the real clients, tables
and queues, and the services built on them. Trigger adapters ask ``current()``; local tools and
tests build a ``Wiring`` of their own (a static credential, the emulator, Azurite) and
``use()`` it, so they run the very services the platform runs.

Nothing is built before it is needed (cold start), and everything built is kept for the life of
the process (connection pools, the write budget's ETag), here and nowhere else.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # the types only: nothing heavy is imported before it is needed
    from .alerts.outbox import Alerts
    from .autoprotect.service import AutoProtect
    from .azure.clients import ArmClients, Storage
    from .azure.pacing import WriteBudget
    from .compliance.service import ComplianceService
    from .cost.service import CostService
    from .drill.service import Drills
    from .failover.api import FailoverApi
    from .failover.keeper import RecoveryPlans
    from .failover.service import Failovers
    from .replication.service import Replication
    from .report.api import ReportApi
    from .report.service import Reports
    from .restore.api import RestoreApi
    from .restore.service import Restores
    from .retention.service import Retention
    from .schedule.service import Schedule
    from .settings import (
        AlertSettings,
        ComplianceSettings,
        CostSettings,
        DrillSettings,
        FailoverSettings,
        FleetSettings,
        IsolatedSettings,
        ProtectSettings,
        ReplicationSettings,
        RestoreSettings,
    )

T = TypeVar("T")


class Wiring:
    def __init__(self, env: Mapping[str, str] | None = None, credential: Any = None,
                 arm_options: Mapping[str, Any] | None = None, isolated_credential: Any = None):
        self.env = os.environ if env is None else env
        self._credential = credential
        self._isolated_credential = isolated_credential  # the second identity's (isolated copies), if given
        self._arm_options = dict(arm_options or {})
        self._lock = threading.RLock()
        self._built: dict[str, Any] = {}

    def _once(self, name: str, make: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._built:
                self._built[name] = make()
            return self._built[name]

    # --- Azure -------------------------------------------------------------------------------
    def credential(self) -> Any:
        """The app's managed identity (``AZURE_CLIENT_ID`` picks a user-assigned one), unless one was given."""
        def make() -> Any:
            if self._credential is not None:
                return self._credential
            from azure.identity import ManagedIdentityCredential

            client_id = self.env.get("AZURE_CLIENT_ID")
            return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
        return self._once("credential", make)

    @property
    def arm(self) -> ArmClients:
        from .azure.clients import ArmClients
        from .settings import AzureSettings

        return self._once("arm", lambda: ArmClients(AzureSettings.from_env(self.env), self.credential,
                                                    **self._arm_options))

    # --- isolated copies: the second identity (docs/isolated-copies.md) ----------------------------
    @property
    def isolated_settings(self) -> IsolatedSettings | None:
        from .settings import IsolatedSettings

        return self._once("isolated_settings", lambda: IsolatedSettings.from_env(self.env))

    def isolated_credential(self) -> Any:
        """The second identity: the user-assigned managed identity VMKEEPER_ISOLATED_IDENTITY_CLIENT_ID names (never
        the app's own: without it, and none given, there is no credential for the backup subscription)."""
        def make() -> Any:
            if self._isolated_credential is not None:
                return self._isolated_credential
            from azure.identity import ManagedIdentityCredential

            from .settings import SettingError

            s = self.isolated_settings
            if s is None or s.identity_client_id is None:
                raise SettingError("VMKEEPER_ISOLATED_IDENTITY_CLIENT_ID: required for isolated copies")
            return ManagedIdentityCredential(client_id=s.identity_client_id)
        return self._once("isolated_credential", make)

    @property
    def isolated_arm(self) -> ArmClients:
        """ARM clients on the second identity's credential (their own user agent: another role's calls)."""
        from .azure.clients import ISOLATED_USER_AGENT, ArmClients
        from .settings import AzureSettings

        return self._once("isolated_arm", lambda: ArmClients(AzureSettings.from_env(self.env), self.isolated_credential,
                                                             **{**self._arm_options, "user_agent": ISOLATED_USER_AGENT}))

    def isolated_target(self) -> Any:
        """Where the worker copies completed sets (shared/schedule/isolated.py), or None when not set up."""
        import logging

        from .schedule.isolated import IsolatedTarget
        from .settings import SettingError

        try:
            s = self.isolated_settings
        except SettingError as exc:  # the sets are still made: a policy's isolated step fails, naming the setting
            logging.getLogger("vmkeeper.isolated").error("isolated copies not set up: %s", exc)
            return None
        return IsolatedTarget(s.subscription, s.resource_group, self.isolated_arm) if s else None

    @property
    def isolated_retention(self) -> Retention | None:
        """Retention of the isolated copies, with the second identity over the backup subscription alone; the fleet's
        VMs read with the app's identity (shared/retention/isolated.py). None when not set up."""
        def make() -> Any:
            from datetime import timedelta

            from .azure.graph import query_all
            from .azure.ledger import Ledger
            from .azure.pacing import WriteBudget
            from .retention.service import VMS_QUERY, Retention

            iso, s = self.isolated_settings, self.fleet_settings
            if iso is None:
                return None
            budget = WriteBudget(self.storage.table(s.budget_table), rate=s.delete_rate, burst=s.delete_burst)
            return Retention(self.isolated_arm, Ledger(self.storage.table(s.ledger_table)), budget, [iso.subscription],
                             policy_file=s.policy_file, dry_run=s.retention_dry_run, write_budget=self.write_budget,
                             alerts=self.alerts, restores=self.storage.table(s.restore_table),
                             copy_timeout=timedelta(hours=s.copy_timeout_hours), lock_group=iso.resource_group,
                             vms=lambda: list(query_all(self.arm.resource_graph(), list(s.subscriptions), VMS_QUERY)))
        return self._once("isolated_retention", make)

    @property
    def storage(self) -> Storage:
        from .azure.clients import Storage

        return self._once("storage", lambda: Storage(self.env, self.credential))

    # --- settings ----------------------------------------------------------------------------
    @property
    def protect_settings(self) -> ProtectSettings:
        from .settings import ProtectSettings

        return self._once("protect_settings", lambda: ProtectSettings.from_env(self.env))

    @property
    def fleet_settings(self) -> FleetSettings:
        from .settings import FleetSettings

        return self._once("fleet_settings", lambda: FleetSettings.from_env(self.env))

    # --- services ----------------------------------------------------------------------------
    @property
    def autoprotect(self) -> AutoProtect:
        def make() -> Any:
            from .autoprotect.service import AutoProtect
            from .azure.ledger import Ledger

            s = self.protect_settings
            return AutoProtect(s, self.arm, self.storage.queue(s.queue), self.storage.queue(f"{s.queue}-poison"),
                               Ledger(self.storage.table(s.ledger_table)), self.alerts)
        return self._once("autoprotect", make)

    @property
    def write_budget(self) -> WriteBudget:
        """The scheduled writes' budget: one per process (its lock and ETag), for the planner and every worker."""
        def make() -> Any:
            from .azure.pacing import WriteBudget

            s = self.fleet_settings
            return WriteBudget(self.storage.table(s.budget_table), rate=s.write_rate, burst=s.write_burst)
        return self._once("write_budget", make)

    @property
    def schedule(self) -> Schedule:
        def make() -> Any:
            from .azure.ledger import Ledger
            from .schedule.service import Schedule

            s = self.fleet_settings
            return Schedule(s, self.arm, self.storage.queue(s.jobs_queue), self.storage.queue(f"{s.jobs_queue}-poison"),
                            Ledger(self.storage.table(s.ledger_table)), self.write_budget, self.alerts,
                            isolated=self.isolated_target())
        return self._once("schedule", make)

    @property
    def retention(self) -> Retention:
        def make() -> Any:
            from datetime import timedelta

            from .azure.ledger import Ledger
            from .azure.pacing import WriteBudget
            from .retention.service import Retention

            s, iso = self.fleet_settings, self.isolated_settings
            budget = WriteBudget(self.storage.table(s.budget_table), rate=s.delete_rate, burst=s.delete_burst)
            # Copies in flight into the backup subscription pin their sources: read there with the second identity.
            elsewhere = None
            if iso is not None:
                from .retention.isolated import in_flight

                def elsewhere() -> list:
                    return in_flight(self.isolated_arm.resource_graph(), iso.subscription, iso.resource_group)
            # Marks and unmarks are ARM writes: they take from the scheduled writes' bucket (ARM's is one per
            # subscription), only while it has tokens, so the workers' promised writes go first.
            # What is in use is pinned: the schedule's jobs (in the ledger) and the restores (their table).
            return Retention(self.arm, Ledger(self.storage.table(s.ledger_table)), budget, list(s.subscriptions),
                             policy_file=s.policy_file, dry_run=s.retention_dry_run, write_budget=self.write_budget,
                             alerts=self.alerts, restores=self.storage.table(s.restore_table),
                             copy_timeout=timedelta(hours=s.copy_timeout_hours), copies_elsewhere=elsewhere)
        return self._once("retention", make)


    @property
    def restore_settings(self) -> RestoreSettings:
        from .settings import RestoreSettings

        return self._once("restore_settings", lambda: RestoreSettings.from_env(self.env))

    @property
    def restores(self) -> Restores:
        def make() -> Any:
            from .restore.records import Records
            from .restore.service import Restores

            s, iso = self.restore_settings, self.isolated_settings
            # Isolated copies are offered and restored with the app's own identity (read-only there): restores
            # do not depend on the second identity (docs/isolated-copies.md).
            return Restores(s, self.arm, self.storage.queue(s.queue), self.storage.queue(f"{s.queue}-poison"),
                            Records(self.storage.table(s.table)), alerts=self.alerts,
                            isolated=(iso.subscription, iso.resource_group) if iso else None)
        return self._once("restores", make)

    @property
    def restore_api(self) -> RestoreApi:
        """The HTTP side: builds the service only when a request needs it (not for a 401)."""
        from .restore.api import RestoreApi

        return self._once("restore_api", lambda: RestoreApi(lambda: self.restores))

    # --- Site Recovery: recovery plans and failovers ---------------------------------------------------
    @property
    def failover_settings(self) -> FailoverSettings:
        from .settings import FailoverSettings

        return self._once("failover_settings", lambda: FailoverSettings.from_env(self.env))

    def _failover_records(self) -> Any:
        from .failover.records import Records

        return self._once("failover_records", lambda: Records(self.storage.table(self.failover_settings.table)))

    @property
    def recovery_plans(self) -> RecoveryPlans:
        def make() -> Any:
            from .failover.keeper import RecoveryPlans
            from .settings import AzureSettings

            return RecoveryPlans(self.failover_settings, self.arm, self._failover_records(), self.alerts,
                                 AzureSettings.from_env(self.env).arm_endpoint)
        return self._once("recovery_plans", make)

    @property
    def failovers(self) -> Failovers:
        def make() -> Any:
            from .failover.service import Failovers
            from .settings import AzureSettings

            s = self.failover_settings
            return Failovers(s, self.arm, self.storage.queue(s.queue), self.storage.queue(f"{s.queue}-poison"),
                             self._failover_records(), alerts=self.alerts,
                             arm_endpoint=AzureSettings.from_env(self.env).arm_endpoint)
        return self._once("failovers", make)

    @property
    def failover_api(self) -> FailoverApi:
        """The HTTP side: builds the service only when a request needs it (not for a 401 or 403)."""
        from .failover.api import FailoverApi

        return self._once("failover_api", lambda: FailoverApi(lambda: self.failovers))

    # --- the operator's view ----------------------------------------------------------------------
    @property
    def alert_settings(self) -> AlertSettings:
        from .settings import AlertSettings

        return self._once("alert_settings", lambda: AlertSettings.from_env(self.env))

    @property
    def alerts(self) -> Alerts:
        """The alerts outbox: recorded always, published when a topic is set (with the app's identity)."""
        def make() -> Any:
            from .alerts.outbox import Alerts
            from .alerts.publisher import TopicPublisher
            from .settings import AzureSettings

            s = self.alert_settings
            publish = (TopicPublisher(s.topic_endpoint, self.credential, AzureSettings.from_env(self.env).ca_bundle)
                       if s.topic_endpoint else None)
            return Alerts(self.storage.table(s.table), publish, s.source)
        return self._once("alerts", make)

    @property
    def compliance_settings(self) -> ComplianceSettings:
        from .settings import ComplianceSettings

        return self._once("compliance_settings", lambda: ComplianceSettings.from_env(self.env))

    @property
    def compliance(self) -> ComplianceService:
        def make() -> Any:
            from .azure.ledger import Ledger
            from .compliance.service import ComplianceService

            s, iso = self.compliance_settings, self.isolated_settings
            return ComplianceService(s, self.arm, Ledger(self.storage.table(s.ledger_table)), self.alerts,
                                     (iso.subscription, iso.resource_group) if iso else None)
        return self._once("compliance", make)

    @property
    def reports(self) -> Reports:
        def make() -> Any:
            from .azure.ledger import Ledger
            from .report.service import Reports
            from .restore.records import Records

            s = self.compliance_settings
            return Reports(self.compliance, Ledger(self.storage.table(s.ledger_table)), self.alerts,
                           Records(self.storage.table(self.restore_settings.table)), self.drills,
                           lambda: self.cost)
        return self._once("reports", make)

    @property
    def drill_settings(self) -> DrillSettings:
        from .settings import DrillSettings

        return self._once("drill_settings", lambda: DrillSettings.from_env(self.env))

    @property
    def drills(self) -> Drills:
        def make() -> Any:
            from .azure.ledger import Ledger
            from .drill.service import Drills

            s = self.drill_settings
            return Drills(s, self.arm, self.storage.queue(s.queue), self.storage.queue(f"{s.queue}-poison"),
                          Ledger(self.storage.table(s.ledger_table)), self.restores, self.alerts)
        return self._once("drills", make)

    @property
    def report_api(self) -> ReportApi:
        from .report.api import ReportApi

        return self._once("report_api", lambda: ReportApi(lambda: self.reports))


    # --- cost per VM ------------------------------------------------------------------------------------------
    @property
    def cost_settings(self) -> CostSettings:
        from .settings import CostSettings

        return self._once("cost_settings", lambda: CostSettings.from_env(self.env))

    @property
    def cost(self) -> CostService:
        def make() -> Any:
            from .azure.ledger import Ledger
            from .cost.prices import RetailPrices
            from .cost.service import CostService

            s = self.cost_settings
            ledger = Ledger(self.storage.table(s.table))
            return CostService(s, self.arm, ledger, RetailPrices(s.retail_prices_url, ledger, s.ca_bundle), self.alerts)
        return self._once("cost", make)

    # --- Site Recovery ----------------------------------------------------------------------------------------
    @property
    def replication_settings(self) -> ReplicationSettings:
        from .settings import ReplicationSettings

        return self._once("replication_settings", lambda: ReplicationSettings.from_env(self.env))

    @property
    def replication(self) -> Replication:
        def make() -> Any:
            from .azure.ledger import Ledger
            from .replication.service import Replication
            from .settings import AzureSettings

            s = self.replication_settings
            return Replication(s, self.arm, self.storage.queue(s.queue), self.storage.queue(f"{s.queue}-poison"),
                               Ledger(self.storage.table(s.ledger_table)), self.alerts,
                               AzureSettings.from_env(self.env).arm_endpoint)
        return self._once("replication", make)


_current: Wiring | None = None
_current_lock = threading.Lock()


def current() -> Wiring:
    """The process's wiring: from the app settings, on first use."""
    global _current
    with _current_lock:
        if _current is None:
            _current = Wiring()
        return _current


def use(wiring: Wiring | None) -> Wiring | None:
    """Make ``wiring`` the process's (local tools and tests); None goes back to the app settings."""
    global _current
    with _current_lock:
        _current = wiring
    return wiring
