"""App settings (environment variables in Azure Functions), read once and validated: a bad
setting fails at start with a message naming it."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import resource_ids, tags

REGION = re.compile(r"^[a-z0-9]+$")
# The app's code: the directory of function_app.py, shared/'s parent. A relative VMKEEPER_POLICY_FILE is a file
# shipped with the code, found from here: where the platform mounts the package (Flex Consumption doesn't say) and
# the worker's current directory are not ours to assume.
APP_ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("vmkeeper.settings")
# Settings auto-protect no longer reads: the policy document (VMKEEPER_POLICY_FILE) says which Azure
# Backup policy a VM gets (each policy's ``backup_policy``), and the tags are the document's own.
RETIRED = {
    "VMKEEPER_BACKUP_POLICIES": "each policy's backup_policy in VMKEEPER_POLICY_FILE",
    "VMKEEPER_DEFAULT_BACKUP_POLICY": "the backup_policy of the document's default policy in VMKEEPER_POLICY_FILE",
    "VMKEEPER_POLICY_TAG": f"the tag '{tags.POLICY}', as for scheduled protection",
    "VMKEEPER_OPTOUT_TAG": f"the tag '{tags.OPT_OUT}', as for scheduled protection",
}


class SettingError(ValueError):
    """A setting is missing or malformed; the message names it."""


def _get(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name)
    if value is None or value.strip() == "":
        if default is None:
            raise SettingError(f"{name}: required setting is missing")
        return default
    return value.strip()


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = _get(env, name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"{name}: must be an integer (got {raw!r})") from None
    if not low <= value <= high:
        raise SettingError(f"{name}: must be between {low} and {high} (got {value})")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _get(env, name, "true" if default else "false").lower()
    if raw in tags.TRUE_VALUES:
        return True
    if raw in tags.FALSE_VALUES:
        return False
    raise SettingError(f"{name}: must be true or false (got {raw!r})")


def _json_object(env: Mapping[str, str], name: str, default: str = "{}") -> dict:
    raw = _get(env, name, default)
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise SettingError(f"{name}: must be a JSON object ({exc})") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise SettingError(f"{name}: must be a JSON object of strings")
    return value


def _policy_file(env: Mapping[str, str]) -> str:
    """``VMKEEPER_POLICY_FILE``: an absolute path as given, a relative one under the app's code (APP_ROOT)."""
    path = str(APP_ROOT / _get(env, "VMKEEPER_POLICY_FILE"))  # an absolute right-hand side wins
    path = os.path.normpath(path)
    if not os.path.isfile(path):
        raise SettingError(f"VMKEEPER_POLICY_FILE: no such file {path!r}")
    return path


def _warn_retired(env: Mapping[str, str]) -> None:
    for name, instead in RETIRED.items():
        if env.get(name, "").strip():
            log.warning("%s: no longer read, ignored; auto-protect uses %s", name, instead)


@dataclass(frozen=True)
class AzureSettings:
    """Where Azure is: Resource Manager's endpoint (Bicep sets this cloud's, ``environment().resourceManager``),
    and (local development only) a CA bundle."""

    arm_endpoint: str = "https://management.azure.com"
    ca_bundle: str | None = None

    @property
    def arm_scope(self) -> str:
        """The token scope for Resource Manager: its endpoint is an audience it accepts in every cloud (Azure
        China's tokens are for management.chinacloudapi.cn, not management.azure.com)."""
        return f"{self.arm_endpoint}/.default"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AzureSettings:
        env = os.environ if env is None else env
        endpoint = _get(env, "VMKEEPER_ARM_ENDPOINT", cls.arm_endpoint).rstrip("/")
        if not endpoint.startswith("https://"):
            raise SettingError(f"VMKEEPER_ARM_ENDPOINT: must be an https URL (got {endpoint!r})")
        ca = env.get("VMKEEPER_ARM_CA_BUNDLE") or None
        if ca and not os.path.isfile(ca):
            raise SettingError(f"VMKEEPER_ARM_CA_BUNDLE: no such file {ca!r}")
        return cls(endpoint, ca)


def _vaults(env: Mapping[str, str]) -> dict[str, str]:
    """``VMKEEPER_VAULTS``: region → the Recovery Services vault that protects it."""
    vaults = {}
    for region, vault_id in _json_object(env, "VMKEEPER_VAULTS").items():
        key = region.replace(" ", "").lower()
        if not REGION.match(key):
            raise SettingError(f"VMKEEPER_VAULTS: {region!r} is not a region name (e.g. westeurope)")
        if resource_ids.vault(vault_id) is None:
            raise SettingError(f"VMKEEPER_VAULTS.{key}: {vault_id!r} is not a Recovery Services vault id")
        vaults[key] = vault_id
    return vaults


@dataclass(frozen=True)
class ProtectSettings:
    """Auto-protect: which vault protects each region; the policy document says which Azure Backup
    policy a VM gets (its vmkeeper policy's ``backup_policy``)."""

    vaults: dict[str, str]  # region → Recovery Services vault id
    policy_file: str  # the policy document (shared/policy/document.py), as for scheduled protection
    backup_now: bool
    stop_protection_on_delete: bool  # stop protection, retaining data; recovery points are never deleted
    queue: str
    ledger_table: str
    retry_seconds: int  # first delay before looking again (VM still Creating, not yet discoverable)
    retry_max_seconds: int
    max_attempts: int
    subscriptions: tuple[str, ...] = ()  # the sweep's scope (VMKEEPER_SUBSCRIPTIONS); the event path needs none
    sweep_retry_hours: int = 24  # a VM the sweep could not enrol is sent again after this, or at once when an input changes
    sweep_recheck_hours: int = 24  # a VM recorded protected is looked at again after this (protection stopped outside)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProtectSettings:
        env = os.environ if env is None else env
        subs = tuple(s.strip().lower() for s in (env.get("VMKEEPER_SUBSCRIPTIONS") or "").split(",") if s.strip())
        bad = [s for s in subs if not resource_ids.GUID.match(s)]
        if bad:
            raise SettingError(f"VMKEEPER_SUBSCRIPTIONS: comma-separated subscription ids (bad: {', '.join(bad)})")
        settings = cls(
            vaults=_vaults(env),
            policy_file=_policy_file(env),
            backup_now=_bool(env, "VMKEEPER_BACKUP_NOW", False),
            stop_protection_on_delete=_bool(env, "VMKEEPER_STOP_PROTECTION_ON_DELETE", True),
            queue=_get(env, "VMKEEPER_PROTECT_QUEUE", "vmkeeper-protect"),
            ledger_table=_get(env, "VMKEEPER_PROTECT_TABLE", "vmkeeperprotection"),
            retry_seconds=_int(env, "VMKEEPER_PROTECT_RETRY_SECONDS", 10, 1, 3600),
            retry_max_seconds=_int(env, "VMKEEPER_PROTECT_RETRY_MAX_SECONDS", 300, 1, 86400),
            max_attempts=_int(env, "VMKEEPER_PROTECT_MAX_ATTEMPTS", 12, 1, 1000),
            subscriptions=subs,
            sweep_retry_hours=_int(env, "VMKEEPER_PROTECT_SWEEP_RETRY_HOURS", 24, 1, 24 * 30),
            sweep_recheck_hours=_int(env, "VMKEEPER_PROTECT_SWEEP_RECHECK_HOURS", 24, 1, 24 * 30),
        )
        _warn_retired(env)
        return settings


@dataclass(frozen=True)
class FleetSettings:
    """Scheduled protection and retention: which subscriptions, which policies, how fast."""

    subscriptions: tuple[str, ...]
    policy_file: str
    jobs_queue: str
    ledger_table: str
    budget_table: str
    write_rate: float  # per second per subscription: under ARM's refill of 10/s, leaving room for others
    write_burst: int
    delete_rate: float
    delete_burst: int
    retention_dry_run: bool
    copy_timeout_hours: int  # a cross-region copy's job gives up after this long (copies take hours)
    restore_table: str = "vmkeeperrestores"  # the restores' rows: retention reads which points they pin
    vaults: dict[str, str] = field(default_factory=dict)  # VMKEEPER_VAULTS: whose Site Recovery items name test VMs

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FleetSettings:
        env = os.environ if env is None else env
        subs = tuple(s.strip().lower() for s in _get(env, "VMKEEPER_SUBSCRIPTIONS").split(",") if s.strip())
        bad = [s for s in subs if not resource_ids.GUID.match(s)]
        if not subs or bad:
            raise SettingError(f"VMKEEPER_SUBSCRIPTIONS: comma-separated subscription ids (bad: {', '.join(bad) or 'none given'})")
        return cls(
            subscriptions=subs,
            policy_file=_policy_file(env),
            jobs_queue=_get(env, "VMKEEPER_JOBS_QUEUE", "vmkeeper-jobs"),
            ledger_table=_get(env, "VMKEEPER_LEDGER_TABLE", "vmkeeperledger"),
            budget_table=_get(env, "VMKEEPER_BUDGET_TABLE", "vmkeeperbudget"),
            write_rate=float(_int(env, "VMKEEPER_WRITES_PER_SECOND", 8, 1, 1000)),
            write_burst=_int(env, "VMKEEPER_WRITE_BURST", 150, 1, 10000),
            delete_rate=float(_int(env, "VMKEEPER_DELETES_PER_SECOND", 8, 1, 1000)),
            delete_burst=_int(env, "VMKEEPER_DELETE_BURST", 150, 1, 10000),
            retention_dry_run=_bool(env, "VMKEEPER_RETENTION_DRY_RUN", False),
            copy_timeout_hours=_int(env, "VMKEEPER_COPY_TIMEOUT_HOURS", 24, 1, 24 * 14),
            restore_table=_get(env, "VMKEEPER_RESTORE_TABLE", "vmkeeperrestores"),
            vaults=_vaults(env),
        )


@dataclass(frozen=True)
class RestoreSettings:
    """On-demand restores: where they may go, which VMs' points may be read, where their state lives."""

    subscriptions: tuple[str, ...]  # the fleet's: whose VMs' recovery points may be listed and restored
    scopes: str  # VMKEEPER_RESTORE_SCOPES, the allow-list of target subscriptions and groups (access.Scopes)
    vaults: dict[str, str]  # region → vault, for Azure Backup recovery points
    queue: str
    table: str
    # VMKEEPER_RESTORE_STAGING_ACCOUNTS: the storage accounts infra granted vmkeeper's staging role on (lower-case
    # ids); a vault restore naming another is refused up front, as Azure would refuse it mid-way. None (setting
    # absent, e.g. a local run): not checked.
    staging_accounts: frozenset[str] | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RestoreSettings:
        from .access import BadId, Scopes, parse_id

        env = os.environ if env is None else env
        subs = tuple(s.strip().lower() for s in _get(env, "VMKEEPER_SUBSCRIPTIONS").split(",") if s.strip())
        scopes = env.get("VMKEEPER_RESTORE_SCOPES", "")
        try:
            Scopes.parse(scopes)
        except ValueError as exc:
            raise SettingError(str(exc)) from None
        staging = None
        if "VMKEEPER_RESTORE_STAGING_ACCOUNTS" in env:
            staging = set()
            for entry in (e.strip() for e in env["VMKEEPER_RESTORE_STAGING_ACCOUNTS"].replace(";", ",").split(",")):
                if not entry:
                    continue
                try:
                    staging.add(parse_id(entry, "storage_account").id.lower())
                except BadId as exc:
                    raise SettingError(f"VMKEEPER_RESTORE_STAGING_ACCOUNTS: {exc}") from None
            staging = frozenset(staging)
        return cls(subs, scopes, _vaults(env), _get(env, "VMKEEPER_RESTORE_QUEUE", "vmkeeper-restores"),
                   _get(env, "VMKEEPER_RESTORE_TABLE", "vmkeeperrestores"), staging)


@dataclass(frozen=True)
class AlertSettings:
    """Alerts: the Event Grid custom topic they are published to (none: recorded, not published)."""

    topic_endpoint: str | None  # the topic's properties.endpoint
    table: str
    source: str  # the CloudEvents ``source``: this app

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AlertSettings:
        env = os.environ if env is None else env
        endpoint = (env.get("VMKEEPER_ALERTS_TOPIC_ENDPOINT") or "").strip() or None
        if endpoint and not re.match(r"^https://[^/\s]+/\S*$", endpoint):
            raise SettingError(f"VMKEEPER_ALERTS_TOPIC_ENDPOINT: must be the topic's https endpoint (got {endpoint!r})")
        site = (env.get("WEBSITE_SITE_NAME") or "").strip()
        return cls(endpoint, _get(env, "VMKEEPER_ALERTS_TABLE", "vmkeeperalerts"),
                   f"/vmkeeper/{site}" if site else "/vmkeeper")


@dataclass(frozen=True)
class ComplianceSettings:
    """RPO compliance: the fleet's subscriptions and policies, and the vaults whose recovery points count."""

    subscriptions: tuple[str, ...]
    policy_file: str
    vaults: dict[str, str]
    ledger_table: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ComplianceSettings:
        env = os.environ if env is None else env
        fleet = FleetSettings.from_env(env)
        return cls(fleet.subscriptions, fleet.policy_file, _vaults(env), fleet.ledger_table)


@dataclass(frozen=True)
class DrillSettings:
    """DR drills: the fleet's subscriptions and policies (each policy's ``drill`` block), and the drills' queue;
    replica drills look for a VM's replicated item in the Recovery Services vaults of ``VMKEEPER_VAULTS``."""

    subscriptions: tuple[str, ...]
    policy_file: str
    queue: str
    ledger_table: str
    vaults: dict[str, str] = field(default_factory=dict)  # region → vault id: where replicated items are listed

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DrillSettings:
        env = os.environ if env is None else env
        fleet = FleetSettings.from_env(env)
        return cls(fleet.subscriptions, fleet.policy_file, _get(env, "VMKEEPER_DRILL_QUEUE", "vmkeeper-drills"),
                   fleet.ledger_table, _vaults(env))


@dataclass(frozen=True)
class ReplicationSettings:
    """Site Recovery (shared/replication/): the vaults (the target region's vault replicates into it), the policy
    document (each policy's ``replication`` block), the replication jobs' queue, and how patiently to wait."""

    vaults: dict[str, str]  # region → Recovery Services vault id (VMKEEPER_VAULTS, as for Azure Backup)
    policy_file: str
    queue: str
    ledger_table: str  # the fleet's ledger: a row per VM in the partition "replication" (the report reads it)
    subscriptions: tuple[str, ...]  # the sweep's scope (VMKEEPER_SUBSCRIPTIONS); the event path needs none
    retry_seconds: int
    retry_max_seconds: int
    max_attempts: int  # looks at something not ready yet (a VM being created, an object another job makes)
    timeout_hours: int  # initial replication may take this long before the job gives up (and alerts)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReplicationSettings:
        env = os.environ if env is None else env
        subs = tuple(s.strip().lower() for s in (env.get("VMKEEPER_SUBSCRIPTIONS") or "").split(",") if s.strip())
        bad = [s for s in subs if not resource_ids.GUID.match(s)]
        if bad:
            raise SettingError(f"VMKEEPER_SUBSCRIPTIONS: comma-separated subscription ids (bad: {', '.join(bad)})")
        return cls(
            vaults=_vaults(env),
            policy_file=_policy_file(env),
            queue=_get(env, "VMKEEPER_REPLICATION_QUEUE", "vmkeeper-replication"),
            ledger_table=_get(env, "VMKEEPER_LEDGER_TABLE", "vmkeeperledger"),
            subscriptions=subs,
            retry_seconds=_int(env, "VMKEEPER_REPLICATION_RETRY_SECONDS", 15, 1, 3600),
            retry_max_seconds=_int(env, "VMKEEPER_REPLICATION_RETRY_MAX_SECONDS", 600, 1, 86400),
            max_attempts=_int(env, "VMKEEPER_REPLICATION_MAX_ATTEMPTS", 40, 1, 1000),
            timeout_hours=_int(env, "VMKEEPER_REPLICATION_TIMEOUT_HOURS", 72, 1, 24 * 14),
        )


@dataclass(frozen=True)
class FailoverSettings:
    """Site Recovery failovers and the recovery plans kept per application: the fleet's subscriptions, the vaults
    whose replicated items are read (VMKEEPER_VAULTS: the target-region vault is one of them), where a failover may
    write (the restores' allow-list), and the failovers' queue and table."""

    subscriptions: tuple[str, ...]
    scopes: str  # VMKEEPER_RESTORE_SCOPES: a failover writes only into groups it admits (access.Scopes)
    vaults: dict[str, str]
    queue: str
    table: str  # the failovers' rows, and the recovery plans vmkeeper made (a partition each)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FailoverSettings:
        env = os.environ if env is None else env
        restores = RestoreSettings.from_env(env)
        return cls(restores.subscriptions, restores.scopes, restores.vaults,
                   _get(env, "VMKEEPER_FAILOVER_QUEUE", "vmkeeper-failovers"),
                   _get(env, "VMKEEPER_FAILOVER_TABLE", "vmkeeperfailovers"))


@dataclass(frozen=True)
class CostSettings:
    """Cost per VM (shared/cost/): the fleet's subscriptions (each one Cost Management scope) and policies (their
    budgets), where the public Retail Prices API is, how far Cost Management's data lags usage, and the table the
    results, the price sheet's daily copy and each scope's next allowed query are kept in."""

    subscriptions: tuple[str, ...]
    policy_file: str
    table: str
    retail_prices_url: str
    data_lag_hours: int
    ca_bundle: str | None = None  # local development: the CA the Retail Prices endpoint's certificate chains to

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CostSettings:
        env = os.environ if env is None else env
        fleet = FleetSettings.from_env(env)
        url = _get(env, "VMKEEPER_RETAIL_PRICES_URL", "https://prices.azure.com/api/retail/prices").rstrip("/")
        if not url.startswith("https://"):
            raise SettingError(f"VMKEEPER_RETAIL_PRICES_URL: must be an https URL (got {url!r})")
        return cls(fleet.subscriptions, fleet.policy_file, _get(env, "VMKEEPER_COST_TABLE", "vmkeepercost"), url,
                   _int(env, "VMKEEPER_COST_DATA_LAG_HOURS", 24, 0, 24 * 7), AzureSettings.from_env(env).ca_bundle)


@dataclass(frozen=True)
class IsolatedSettings:
    """Isolated copies (docs/isolated-copies.md): the backup subscription and group a second identity pulls copies of
    completed snapshot sets into, and that identity (a user-assigned managed identity: production's has no role there,
    and it none in production beyond reading the sets it copies). None of the three set: no isolated copies."""

    subscription: str
    resource_group: str
    identity_client_id: str | None  # None: a local run's credential is given (shared/wiring.py)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IsolatedSettings | None:
        env = os.environ if env is None else env
        sub = (env.get("VMKEEPER_ISOLATED_SUBSCRIPTION") or "").strip().lower()
        group = (env.get("VMKEEPER_ISOLATED_RESOURCE_GROUP") or "").strip()
        client_id = (env.get("VMKEEPER_ISOLATED_IDENTITY_CLIENT_ID") or "").strip() or None
        if not (sub or group or client_id):
            return None
        if not resource_ids.GUID.match(sub):
            raise SettingError(f"VMKEEPER_ISOLATED_SUBSCRIPTION: the backup subscription's id (got {sub!r})")
        if not re.fullmatch(r"[-\w._()]{1,90}", group) or group.endswith("."):
            raise SettingError(f"VMKEEPER_ISOLATED_RESOURCE_GROUP: the backup subscription's resource group (got {group!r})")
        fleet = {s.strip().lower() for s in (env.get("VMKEEPER_SUBSCRIPTIONS") or "").split(",") if s.strip()}
        if sub in fleet:
            raise SettingError("VMKEEPER_ISOLATED_SUBSCRIPTION: must not be one of VMKEEPER_SUBSCRIPTIONS (the "
                               "production identity would list, and try to delete, the isolated copies)")
        if client_id is not None and not resource_ids.GUID.match(client_id.lower()):
            raise SettingError(f"VMKEEPER_ISOLATED_IDENTITY_CLIENT_ID: the second identity's client id (got {client_id!r})")
        return cls(sub, group, client_id)
