"""shared/restore/ilr.py through the app's own ARM clients (shared/wiring.py's ArmClients: the real
RecoveryServicesBackupClient) against the emulator: a file recovery session provisioned on a vault point by
Azure's Retry-After without sleeping, its script given to an operator only and never kept, revoked
idempotently, ended by Azure's 12 hours. The emulator's clock is advanced by each Wait's delay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from emulator.testing import StaticCredential
from shared.instants import parse_instant
from shared.restore import ilr
from shared.restore.access import OPERATOR, READER, Principal
from shared.restore.steps import Fail, Next, Wait
from shared.wiring import Wiring
from tests.app.ilr_world import session, vault_point

OPERATOR_CALLER = Principal("op-1", "Operator", frozenset({OPERATOR}))
READER_CALLER = Principal("rd-1", "Reader", frozenset({READER}))
ITEM_OPS = "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems"


@pytest.fixture
def arm(az):
    az.settings(lro={"default_seconds": 30, "retry_after_ms": None})  # Retry-After: 30, in whole seconds
    env = {"VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path}
    return Wiring(env=env, credential=StaticCredential()).arm


def clock(emu) -> datetime:
    return datetime.fromtimestamp(emu.clock.timestamp(), UTC)


def run(az, emu, step, context: dict, limit: int = 10) -> tuple[Next | Fail, list[int]]:
    """Deliveries of a step until it ends, as the restore worker makes them: the context merged, the emulator's
    clock moved on by each Wait's delay (no one sleeps). Returns the end and the delays asked for."""
    delays = []
    for _ in range(limit):
        result = step(context)
        context.update(result.context if not isinstance(result, Fail) else {})
        if not isinstance(result, Wait):
            return result, delays
        delays.append(result.delay)
        az.advance(result.delay)
    raise AssertionError(f"still waiting after {limit} deliveries: {delays}")


def ops(az, since: int) -> list[tuple[str, str]]:
    return [(c["method"], c["operation"].rsplit("/", 2)[-2] if c["operation"].endswith("/action") else c["operation"])
            for c in az.calls(since)]


@pytest.mark.parametrize("os_type, names", [("Linux", ["vm-files_{p}.py"]),
                                            ("Windows", ["vm-files_{p}.exe", "vm-files_{p}.ps1"])])
def test_provision_waits_by_retry_after_and_gives_an_operator_the_script(az, emu, arm, sub, os_type, names):
    vp = vault_point(emu, sub, os_type=os_type)
    context: dict = {}
    sent = clock(emu)
    end, delays = run(az, emu, lambda c: ilr.provision(arm, vp.id, vp.vm_id, c, now=clock(emu)), context)
    assert isinstance(end, Next) and delays == [0, 30]  # noted, then Azure's Retry-After (the operation's 30 s)
    assert context["ilr_was_active"] is False and context["ilr_operation"]
    span = parse_instant(context["ilr_expires_at"]) - sent  # the emulator's clock also runs in real time
    assert timedelta(hours=12) <= span < timedelta(hours=12, seconds=5)  # the default, Azure's limit
    target = session(emu, vp)
    assert target is not None and target["virtualMachineId"].lower() == vp.vm_id.lower()

    got = ilr.scripts(OPERATOR_CALLER, arm, vp.id, context)
    assert [s.name for s in got] == [n.format(p=vp.point) for n in names] and {s.os_type for s in got} == {os_type}
    (secret,) = [s for s in got if s.content]
    assert target["password"] in secret.content
    assert target["password"] not in repr(got)  # a script logged by mistake shows no secret
    assert all(s.url for s in got if not s.content)


def test_the_script_is_for_restore_operators_only_and_asks_azure_nothing_otherwise(az, emu, arm, sub):
    vp = vault_point(emu, sub)
    context: dict = {}
    run(az, emu, lambda c: ilr.provision(arm, vp.id, vp.vm_id, c, now=clock(emu)), context)
    since = len(az.calls())
    with pytest.raises(ilr.NotOperator):
        ilr.scripts(READER_CALLER, arm, vp.id, context)
    assert az.calls(since) == []
    with pytest.raises(ilr.Gone):  # nothing provisioned under this context
        ilr.scripts(OPERATOR_CALLER, arm, vp.id, {})


def test_revoke_ends_the_session_and_is_idempotent(az, emu, arm, sub):
    vp = vault_point(emu, sub)
    since = len(az.calls())
    assert isinstance(ilr.revoke(arm, vp.id), Next)  # never provisioned: nothing to revoke, nothing sent
    assert ops(az, since) == [("GET", f"{ITEM_OPS}/recoveryPoints/read")]
    context: dict = {}
    run(az, emu, lambda c: ilr.provision(arm, vp.id, vp.vm_id, c, now=clock(emu)), context)
    end, delays = run(az, emu, lambda c: ilr.revoke(arm, vp.id, c), context)
    assert isinstance(end, Next) and delays == [30] and context["ilr_revoke_operation"]
    assert session(emu, vp) is None
    with pytest.raises(ilr.Gone):
        ilr.scripts(OPERATOR_CALLER, arm, vp.id, context)
    assert isinstance(ilr.revoke(arm, vp.id, context), Next)  # its operation succeeded: done
    assert isinstance(ilr.revoke(arm, vp.id), Next)  # asked afresh: the point has no session


def test_the_session_is_due_at_its_duration_and_over_at_azures_12_hours(az, emu, arm, sub):
    vp = vault_point(emu, sub)
    context: dict = {}
    run(az, emu, lambda c: ilr.provision(arm, vp.id, vp.vm_id, c, now=clock(emu), hours=2), context)
    assert not ilr.due(context, clock(emu))
    az.advance(2 * 3600)
    assert ilr.due(context, clock(emu)) and session(emu, vp) is not None  # vmkeeper's end comes first
    az.advance(10 * 3600 + 1)
    assert session(emu, vp) is None  # Azure's own, had vmkeeper crashed
    with pytest.raises(ilr.Gone):
        ilr.scripts(OPERATOR_CALLER, arm, vp.id, context)
    since = len(az.calls())
    assert isinstance(ilr.revoke(arm, vp.id, {}), Next)
    assert all(op != "revokeInstantItemRecovery" for _, op in ops(az, since))


def test_a_provision_sent_again_after_a_crash_keeps_one_session(az, emu, arm, sub):
    vp = vault_point(emu, sub)
    noted = ilr.provision(arm, vp.id, vp.vm_id, {}, now=clock(emu)).context
    first = ilr.provision(arm, vp.id, vp.vm_id, dict(noted), now=clock(emu))  # sent; the context is lost
    assert isinstance(first, Wait) and first.context["ilr_operation"]
    az.advance(30)
    password = session(emu, vp)["password"]
    context = dict(noted)  # the redelivery sees only what was saved before the POST
    end, _ = run(az, emu, lambda c: ilr.provision(arm, vp.id, vp.vm_id, c, now=clock(emu)), context)
    assert isinstance(end, Next) and context["ilr_operation"] != first.context["ilr_operation"]
    assert session(emu, vp)["password"] == password  # the same session, the same script
    assert ilr.scripts(OPERATOR_CALLER, arm, vp.id, context)[0].content


def test_a_session_someone_else_opened_is_noted_and_renewed(az, emu, arm, sub):
    vp = vault_point(emu, sub)
    run(az, emu, lambda c: ilr.provision(arm, vp.id, vp.vm_id, c, now=clock(emu)), {})
    context: dict = {}
    end, _ = run(az, emu, lambda c: ilr.provision(arm, vp.id, vp.vm_id, c, now=clock(emu)), context)
    assert isinstance(end, Next) and context["ilr_was_active"] is True
    assert session(emu, vp)["renewals"] == 1  # sent with renewExistingRegistration


def test_refusals_are_failures_that_name_the_point(az, emu, arm, sub):
    vp = vault_point(emu, sub)
    missing = vp.id.rsplit("/", 1)[0] + "/404404"
    result = ilr.provision(arm, missing, vp.vm_id, {}, now=clock(emu))
    assert isinstance(result, Fail) and result.code == "NotFound" and missing in result.reason
    other_vm = vp.vm_id.rsplit("/", 1)[0] + "/another-vm"
    result = ilr.provision(arm, vp.id, other_vm, {"ilr_was_active": False}, now=clock(emu))
    assert isinstance(result, Fail) and result.code == "FileRecoveryRefused" and "BMSUserErrorInvalidInput" in result.reason
    az.advance(60)
    assert session(emu, vp) is None
