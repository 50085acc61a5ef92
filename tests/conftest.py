"""Fixtures for every test: local Azure in this process (the ARM emulator over HTTPS) and Azurite.

No real Azure credential is ever constructed: clients get ``emulator.testing.StaticCredential``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from devtools.fleet import VMKEEPER_TAG_SETS
from emulator.testing import LocalAzure, in_process

# Property tests: with CI set (to anything, as Hypothesis reads it), the same examples on every run (a
# red build is the code's, not the dice's) and a reproduction blob with any failure; else random.
settings.register_profile("ci", settings.get_profile("ci"), derandomize=True, print_blob=True)
settings.load_profile("ci" if "CI" in os.environ else "default")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "azure-api"

# Fast but faithful: operations still go through InProgress, pollers are told to come back in 20 ms.
FAST = {"lro": {"default_seconds": 0.05, "retry_after_ms": 20}}


@pytest.fixture(scope="session")
def _local_azure():
    with in_process() as (az, emu):
        yield az, emu


@pytest.fixture
def az(_local_azure) -> LocalAzure:
    """A freshly reset emulator with fast long-running operations."""
    az, _ = _local_azure
    az.reset()
    az.settings(**FAST)
    return az


@pytest.fixture
def emu(_local_azure, az):
    """The in-process Emulator object behind ``az`` (for reading state in assertions only)."""
    return _local_azure[1]


@pytest.fixture
def fleet(az):
    """One subscription, two resource groups, four VMs with 1-3 data disks each."""
    summary = az.seed(subscriptions=1, resource_groups=2, vms=4, data_disks=[1, 3], regions=["westeurope"], seed=7,
                       tag_sets=VMKEEPER_TAG_SETS)
    return summary


@pytest.fixture
def sub(fleet) -> str:
    return fleet["subscriptions"][0]


@pytest.fixture
def compute(az, sub):
    from azure.mgmt.compute import ComputeManagementClient

    return az.client(ComputeManagementClient, sub, polling_interval=0)


@pytest.fixture
def resources(az, sub):
    from azure.mgmt.resource.resources import ResourceManagementClient

    return az.client(ResourceManagementClient, sub, polling_interval=0)


@pytest.fixture
def graph(az):
    from azure.mgmt.resourcegraph import ResourceGraphClient

    return az.client(ResourceGraphClient)


@pytest.fixture(scope="session")
def azurite():
    from devtools.processes import azurite as start

    with start() as handle:
        yield handle
