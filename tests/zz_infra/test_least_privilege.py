"""Least privilege, measured: infra/vmkeeper-role.json's actions cover every ARM operation the app's
own clients made in this session's test suites (read from the emulator's call log by
tests/conftest.py), and grant nothing no test exercised. Its directory sorts after every other, so
under ``make test`` it runs last, once every suite has run.

The emulator names each route's operation as Azure RBAC names the action
(``Microsoft.Compute/virtualMachines/read``), so the call log's operations are the actions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
ROLE = ROOT / "infra" / "vmkeeper-role.json"
APP_SUITES = ROOT / "tests" / "app"
KEYS = ["roleName", "description", "actions", "notActions", "dataActions", "notDataActions"]
# The only writes under Microsoft.Authorization the app makes: its own retention locks.
AUTHORIZATION_WRITES = {"microsoft.authorization/locks/write", "microsoft.authorization/locks/delete"}
# Data actions are not the custom role's: a built-in data-plane role grants each, at the one resource it is for.
DATA_ROLES = {"Microsoft.EventGrid/events/send/action": ("EventGrid Data Sender", "infra/alerts/data-sender.bicep",
                                                          "d5a91429-5739-47e2-a06b-3470a27159e7")}


def role() -> dict:
    return json.loads(ROLE.read_text())


def grants(action: str, operation: str) -> bool:
    """Whether a role action (perhaps with ``*``) grants an operation; RBAC compares without case."""
    pattern = ".*".join(re.escape(part) for part in action.split("*"))
    return re.fullmatch(pattern, operation, re.IGNORECASE) is not None


def test_the_role_file_has_the_shape_the_bicep_loads():
    r = role()
    assert list(r) == KEYS
    assert r["roleName"] == "vmkeeper" and r["description"].strip()
    assert r["notActions"] == [] and r["dataActions"] == [] and r["notDataActions"] == []
    actions = r["actions"]
    assert actions and all(isinstance(a, str) and a for a in actions)
    assert actions == sorted(actions), "actions: keep them sorted"
    assert len({a.lower() for a in actions}) == len(actions), "actions: each once"
    for a in actions:
        provider, _, rest = a.partition("/")
        assert a != "*" and provider != "*" and rest not in ("", "*"), f"{a}: a whole provider or more"
        assert provider.startswith("Microsoft."), a
        if provider.lower() == "microsoft.authorization":
            assert "*" not in a, f"{a}: no wildcard over Microsoft.Authorization"
            assert "roleassignments" not in a.lower() and "roledefinitions" not in a.lower(), a
            if a.lower().endswith(("/write", "/delete")):
                assert a.lower() in AUTHORIZATION_WRITES, f"{a}: only the app's own lock writes"


def _suites_not_run(app_operations) -> list[str]:
    """The app's suites (tests/app/test_*.py) none of whose tests ran in this session."""
    ran = {nodeid.split("::")[0] for nodeid in app_operations.tests_run}
    return sorted(p.relative_to(ROOT).as_posix() for p in APP_SUITES.glob("test_*.py")
                  if p.relative_to(ROOT).as_posix() not in ran)


def test_the_role_grants_what_the_app_used_and_nothing_more(app_operations, capsys):
    missing_suites = _suites_not_run(app_operations)
    if missing_suites:
        pytest.skip("the role is measured across the app's suites, and these did not run in this session: "
                    f"{', '.join(missing_suites)}; run `make test` (the whole suite, this file last)")
    app_operations.drain()
    used = app_operations.ops
    actions = role()["actions"]

    with capsys.disabled():
        print(f"\n\nLeast privilege: {ROLE.relative_to(ROOT)} grants {len(actions)} actions:")
        for a in actions:
            n = sum(op.count for o, op in used.items() if o and grants(a, o))
            print(f"  {a}  ({n} calls)" if n else f"  {a}  (NEVER USED)")
        print(f"The app's ARM clients used {len(used)} operations "
              f"in {len({t for op in used.values() for t in op.tests})} tests:")
        for o in sorted(used, key=lambda o: (o is None, (o or "").lower())):
            op = used[o]
            test, _ = op.tests.most_common(1)[0]
            statuses = ", ".join(f"{s}×{n}" for s, n in sorted(op.statuses.items()))
            print(f"  {o or '(no operation: a route the emulator does not know)'}  {op.count} calls "
                  f"[{statuses}]  e.g. {test}" + ("" if o else f"  ({op.example})"))
        print()

    assert None not in used, (f"the app called ARM where the emulator knows no route: {used[None].example} "
                              f"(in {used[None].tests.most_common(1)[0][0]}); teach the emulator the route")
    assert used, "the app made no ARM call in its suites: the collector is broken"
    data = {o for o in used if o and any(grants(d, o) for d in DATA_ROLES)}
    for action, (name, bicep, guid) in DATA_ROLES.items():
        assert any(grants(action, o) for o in data), f"{action} ({name}): no test used it; the grant is untested"
        assert guid in (ROOT / bicep).read_text(), f"{bicep}: does not assign {name} ({guid})"
    ungranted = sorted(o for o in used if o not in data and not any(grants(a, o) for a in actions))
    assert not ungranted, f"operations the app used that {ROLE.name} does not grant: {ungranted}"
    unused = [a for a in actions if not any(grants(a, o) for o in used if o)]
    assert not unused, f"actions {ROLE.name} grants that no test exercised: {unused}"
