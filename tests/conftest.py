"""Fixtures for every test: local Azure in this process (the ARM emulator over HTTPS) and Azurite.

No real Azure credential is ever constructed: clients get ``emulator.testing.StaticCredential``.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import settings

from devtools.fleet import VMKEEPER_SCALE_SETS, VMKEEPER_TAG_SETS
from emulator.testing import LocalAzure, in_process

# Property tests: with CI set (to anything, as Hypothesis reads it), the same examples on every run (a
# red build is the code's, not the dice's) and a reproduction blob with any failure; else random.
settings.register_profile("ci", settings.get_profile("ci"), derandomize=True, print_blob=True)
settings.load_profile("ci" if "CI" in os.environ else "default")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "azure-api"

# Fast but faithful: operations still go through InProgress, pollers are told to come back in 20 ms.
FAST = {"lro": {"default_seconds": 0.05, "retry_after_ms": 20}}

# Every local Functions host polls its queues at the shortest interval the platform allows (100 ms; host.json says
# 1 s), as an app setting overriding host.json would make it: a job step that waits its whole seconds in the queue
# runs within 100 ms of them, not up to a second later. The app's behaviour does not depend on it.
os.environ.setdefault("AzureFunctionsJobHost__extensions__queues__maxPollingInterval", "00:00:00.100")


APP_USER_AGENT = "vmkeeper/"  # shared/azure/clients.py USER_AGENT: the app's ARM clients append it
ISOLATED_USER_AGENT = "vmkeeper-isolated/"  # ISOLATED_USER_AGENT: the second identity's clients (isolated copies)


def resource_type(path: str) -> str:
    """The resource type a path or resource id addresses (its last provider's types, e.g.
    ``Microsoft.Storage/storageAccounts``; a group or subscription as Microsoft.Resources names them)."""
    parts = [p for p in path.split("/") if p]
    lower = [p.lower() for p in parts]
    if "providers" in lower:
        i = len(lower) - 1 - lower[::-1].index("providers")
        rest = parts[i + 1:]
        return "/".join(rest[:1] + rest[1::2]) if rest else "(providers)"
    if len(parts) >= 3 and lower[2] == "resourcegroups":
        return "Microsoft.Resources/resourceGroups"
    return "Microsoft.Resources/subscriptions" if lower[:1] == ["subscriptions"] else "(tenant)"


@dataclass
class Operation:
    """One ARM operation the app made: how often, with which statuses, on which resource types, how often as
    a linked access check (LINKED: an action on a resource another request referred to), and where first seen."""

    count: int = 0
    statuses: Counter = field(default_factory=Counter)
    tests: Counter = field(default_factory=Counter)
    resource_types: Counter = field(default_factory=Counter)
    linked: int = 0
    example: str = ""  # "METHOD path" of the first call


class AppOperations:
    """The ARM operations vmkeeper's own clients made (their user agent names vmkeeper), across the
    session, each with the tests that made it; tests' arrangement calls (plain SDK clients) are not
    the app's. Read from the emulator's call log after each test and before each reset, so a call
    counts whatever its status (a throttled or failed call still needed the permission); a call
    to a route the emulator doesn't know is kept under the operation None."""

    def __init__(self, user_agent: str = APP_USER_AGENT) -> None:
        self.user_agent = user_agent  # whose clients: the app's, or the second identity's
        self.ops: dict[str | None, Operation] = {}
        self.tests_run: set[str] = set()
        self.current = "(outside any test)"
        self._az: LocalAzure | None = None
        self._cursor = 0

    def attach(self, az: LocalAzure) -> None:
        self._az, self._cursor = az, 0

    def detach(self) -> None:
        self.drain()
        self._az = None

    def drain(self) -> None:
        if self._az is None:
            return
        calls = self._az.calls(self._cursor)
        self._cursor += len(calls)
        for c in calls:
            if self.user_agent not in (c.get("userAgent") or ""):
                continue
            op = self.ops.setdefault(c["operation"], Operation())
            op.count += 1
            op.statuses[c["status"]] += 1
            op.tests[self.current] += 1
            op.resource_types[resource_type(c["path"])] += 1
            op.linked += c["method"] == "LINKED"
            op.example = op.example or f"{c['method']} {c['path']}"

    def rewind(self) -> None:
        """The emulator's call log was cleared (a reset)."""
        self._cursor = 0


APP_OPERATIONS = AppOperations()
ISOLATED_OPERATIONS = AppOperations(ISOLATED_USER_AGENT)  # the second identity's (isolated copies)
COLLECTORS = (APP_OPERATIONS, ISOLATED_OPERATIONS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    for ops in COLLECTORS:
        ops.current = item.nodeid
        ops.tests_run.add(item.nodeid)
    yield
    for ops in COLLECTORS:
        ops.drain()  # after teardown too (a module's fixtures end in its last test's)


@pytest.fixture(scope="session")
def app_operations() -> AppOperations:
    """The ARM operations the app made in this session so far (tests/zz_infra reads it last)."""
    return APP_OPERATIONS


@pytest.fixture(scope="session")
def isolated_operations() -> AppOperations:
    """The ARM operations the second identity's clients made (isolated copies), as ``app_operations``."""
    return ISOLATED_OPERATIONS


@pytest.fixture(scope="session")
def _local_azure():
    with in_process() as (az, emu):
        reset = az.reset

        def collecting_reset() -> None:  # the log is cleared by a reset: read it first
            for ops in COLLECTORS:
                ops.drain()
            reset()
            for ops in COLLECTORS:
                ops.rewind()

        az.reset = collecting_reset
        for ops in COLLECTORS:
            ops.attach(az)
        try:
            yield az, emu
        finally:
            for ops in COLLECTORS:
                ops.detach()


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
    """One subscription, two resource groups, four VMs with 1-3 data disks each, and in rg-vm-00 a Flexible scale
    set of three VMs (``summary["vms"]`` counts them: seven) and a Uniform one of two instances
    (devtools/fleet.py VMKEEPER_SCALE_SETS)."""
    summary = az.seed(subscriptions=1, resource_groups=2, vms=4, data_disks=[1, 3], regions=["westeurope"], seed=7,
                       tag_sets=VMKEEPER_TAG_SETS, scale_sets=VMKEEPER_SCALE_SETS)
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


@pytest.fixture(scope="session")
def failover_replicated(_local_azure, azurite, tmp_path_factory):
    """tests/app/failover_world.py's three VMs replicated by the app, saved once for the session: the failover
    tests of the app and of the CLI each start from their own copy (``start(saved=...)``)."""
    from tests.app.failover_world import replicated

    return replicated(_local_azure, azurite, tmp_path_factory.mktemp("failover-replicated"))
