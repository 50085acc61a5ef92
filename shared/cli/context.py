"""What every command starts from: the environment (a ``local.settings.json``'s ``Values``, or the
process's), the credential (the Azure CLI's sign-in, unless the caller hands one in through click's
context object: ``cli.main(obj={"credential": ...})``), the ``Wiring`` built from both, and the errors
that end a command with exit code 1 and a message naming the option or setting at fault."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..wiring import Wiring

META = "vmkeeper.cli"  # where the run's state is kept in click's ``ctx.meta`` (the caller's obj stays theirs)
EXIT_ERROR, EXIT_BREACHED, EXIT_DRILL_FAILED = 1, 2, 3
USER_AGENT = "vmkeeper-cli"


class CliError(click.ClickException):
    """Ends the command with exit code 1; ``field`` names the option, argument or setting at fault."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, field: str | None = None, **extra: Any):
        super().__init__(message)
        self.field, self.extra = field, extra

    def to_json(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "field": self.field, **self.extra}}


def load_settings(path: str) -> dict[str, str]:
    """The ``Values`` of a ``local.settings.json``-style file, as the environment the app would see."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"--settings: cannot read {path!r} ({exc.strerror or exc})", "--settings") from None
    except ValueError as exc:
        raise CliError(f"--settings: {path!r} is not JSON ({exc})", "--settings") from None
    values = doc.get("Values") if isinstance(doc, dict) else None
    if not isinstance(values, dict):
        raise CliError(f"--settings: {path!r} has no \"Values\" object (local.settings.json's shape)", "--settings")
    env: dict[str, str] = {}
    for name, value in values.items():
        if isinstance(value, bool):
            env[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            env[name] = str(value)
        elif value is not None:
            raise CliError(f"--settings: Values.{name} must be a string (got {type(value).__name__})", "--settings")
    return env


class Run:
    """One invocation: the environment, the output mode, the credential and the wiring (built once)."""

    def __init__(self, env: Mapping[str, str], as_json: bool, obj: Mapping[str, Any] | None):
        self.env, self.as_json = env, as_json
        self._obj = obj or {}
        self._credential: Any = None
        self._wiring: Wiring | None = None

    def setting(self, name: str) -> str | None:
        """A CLI setting (``VMKEEPER_API_*``): the settings file's, else the process environment's."""
        value = self.env.get(name) or os.environ.get(name)
        return value.strip() if value and value.strip() else None

    def credential(self) -> Any:
        """The caller's credential if given (tests, the demo), else the Azure CLI's sign-in (``az login``)."""
        if self._credential is None:
            given = self._obj.get("credential")
            if given is not None:
                self._credential = given
            else:
                from azure.identity import AzureCliCredential

                tenant = self.setting("AZURE_TENANT_ID")
                self._credential = AzureCliCredential(tenant_id=tenant) if tenant else AzureCliCredential()
        return self._credential

    def wiring(self) -> Wiring:
        if self._wiring is None:
            from .. import __version__
            from ..wiring import Wiring

            # Its own user agent: in Azure's activity log (and the tests' least-privilege count of the app's
            # calls) an operator's reads through the CLI are not the app's identity's.
            self._wiring = Wiring(self.env, self.credential(), arm_options={"user_agent": f"{USER_AGENT}/{__version__}"})
        return self._wiring


def current() -> Run:
    return click.get_current_context().meta[META]


def start(ctx: click.Context, settings: str | None, as_json: bool) -> Run:
    env: Mapping[str, str] = load_settings(settings) if settings else os.environ
    run = Run(env, as_json, ctx.obj if isinstance(ctx.obj, Mapping) else None)
    ctx.meta[META] = run
    return run


def parse_time(value: str, option: str = "--at") -> datetime:
    """An ISO 8601 instant with a UTC offset (``2026-11-25T06:00:00Z``); a clear error naming ``option``."""
    text = value.strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option}: {value!r} is not an ISO 8601 time (e.g. 2026-11-25T06:00:00Z)", option) from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise CliError(f"{option}: {value!r} has no UTC offset (add Z or +01:00)", option)
    return when.astimezone(UTC)


def translate(exc: BaseException) -> CliError | None:
    """The errors a command may meet in the world (settings, the policy document, Azure, the network),
    as exit-1 errors that say what to fix; None for anything else (a bug: let it show)."""
    from ..settings import SettingError

    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, SettingError):
        name = str(exc).split(":", 1)[0]
        return CliError(str(exc), name if name.isupper() or name.startswith("VMKEEPER_") else None)
    module = type(exc).__module__ or ""
    if module.startswith("shared.policy"):  # PolicyError: each problem names the document's field
        return CliError(f"VMKEEPER_POLICY_FILE: {exc}", "VMKEEPER_POLICY_FILE")
    if module.startswith("azure."):
        from azure.core.exceptions import AzureError, ClientAuthenticationError

        if isinstance(exc, ClientAuthenticationError) or type(exc).__name__ == "CredentialUnavailableError":
            return CliError(f"Azure sign-in failed: {exc} (sign in with `az login`)", "credential")
        if isinstance(exc, AzureError):
            return CliError(f"Azure answered: {str(exc)[:1000]}", "azure")
    if module.startswith(("requests", "urllib3")):
        return CliError(f"--api: the restore API could not be reached ({str(exc)[:500]})", "--api")
    return None
