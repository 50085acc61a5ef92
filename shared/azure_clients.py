"""Azure clients, built lazily (cold start stays light) from settings.

Credentials: in Azure, the Function App's managed identity (``AZURE_CLIENT_ID`` selects a
user-assigned one). Local tools and tests hand in their own credential with ``use_credential``
(a static token for the emulator), so nothing here ever probes an identity endpoint for them.
Storage: identity-based (``AzureWebJobsStorage__queueServiceUri`` / ``__tableServiceUri``), or a
connection string in ``AzureWebJobsStorage`` for Azurite.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import Any

from .settings import AzureSettings, SettingError

_lock = threading.Lock()
_credential: Any = None


def use_credential(credential: Any) -> None:
    """Use this TokenCredential for every Azure client (local development and tests)."""
    global _credential
    with _lock:
        _credential = credential
    _clients.cache_clear()
    _storage_client.cache_clear()


def credential() -> Any:
    global _credential
    with _lock:
        if _credential is None:
            from azure.identity import ManagedIdentityCredential

            client_id = os.environ.get("AZURE_CLIENT_ID")
            _credential = ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
        return _credential


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


def _arm_kwargs() -> dict[str, Any]:
    settings = AzureSettings.from_env()
    verify = {"connection_verify": settings.ca_bundle} if settings.ca_bundle else {}
    return {"transport": pooled_transport(**verify), "base_url": settings.arm_endpoint,
            "credential_scopes": ["https://management.azure.com/.default"], **verify}


@lru_cache(maxsize=256)
def _clients(kind: str, subscription_id: str | None) -> Any:
    kwargs = _arm_kwargs()
    if kind == "paced-compute":
        # Paced writes: a 429 or 5xx comes straight back to the worker (its budget learns, its job
        # waits in the queue) instead of the SDK sleeping and resending writes nobody budgeted.
        kwargs["retry_status"] = 0
        kind = "compute"
    if kind == "compute":
        from azure.mgmt.compute import ComputeManagementClient as Client
    elif kind == "backup":
        from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient as Client
    elif kind == "locks":
        from azure.mgmt.resource.locks import ManagementLockClient as Client
    elif kind == "graph":
        from azure.mgmt.resourcegraph import ResourceGraphClient

        return ResourceGraphClient(credential(), **kwargs)
    else:
        raise ValueError(kind)
    return Client(credential(), subscription_id, **kwargs)


def compute(subscription_id: str) -> Any:
    return _clients("compute", subscription_id.lower())


def paced_compute(subscription_id: str) -> Any:
    """Compute for the paced scheduled worker: no status retries inside the SDK."""
    return _clients("paced-compute", subscription_id.lower())


def backup(subscription_id: str) -> Any:
    return _clients("backup", subscription_id.lower())


def locks(subscription_id: str) -> Any:
    return _clients("locks", subscription_id.lower())


def resource_graph() -> Any:
    return _clients("graph", None)


# --- storage -------------------------------------------------------------------------------------
def _storage_setting(service: str) -> tuple[str, str]:
    """("connection_string", value) or ("url", service URI) for AzureWebJobsStorage."""
    conn = os.environ.get("AzureWebJobsStorage")
    if conn:
        return "connection_string", conn
    uri = os.environ.get(f"AzureWebJobsStorage__{service}ServiceUri")
    if uri:
        return "url", uri
    account = os.environ.get("AzureWebJobsStorage__accountName")
    if account:
        return "url", f"https://{account}.{service}.core.windows.net"
    raise SettingError(f"AzureWebJobsStorage__{service}ServiceUri: required (or AzureWebJobsStorage__accountName)")


def queue(name: str) -> Any:
    """The queue's client, kept per name and storage setting (its connection pool is reused)."""
    return _storage_client("queue", name, *_storage_setting("queue"))


@lru_cache(maxsize=64)
def _storage_client(service: str, name: str, kind: str, value: str) -> Any:
    if service == "table":
        from azure.data.tables import TableClient

        if kind == "connection_string":
            return TableClient.from_connection_string(value, name, transport=pooled_transport())
        return TableClient(value, name, credential=credential(), transport=pooled_transport())
    from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient

    # base64, as host.json's messageEncoding tells the Functions host to expect.
    codecs = {"message_encode_policy": BinaryBase64EncodePolicy(), "message_decode_policy": BinaryBase64DecodePolicy(),
              "transport": pooled_transport()}
    if kind == "connection_string":
        return QueueClient.from_connection_string(value, name, **codecs)
    return QueueClient(value, name, credential=credential(), **codecs)


def ensure_table(table_client: Any) -> None:
    """Create the table if it isn't there yet (idempotent)."""
    from azure.core.exceptions import ResourceExistsError

    try:
        table_client.create_table()
    except ResourceExistsError:
        pass


def table(name: str) -> Any:
    """The table's client, kept per name and storage setting (its connection pool is reused)."""
    return _storage_client("table", name, *_storage_setting("table"))
