"""``vmkeeper failover`` end to end through click's CliRunner: the failover API on the local Functions host's real
HTTP server, its queue worker running, Site Recovery in the emulator (tests/app/failover_world.py). The order is
shown before anything is sent, each action asks what an operator expects (typing the name for an unplanned
failover), and a refusal names the option."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from click.testing import CliRunner, Result

from emulator.testing import StaticCredential
from shared.cli.main import cli
from tests.app.failover_world import (
    FAILOVER_PRINCIPAL,
    RESTORE_OPERATOR_PRINCIPAL,
    TARGET_RG,
    start,
    writes,
)
from tests.cli.cli_world import json_out


def vmkeeper(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), obj={"credential": StaticCredential()}, input=input,
                              catch_exceptions=False)


@contextmanager
def queue_worker(host: Any) -> Iterator[None]:
    """The host's queue triggers running meanwhile, as the Functions host runs them."""
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            host.run_until_idle(timeout=1)
            stop.wait(0.05)

    thread = threading.Thread(target=pump, name="cli-failover-queue", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(15)


@pytest.fixture
def world(az, emu, azurite, tmp_path, monkeypatch, failover_replicated):
    w = start(az, emu, azurite, tmp_path, monkeypatch, saved=failover_replicated)
    w["host"].fire_timer("keep_recovery_plans")
    az.advance(1)
    url = w["host"].serve_http()
    w.update(az=az, api=["--api", url, "--key", w["host"].function_key, "--poll-interval", "0.2"])
    yield w
    w["host"].close()


def failovers_recorded(world: dict[str, Any]) -> int:
    from azure.data.tables import TableClient

    table = TableClient.from_connection_string(world["settings"]["AzureWebJobsStorage"],
                                               world["settings"]["VMKEEPER_FAILOVER_TABLE"])
    return len(list(table.query_entities("PartitionKey eq 'failover'")))


def test_the_order_is_shown_and_nothing_is_sent_until_confirmed(world):
    az, api = world["az"], [*world["api"], "--principal", FAILOVER_PRINCIPAL]
    mark = len(az.calls())
    dry = json_out(vmkeeper("failover", "test_failover", "--plan", "billing", "--network", world["dr"]["test_vnet"],
                            *api, "--dry-run", "--json"), api_schema="FailoverDryRun")
    assert [[v["name"] for v in g["vms"]] for g in dry["order"]] == [["vm-00000", "vm-00001"], ["vm-00002"]]
    told = vmkeeper("failover", "unplanned_failover", "--plan", "billing", *api, "--dry-run")
    assert told.exit_code == 0, told.output
    assert "UnplannedFailover of recovery plan vmkeeper-app-billing" in told.stdout
    assert "Group 1: vm-00000, vm-00001" in told.stdout and "Group 2: vm-00002" in told.stdout

    no_answer = vmkeeper("failover", "unplanned_failover", "--plan", "billing", *api)  # stdin closed: nobody to ask
    assert no_answer.exit_code == 1 and "--yes" in no_answer.stderr and "nothing was sent" in no_answer.stderr
    wrong = vmkeeper("failover", "unplanned_failover", "--plan", "billing", *api, "--json", input="payroll\n")
    assert wrong.exit_code == 1 and json_out(wrong, "error")["error"]["field"] == "--yes"
    declined = vmkeeper("failover", "planned_failover", "--plan", "billing", *api, input="n\n")
    assert declined.exit_code == 1 and "not confirmed" in declined.stderr
    assert writes(az, mark) == [] and failovers_recorded(world) == 0

    with queue_worker(world["host"]):
        done = vmkeeper("failover", "unplanned_failover", "--plan", "billing", *api, "--json", input="billing\n")
        assert done.exit_code == 0, done.output
        record = json_out(done, api_schema="Failover")
        assert record["state"] == "succeeded" and record["operation"] == "UnplannedFailover"
        assert "Type billing to go on" in done.stderr
        committed = vmkeeper("failover", "commit", "--plan", "billing", *api, "--yes")
    assert committed.exit_code == 0, committed.output
    assert "succeeded" in committed.stdout and "Group 2: " in committed.stdout
    recovered = {v.name for v in world["compute"].virtual_machines.list(TARGET_RG)}
    assert recovered == {"vm-00000", "vm-00001", "vm-00002"}


def test_a_refusal_names_the_option_and_restore_roles_do_not_fail_over(world):
    az = world["az"]
    mark = len(az.calls())
    both = vmkeeper("failover", "commit", "--plan", "billing", "--vm", world["vms"][0].id, *world["api"])
    assert both.exit_code == 1 and "--plan" in both.stderr
    vm = world["vms"][0]  # one VM named as the Azure CLI names it: the same dry run as its id
    by_id = json_out(vmkeeper("failover", "test_failover", "--vm", vm.id, "--network", world["dr"]["test_vnet"],
                              *world["api"], "--principal", FAILOVER_PRINCIPAL, "--dry-run", "--json"))
    by_name = json_out(vmkeeper("failover", "test_failover", "-g", vm.id.split("/")[4], "-n", vm.name, "--network",
                                world["dr"]["test_vnet"], *world["api"], "--principal", FAILOVER_PRINCIPAL,
                                "--subscription", world["sub"], "--dry-run", "--json"))
    assert by_name == by_id and by_id["order"][0]["vms"][0]["name"] == vm.name
    no_net = vmkeeper("failover", "test_failover", "--plan", "billing", *world["api"], "--principal",
                      FAILOVER_PRINCIPAL, "--json")
    assert no_net.exit_code == 1 and json_out(no_net, "error")["error"]["field"] == "--network"
    restore_role = vmkeeper("failover", "unplanned_failover", "--plan", "billing", *world["api"], "--principal",
                            RESTORE_OPERATOR_PRINCIPAL, "--yes", "--json")
    assert restore_role.exit_code == 1
    err = json_out(restore_role, "error")["error"]
    assert err["field"] == "--scope / --principal" and err["problem"]["status"] == 403
    assert "Failover.Operator" in err["message"]
    assert writes(az, mark) == [] and failovers_recorded(world) == 0
