"""Least privilege, measured: vmkeeper's custom roles grant every ARM operation the app's own clients made in
this session's test suites (read from the emulator's call log by tests/conftest.py) — linked access checks
included (LINKED: an action on a resource another request referred to, such as the staging storage account of
an Azure Backup restore) — each at the scope it is assigned at, and grant nothing no test exercised. Its
directory sorts after every other, so under ``make test`` it runs last, once every suite has run.

The emulator names each route's operation as Azure RBAC names the action
(``Microsoft.Compute/virtualMachines/read``), so the call log's operations are the actions.

Run after only some app suites (``pytest tests/app/test_x.py tests/zz_infra``), what they used is still
judged (every operation granted, at its scope); "nothing unused" needs them all."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
ROLE = ROOT / "infra" / "vmkeeper-role.json"
STAGING_ROLE = ROOT / "infra" / "vmkeeper-staging-role.json"
APP_SUITES = ROOT / "tests" / "app"
KEYS = ["roleName", "description", "actions", "notActions", "dataActions", "notDataActions"]
# The only writes under Microsoft.Authorization the app makes: its own retention locks.
AUTHORIZATION_WRITES = {"microsoft.authorization/locks/write", "microsoft.authorization/locks/delete"}
# Data actions are not the custom role's: a built-in data-plane role grants each, at the one resource it is for.
DATA_ROLES = {"Microsoft.EventGrid/events/send/action": ("EventGrid Data Sender", "infra/alerts/data-sender.bicep",
                                                          "d5a91429-5739-47e2-a06b-3470a27159e7")}


@dataclass(frozen=True)
class Role:
    """One of vmkeeper's custom roles: its permissions, where infra/ assigns it, and the resource types an
    operation it grants may be on there (None: assigned at whole subscriptions, so anything in them)."""

    file: Path
    assigned: str  # in words
    bicep: str  # the module that assigns it
    resource_types: tuple[str, ...] | None = None

    def actions(self) -> list[str]:
        return json.loads(self.file.read_text())["actions"]


ROLES = (
    Role(ROLE, "at each protected subscription (and the vaults' group)", "infra/security/role-assignment.bicep"),
    # Azure Backup checks storageAccounts/write on a restore's staging account (Learn, backup-rbac-rs-vault):
    # granted at the staging accounts main.bicep's restoreStagingAccountIds lists, and nowhere else.
    Role(STAGING_ROLE, "at each restore staging storage account (restoreStagingAccountIds)",
         "infra/security/role-assignment-storage.bicep", ("Microsoft.Storage/storageAccounts",)),
)
# The second identity's (isolated copies, docs/isolated-copies.md): judged against its own clients' calls (their
# user agent is vmkeeper-isolated/), never the app's, so neither identity's role covers for the other's.
ISOLATED_ROLES = (
    Role(ROOT / "infra" / "vmkeeper-isolated-role.json", "at the backup subscription's group (isolatedResourceGroupName)",
         "infra/security/isolated.bicep"),
    Role(ROOT / "infra" / "vmkeeper-isolated-source-role.json",
         "at each protected subscription (only the sources it copies)",
         "infra/security/isolated-source-role-definition.bicep", ("Microsoft.Compute/snapshots",)),
)


def grants(action: str, operation: str) -> bool:
    """Whether a role action (perhaps with ``*``) grants an operation; RBAC compares without case."""
    pattern = ".*".join(re.escape(part) for part in action.split("*"))
    return re.fullmatch(pattern, operation, re.IGNORECASE) is not None


@pytest.mark.parametrize("r", ROLES + ISOLATED_ROLES, ids=lambda r: r.file.name)
def test_the_role_files_have_the_shape_the_bicep_loads(r):
    doc = json.loads(r.file.read_text())
    assert list(doc) == KEYS
    assert doc["roleName"].startswith("vmkeeper") and doc["description"].strip()
    assert doc["notActions"] == [] and doc["dataActions"] == [] and doc["notDataActions"] == []
    actions = doc["actions"]
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
    assert (ROOT / r.bicep).is_file()


@pytest.mark.parametrize("roles", [ROLES, ISOLATED_ROLES], ids=["app", "isolated"])
def test_what_a_narrower_role_grants_the_subscription_wide_role_does_not(roles):
    wide = roles[0].actions()
    for r in roles[1:]:
        for a in r.actions():
            assert not any(grants(w, a) or grants(a, w) for w in wide), \
                f"{a} ({r.file.name}) is granted by {roles[0].file.name} too: not only {r.assigned}"


def test_the_app_identity_has_no_role_where_the_isolated_copies_are():
    # docs/isolated-copies.md: production's identity cannot delete (nor write) a copy in the backup subscription;
    # infra assigns it nothing there (main.bicep: the isolated modules take the second identity's principal only).
    main = (ROOT / "infra" / "main.bicep").read_text(encoding="utf-8")
    for module in ("isolated", "isolatedSourceAssignments"):
        body = main.split(f"module {module} ", 1)[1].split("\n}", 1)[0]
        assert "isolatedIdentity.outputs.principalId" in body and "identity.outputs.principalId" not in \
            body.replace("isolatedIdentity.outputs.principalId", ""), module


def _suites_not_run(app_operations) -> list[str]:
    """The app's suites (tests/app/test_*.py) none of whose tests ran in this session."""
    ran = {nodeid.split("::")[0] for nodeid in app_operations.tests_run}
    return sorted(p.relative_to(ROOT).as_posix() for p in APP_SUITES.glob("test_*.py")
                  if p.relative_to(ROOT).as_posix() not in ran)


def _needed_by(tests: Counter, most: int = 3) -> str:
    """The tests that made the calls, most calls first."""
    tests = [t for t, _ in tests.most_common()]
    return ", ".join(tests[:most]) + (f" (+{len(tests) - most} more)" if len(tests) > most else "")


def _granting(o: str, roles: tuple[Role, ...] = ROLES) -> list[Role]:
    return [r for r in roles if any(grants(a, o) for a in r.actions())]


def _print_trace(used, partial: list[str], roles: tuple[Role, ...] = ROLES) -> None:
    """Each role's actions with the calls and tests that needed them (linked checks said so), then every
    operation the app used."""
    unused = "not used by the suites that ran" if partial else "NEVER USED"
    print("\n\nLeast privilege" + (f" (partial: {len(partial)} app suites did not run)" if partial else "") + ":")
    for r in roles:
        actions = r.actions()
        print(f"\n{r.file.relative_to(ROOT)} grants {len(actions)} actions, assigned {r.assigned}:")
        for a in actions:
            ops = [op for o, op in used.items() if o and grants(a, o)]
            n, linked = sum(op.count for op in ops), sum(op.linked for op in ops)
            if not n:
                print(f"  {a}  ({unused})")
                continue
            tests = sum((op.tests for op in ops), Counter())
            how = f"{n} calls" + (f", {linked} of them linked access checks" if linked else "")
            print(f"  {a}  ({how}) needed by {_needed_by(tests)}")
    print(f"\nThe app's ARM clients used {len(used)} operations "
          f"in {len({t for op in used.values() for t in op.tests})} tests:")
    for o in sorted(used, key=lambda o: (o is None, (o or "").lower())):
        op = used[o]
        statuses = ", ".join(f"{s}×{n}" for s, n in sorted(op.statuses.items()))
        linked = f", {op.linked} linked" if op.linked else ""
        print(f"  {o or '(no operation: a route the emulator does not know)'}  {op.count} calls{linked} "
              f"[{statuses}]  e.g. {op.tests.most_common(1)[0][0]}" + ("" if o else f"  ({op.example})"))
    print()


def _whose(request, who: str):
    """(the operations, the roles) of the app's identity or the second one's (isolated copies)."""
    if who == "app":
        return request.getfixturevalue("app_operations"), ROLES
    return request.getfixturevalue("isolated_operations"), ISOLATED_ROLES


@pytest.mark.parametrize("who", ["app", "isolated"])
def test_the_roles_grant_what_the_app_used_at_the_scopes_they_are_assigned(who, request, capsys):
    app_operations, roles = _whose(request, who)
    missing_suites = _suites_not_run(app_operations)
    if len(missing_suites) == len(list(APP_SUITES.glob("test_*.py"))):
        pytest.skip("no app suite ran in this session: run `make test`, or some of tests/app with this file last")
    app_operations.drain()
    used = app_operations.ops
    with capsys.disabled():
        _print_trace(used, missing_suites, roles)

    assert None not in used, (f"the app called ARM where the emulator knows no route: {used[None].example} "
                              f"(in {used[None].tests.most_common(1)[0][0]}); teach the emulator the route")
    data = {o for o in used if o and any(grants(d, o) for d in DATA_ROLES)}
    ungranted = sorted(o for o in used if o and o not in data and not _granting(o, roles))
    assert not ungranted, ("operations the app used that no role grants (add each to the role for where it is "
                           f"needed: {', '.join(r.file.name for r in roles)}): {ungranted}")
    for o in sorted(o for o in used if o and o not in data):
        if any(r.resource_types is None for r in _granting(o, roles)):
            continue  # granted at whole subscriptions
        allowed = {t.lower() for r in _granting(o, roles) for t in r.resource_types or ()}
        elsewhere = sorted(t for t in used[o].resource_types if t.lower() not in allowed)
        assert not elsewhere, (f"{o} is granted only {' and '.join(r.assigned for r in _granting(o, roles))}, but "
                               f"the app needed it on {elsewhere} (in {_needed_by(used[o].tests)})")


@pytest.mark.parametrize("who", ["app", "isolated"])
def test_the_roles_grant_nothing_the_app_did_not_use(who, request):
    app_operations, roles = _whose(request, who)
    missing_suites = _suites_not_run(app_operations)
    if missing_suites:
        pytest.skip("the roles are measured across the app's suites, and these did not run in this session: "
                    f"{', '.join(missing_suites)}; run `make test` (the whole suite, this file last)")
    app_operations.drain()
    used = app_operations.ops
    assert used, "the app made no ARM call in its suites: the collector is broken"
    for action, (name, bicep, guid) in DATA_ROLES.items() if who == "app" else ():
        assert any(o and grants(action, o) for o in used), f"{action} ({name}): no test used it; the grant is untested"
        assert guid in (ROOT / bicep).read_text(), f"{bicep}: does not assign {name} ({guid})"
    for r in roles:
        unused = [a for a in r.actions() if not any(grants(a, o) for o in used if o)]
        assert not unused, f"actions {r.file.name} grants that no test exercised: {unused}"
