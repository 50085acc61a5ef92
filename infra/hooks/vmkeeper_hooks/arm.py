"""ARM clients for the hooks, signed in as azd is: ``AzureDeveloperCliCredential`` asks ``azd auth token``
for each token, so ``azd auth login`` is all a hook needs (no Azure CLI, no default subscription of its own:
every call names its subscription). The resource manager is main.bicep's ``environment().resourceManager``
(output ``AZURE_RESOURCE_MANAGER_ENDPOINT``), so a sovereign cloud works as the public one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PUBLIC_CLOUD = "https://management.azure.com/"
# Not the app's "vmkeeper/": the least-privilege measurement counts that user agent's calls as the app identity's,
# and the hooks run as the deploying user.
USER_AGENT = "vmkeeper-azd-hooks"
RBAC_API = "2022-04-01"  # Microsoft.Authorization roleDefinitions / roleAssignments


@dataclass(frozen=True)
class Arm:
    credential: Any  # an azure-core TokenCredential
    endpoint: str = PUBLIC_CLOUD
    polling_interval: float | None = None  # None: what the service's Retry-After says
    verify: str | bool = True  # TLS: the system's trust (or REQUESTS_CA_BUNDLE); a CA file for a local emulator

    def _options(self) -> dict[str, Any]:
        base = self.endpoint.rstrip("/")
        options: dict[str, Any] = {"base_url": base, "credential_scopes": [f"{base}/.default"],
                                   "user_agent": USER_AGENT, "connection_verify": self.verify}
        if self.polling_interval is not None:
            options["polling_interval"] = self.polling_interval
        return options

    def eventgrid(self, subscription_id: str):
        from azure.mgmt.eventgrid import EventGridManagementClient

        return EventGridManagementClient(self.credential, subscription_id, **self._options())

    def resources(self, subscription_id: str):
        from azure.mgmt.resource.resources import ResourceManagementClient

        return ResourceManagementClient(self.credential, subscription_id, **self._options())


def signed_in_as_azd(tenant_id: str, endpoint: str) -> Arm:
    """The hooks' ARM access in Azure: azd's sign-in, in the deployment's tenant and cloud (main.bicep's outputs
    ``AZURE_TENANT_ID``, ``AZURE_RESOURCE_MANAGER_ENDPOINT``)."""
    from azure.identity import AzureDeveloperCliCredential

    return Arm(AzureDeveloperCliCredential(tenant_id=tenant_id or None, process_timeout=60), endpoint or PUBLIC_CLOUD)
