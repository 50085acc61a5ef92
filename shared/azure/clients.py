"""Azure clients, built lazily (cold start stays light) and kept per instance, so each connection
pool is reused: Resource Manager's management clients per subscription, and Storage queues and
tables. shared/wiring.py builds one of each from settings and a credential."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from .. import __version__
from ..settings import AzureSettings, SettingError

USER_AGENT = f"vmkeeper/{__version__}"  # appended to azure-core's; tells the app's ARM calls from others'
# The second identity's clients (isolated copies): their calls are told from the app's own (another role's).
ISOLATED_USER_AGENT = f"vmkeeper-isolated/{__version__}"
POOL_SIZE = 32  # connections kept per client and host: one per worker thread, so none is re-opened


def pooled_transport(**config: Any) -> Any:
    """A requests session for one client. requests keeps 10 connections per host by default; busier
    workers would open (and TLS handshake) a fresh one for each call over that. A bigger pool,
    with requests' retries off as azure-core has them (its own retry policy decides)."""
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from urllib3.util.retry import Retry

    session = requests.Session()
    # Not read from the environment per request (proxies, netrc): requests walks all of os.environ
    # on every call for them, a quarter of a busy worker's CPU. The CA bundle is passed explicitly.
    session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE,
                                            max_retries=Retry(total=False, redirect=False, raise_on_status=False))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return RequestsTransport(session=session, session_owner=True, **config)


class _Kept:
    """Clients built once per key, thread-safely."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[tuple, Any] = {}

    def get(self, key: tuple, make: Any) -> Any:
        with self._lock:
            if key not in self._made:
                self._made[key] = make()
            return self._made[key]


class ArmClients(_Kept):
    """The management clients vmkeeper uses (shared/ports.py ``Arm``)."""

    def __init__(self, settings: AzureSettings, credential: Callable[[], Any], **options: Any):
        super().__init__()
        self.settings, self.credential = settings, credential  # credential(): the TokenCredential, made on first use
        self.options = options  # more SDK client options (local tools: e.g. a shorter retry backoff)

    def _kwargs(self) -> dict[str, Any]:
        verify = {"connection_verify": self.settings.ca_bundle} if self.settings.ca_bundle else {}
        return {"transport": pooled_transport(**verify), "base_url": self.settings.arm_endpoint,
                "credential_scopes": [self.settings.arm_scope], "user_agent": USER_AGENT,
                **verify, **self.options}

    def _client(self, kind: str, subscription_id: str | None) -> Any:
        def make() -> Any:
            kwargs = self._kwargs()
            if kind == "paced-compute":
                # Paced writes: a 429 or 5xx comes straight back to the worker (its budget learns, its job
                # waits in the queue) instead of the SDK sleeping and resending writes nobody budgeted.
                kwargs["retry_status"] = 0
            if kind in ("compute", "paced-compute"):
                from azure.mgmt.compute import ComputeManagementClient as Client
            elif kind == "backup":
                from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient as Client
            elif kind == "locks":
                from azure.mgmt.resource.locks import ManagementLockClient as Client
            elif kind == "network":
                from azure.mgmt.network import NetworkManagementClient as Client
            elif kind == "resources":
                from azure.mgmt.resource.resources import ResourceManagementClient as Client
            elif kind == "site-recovery":
                from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient as Client
            elif kind == "cost":
                from azure.mgmt.costmanagement import CostManagementClient

                # Cost Management throttles tightly and answers with a Retry-After of a minute or more: a 429 comes
                # straight back to the cost run (which leaves the scope for a later run) instead of the SDK sleeping.
                return CostManagementClient(self.credential(), **{**kwargs, "retry_status": 0})
            else:
                from azure.mgmt.resourcegraph import ResourceGraphClient

                return ResourceGraphClient(self.credential(), **kwargs)
            return Client(self.credential(), subscription_id, **kwargs)
        return self.get((kind, subscription_id), make)

    def compute(self, subscription_id: str) -> Any:
        return self._client("compute", subscription_id.lower())

    def paced_compute(self, subscription_id: str) -> Any:
        """Compute for the paced scheduled worker: no status retries inside the SDK."""
        return self._client("paced-compute", subscription_id.lower())

    def backup(self, subscription_id: str) -> Any:
        return self._client("backup", subscription_id.lower())

    def locks(self, subscription_id: str) -> Any:
        return self._client("locks", subscription_id.lower())

    def resources(self, subscription_id: str) -> Any:
        """Resource Manager's own operations (azure-mgmt-resource): tags at any scope."""
        return self._client("resources", subscription_id.lower())

    def network(self, subscription_id: str) -> Any:
        return self._client("network", subscription_id.lower())

    def resource_graph(self) -> Any:
        return self._client("graph", None)

    def cost_management(self) -> Any:
        """Cost Management (query at a scope); no status retries inside the SDK (shared/cost/service.py)."""
        return self._client("cost", None)

    def site_recovery(self, subscription_id: str) -> Any:
        """Site Recovery (Azure-to-Azure): the vault's group and name are per-call arguments (SDK 2.x)."""
        return self._client("site-recovery", subscription_id.lower())


class Storage(_Kept):
    """Queues and tables of the app's storage account: identity-based
    (``AzureWebJobsStorage__queueServiceUri`` / ``__tableServiceUri``, as Bicep sets them in any cloud;
    ``__accountName`` names a public-cloud account), or a connection string in ``AzureWebJobsStorage`` (Azurite)."""

    def __init__(self, env: Mapping[str, str], credential: Callable[[], Any]):
        super().__init__()
        self.env, self.credential = env, credential

    def _setting(self, service: str) -> tuple[str, str]:
        conn = self.env.get("AzureWebJobsStorage")
        if conn:
            return "connection_string", conn
        uri = self.env.get(f"AzureWebJobsStorage__{service}ServiceUri")
        if uri:
            return "url", uri
        account = self.env.get("AzureWebJobsStorage__accountName")
        if account:
            return "url", f"https://{account}.{service}.core.windows.net"
        raise SettingError(f"AzureWebJobsStorage__{service}ServiceUri: required (or AzureWebJobsStorage__accountName)")

    def queue(self, name: str) -> Any:
        def make() -> Any:
            from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient

            kind, value = self._setting("queue")
            # base64, as host.json's messageEncoding tells the Functions host to expect.
            codecs = {"message_encode_policy": BinaryBase64EncodePolicy(),
                      "message_decode_policy": BinaryBase64DecodePolicy(), "transport": pooled_transport()}
            if kind == "connection_string":
                return QueueClient.from_connection_string(value, name, **codecs)
            return QueueClient(value, name, credential=self.credential(), **codecs)
        return self.get(("queue", name), make)

    def table(self, name: str) -> Any:
        def make() -> Any:
            from azure.data.tables import TableClient

            kind, value = self._setting("table")
            if kind == "connection_string":
                return TableClient.from_connection_string(value, name, transport=pooled_transport())
            return TableClient(value, name, credential=self.credential(), transport=pooled_transport())
        return self.get(("table", name), make)
