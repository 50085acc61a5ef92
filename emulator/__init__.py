"""Local Azure: an emulator of the Azure Resource Manager control plane, served over HTTPS.

The real Azure SDK clients talk to it as they talk to management.azure.com. One sub-package per
resource provider (moto-style); the framework (routing, errors, long-running operations,
throttling, faults, events, admin API) lives in ``emulator.core``.
"""
