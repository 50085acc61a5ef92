"""The hooks as azd runs them: each reads azd's environment, signs in as azd does and returns an exit code
(non-zero stops the azd command, continueOnError being false)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from . import teardown, vm_events
from .arm import Arm, signed_in_as_azd
from .azd_env import AzdEnv, HookError

ROOT = Path(__file__).resolve().parents[3]  # the azd project (azure.yaml)
PLAN_FILE = "vmkeeper-teardown.json"

Say = Callable[[str], None]


def plan_path(environ: Mapping[str, str]) -> Path:
    """Where predown leaves the teardown plan for postdown: the azd environment's own folder (git-ignored), or
    VMKEEPER_TEARDOWN_PLAN."""
    override = environ.get("VMKEEPER_TEARDOWN_PLAN", "").strip()
    return Path(override) if override else ROOT / ".azure" / AzdEnv(environ).require("AZURE_ENV_NAME") / PLAN_FILE


def postdeploy(environ: Mapping[str, str], arm: Arm | None = None, say: Say = print) -> int:
    """Subscribe vm_events to every protected subscription's system topic."""
    env = AzdEnv(environ)
    target = vm_events.Target(env.require("AZURE_FUNCTION_APP_ID"), env.require("AZURE_IDENTITY_ID"),
                              env.require("AZURE_STORAGE_ACCOUNT_ID"), env.require("EVENTGRID_DEADLETTER_CONTAINER"))
    topics = env.array("EVENTGRID_SYSTEM_TOPIC_IDS")
    arm = arm or signed_in_as_azd(env.optional("AZURE_TENANT_ID"), env.optional("AZURE_RESOURCE_MANAGER_ENDPOINT"))
    outcomes = vm_events.subscribe(arm, topics, target, say)
    failed = [o for o in outcomes if o.result in ("refused", "failed")]
    if failed:
        say(f"vmkeeper: vm_events is not subscribed to {len(failed)} of {len(outcomes)} system topics (above): VMs "
            "there are still backed up on schedule, but not enrolled in Azure Backup when they are created")
        return 1
    return 0


def predown(environ: Mapping[str, str], arm: Arm | None = None, say: Say = print) -> int:
    """Before azd down: the plan of what postdown deletes, read while main.bicep's outputs exist; and the sign-in
    checked, so that a teardown that could not finish stops azd down before it deletes anything."""
    plan = teardown.plan_from(AzdEnv(environ))
    arm = arm or signed_in_as_azd(plan.tenant_id, plan.endpoint)
    group = plan.resource_group_id.split("/")
    arm.resources(group[2]).resource_groups.check_existence(group[4])
    path = plan_path(environ)
    plan.save(path)
    say(f"vmkeeper: once azd down has deleted {plan.resource_group_id}, postdown deletes what vmkeeper made outside "
        f"it, each only if it is still vmkeeper's (plan: {path}):")
    for line in plan.lines():
        say(f"  {line}")
    return 0


def postdown(environ: Mapping[str, str], arm: Arm | None = None, say: Say = print) -> int:
    path = plan_path(environ)
    if not path.exists():
        raise HookError(f"no teardown plan at {path}: predown writes it (azd down runs it; or `azd hooks run predown` "
                        "while main.bicep's outputs are still in the azd environment).")
    plan = teardown.Plan.load(path)
    arm = arm or signed_in_as_azd(plan.tenant_id, plan.endpoint)
    outcomes = teardown.execute(arm, plan, say)
    left = [o for o in outcomes if o.result in ("kept", "failed")]
    if left:
        say(f"vmkeeper: {len(left)} left (above); fix what they say, then `azd hooks run postdown` (plan kept at {path})")
        return 1
    path.unlink()
    say("vmkeeper: nothing vmkeeper made is left")
    return 0


def run(hook: Callable[[Mapping[str, str]], int]) -> int:
    """A hook as a script: its exit code; a clear message instead of a traceback for what the operator can fix."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    try:
        return hook(os.environ)
    except HookError as exc:
        print(f"vmkeeper: {exc}", file=sys.stderr)
    except ClientAuthenticationError as exc:
        print(f"vmkeeper: not signed in to Azure as azd: run `azd auth login` ({str(exc).splitlines()[0]})",
              file=sys.stderr)
    except HttpResponseError as exc:  # e.g. 403: the signed-in user may not do this (infra/README.md, Troubleshooting)
        print(f"vmkeeper: Azure refused: {str(exc.message or exc).splitlines()[0]}", file=sys.stderr)
    return 1
