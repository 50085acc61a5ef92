"""The role assignments infra/ makes for vmkeeper's identity, for the emulator to hold (its role assignments,
emulator/README.md): infra/vmkeeper-role.json at each protected subscription (main.bicep ``roleAssignments``) and
infra/vmkeeper-staging-role.json at each restore staging storage account (``stagingRoleAssignments``). A test that
installs them runs the app as deployed: an action or a linked check they lack is refused as Azure refuses it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

INFRA = Path(__file__).resolve().parents[2] / "infra"


def _actions(name: str) -> list[str]:
    return json.loads((INFRA / name).read_text(encoding="utf-8"))["actions"]


def assignments(principal: str, subscriptions: list[str], staging_accounts: list[str]) -> list[dict[str, Any]]:
    """``principal``: the bearer token the app's credential presents (``StaticCredential(principal)``)."""
    return ([{"principal": principal, "scope": f"/subscriptions/{s}", "actions": _actions("vmkeeper-role.json"),
              "role": "vmkeeper"} for s in subscriptions]
            + [{"principal": principal, "scope": a, "actions": _actions("vmkeeper-staging-role.json"),
                "role": "vmkeeper restore staging"} for a in staging_accounts])


def isolated_assignments(principal: str, subscriptions: list[str], backup_group: str) -> list[dict[str, Any]]:
    """The second identity's (isolated copies, infra/security/isolated.bicep): infra/vmkeeper-isolated-role.json at
    the backup subscription's group, infra/vmkeeper-isolated-source-role.json at each protected subscription."""
    return ([{"principal": principal, "scope": backup_group, "actions": _actions("vmkeeper-isolated-role.json"),
              "role": "vmkeeper isolated copies"}]
            + [{"principal": principal, "scope": f"/subscriptions/{s}",
                "actions": _actions("vmkeeper-isolated-source-role.json"), "role": "vmkeeper isolated copies source"}
               for s in subscriptions])
