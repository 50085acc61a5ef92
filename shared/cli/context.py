"""What every command starts from: the environment (a ``local.settings.json``'s ``Values``, or the
process's), the credential (the Azure CLI's sign-in; the local stack's static token when the settings
say ``VMKEEPER_CLI_CREDENTIAL=local-static``, for loopback endpoints only; or one the caller hands in
through click's context object: ``cli.main(obj={"credential": ...})``), the ``Wiring`` built from both,
and the errors that end a command with exit code 1 and a message naming the option or setting at fault."""

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
# Which credential the CLI signs in with: the Azure CLI's (default), or the local stack's static bearer token
# (`make up` writes it into its local.settings.json: the emulator takes any token, and there is no `az login`).
CREDENTIAL_SETTING, AZURE_CLI, LOCAL_STATIC = "VMKEEPER_CLI_CREDENTIAL", "azure-cli", "local-static"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# -o/--output, as the Azure CLI spells them: "table" is for people (rich), the others print the command's JSON document
# (after --query) for machines.
FORMATS = ("table", "json", "jsonc", "tsv", "yaml")


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
    """One invocation: the environment, the output format and --query, the subscription -g/-n names a VM in, the
    credential and the wiring (built once)."""

    def __init__(self, env: Mapping[str, str], obj: Mapping[str, Any] | None):
        self.env: Mapping[str, str] = env
        self.output, self.query, self.subscription = "table", None, None
        self.settings_file: str | None = None
        self._obj = obj or {}
        self._credential: Any = None
        self._wiring: Wiring | None = None

    @property
    def as_json(self) -> bool:
        """For machines (any -o but table): stdout is the document alone, no progress bar, errors as documents."""
        return self.output != "table"

    def use_settings(self, path: str) -> None:
        if self._wiring is not None:
            raise CliError("--settings: given after the settings were used", "--settings")
        self.env, self.settings_file = load_settings(path), path
        if self.credential_kind() == LOCAL_STATIC:  # refused at once, whatever the command: never sent anywhere
            check_local_static(self.env, None, self.setting("VMKEEPER_API_URL"))

    def emit(self, doc: Any, human: Any) -> None:
        """The command's answer: ``human(doc)`` for people (-o table, no --query), else the document (after
        --query) in the format asked for."""
        from . import output

        if self.output == "table" and self.query is None:
            human(doc)
        else:
            output.emit(doc, self.output, self.query)

    def setting(self, name: str) -> str | None:
        """A CLI setting (``VMKEEPER_API_*``): the settings file's, else the process environment's."""
        value = self.env.get(name) or os.environ.get(name)
        return value.strip() if value and value.strip() else None

    def credential(self) -> Any:
        """The caller's credential if given (tests, the demo), else the one VMKEEPER_CLI_CREDENTIAL names: the
        Azure CLI's sign-in (``az login``), or the local stack's static token (loopback endpoints only)."""
        if self._credential is None:
            given = self._obj.get("credential")
            if given is not None:
                self._credential = given
            elif self.credential_kind() == LOCAL_STATIC:
                ctx = click.get_current_context(silent=True)  # the command's --api, if it has one
                api = ctx.params.get("api") if ctx is not None else None
                check_local_static(self.env, api, self.setting("VMKEEPER_API_URL"))
                self._credential = LocalStaticCredential()
            else:
                from azure.identity import AzureCliCredential

                tenant = self.setting("AZURE_TENANT_ID")
                self._credential = AzureCliCredential(tenant_id=tenant) if tenant else AzureCliCredential()
        return self._credential

    def credential_kind(self) -> str:
        kind = (self.setting(CREDENTIAL_SETTING) or AZURE_CLI).lower()
        if kind not in (AZURE_CLI, LOCAL_STATIC):
            raise CliError(f"{CREDENTIAL_SETTING}: {kind!r} is not a credential the CLI knows "
                           f"({AZURE_CLI} or {LOCAL_STATIC})", CREDENTIAL_SETTING)
        return kind

    def wiring(self) -> Wiring:
        if self._wiring is None:
            from .. import __version__
            from ..wiring import Wiring

            # Its own user agent: in Azure's activity log (and the tests' least-privilege count of the app's
            # calls) an operator's reads through the CLI are not the app's identity's.
            self._wiring = Wiring(self.env, self.credential(), arm_options={"user_agent": f"{USER_AGENT}/{__version__}"})
        return self._wiring


class LocalStaticCredential:
    """A fixed bearer token, for the local stack's ARM emulator (which takes any token) and its app on the local
    Functions host (which takes none): nothing here reaches an identity endpoint. Never for Azure itself
    (``check_local_static``)."""

    TOKEN = "local-emulator-token"

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self.TOKEN, int(datetime.now(UTC).timestamp()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self.TOKEN, int(datetime.now(UTC).timestamp()) + 3600)


def _loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url.strip()).hostname in LOOPBACK
    except ValueError:
        return False


def check_local_static(env: Mapping[str, str], api: str | None, api_setting: str | None) -> None:
    """The static local credential goes only to loopback endpoints: ARM (VMKEEPER_ARM_ENDPOINT, whose default is
    Azure's), the app (--api, else VMKEEPER_API_URL) and identity-based storage (its service URIs). Anything else
    is refused naming the setting or option, before a token is handed out."""
    arm = env.get("VMKEEPER_ARM_ENDPOINT") or ""
    if not arm.strip() or not _loopback(arm):
        raise CliError(f"{CREDENTIAL_SETTING}={LOCAL_STATIC} is for the local stack only: VMKEEPER_ARM_ENDPOINT "
                       f"must be a loopback URL (got {arm.strip() or 'none: Azure'!r})", "VMKEEPER_ARM_ENDPOINT")
    for name, url in (("--api", api), ("VMKEEPER_API_URL", None if api else api_setting)):
        if url and not _loopback(url):
            raise CliError(f"{CREDENTIAL_SETTING}={LOCAL_STATIC} is for the local stack only: {name} must be a "
                           f"loopback URL (got {url!r})", name)
    if not env.get("AzureWebJobsStorage"):  # identity-based storage would get the token too
        for name, url in env.items():
            remote = name.startswith("AzureWebJobsStorage__") and (
                name.endswith("ServiceUri") and not _loopback(url) or name.endswith("__accountName"))
            if remote:
                raise CliError(f"{CREDENTIAL_SETTING}={LOCAL_STATIC} is for the local stack only: {name} names "
                               f"Azure storage ({url!r}); use Azurite's connection string in AzureWebJobsStorage", name)


def current(ctx: click.Context | None = None) -> Run:
    """The invocation's Run, made by whichever comes first: a global option's callback or the group (``meta`` is
    shared by every context of the invocation)."""
    ctx = ctx or click.get_current_context()
    run = ctx.meta.get(META)
    if run is None:
        root = ctx.find_root()
        run = ctx.meta[META] = Run(os.environ, root.obj if isinstance(root.obj, Mapping) else None)
    return run


def start(ctx: click.Context) -> Run:
    run = current(ctx)
    if run.settings_file is None and run.credential_kind() == LOCAL_STATIC:  # refused at once, whatever the command
        check_local_static(run.env, None, run.setting("VMKEEPER_API_URL"))
    return run


def output_format(argv: list[str]) -> str:
    """The -o/--output (or --json) an argument list asks for, read before click has parsed it (its errors, too, are
    documents for machines); "table" when none. A value that is no format (``report -o FILE``) is not one."""
    found = "table"
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        value = None
        if arg == "--json":
            value = "json"
        elif arg in ("-o", "--output") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--output="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-o") and not arg.startswith("--") and len(arg) > 2:
            value = arg[2:]
        if value is not None and value.lower() in FORMATS:
            found = value.lower()
    return found


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
    refused = connection_refused(exc)
    if refused is not None:
        return refused
    if module.startswith("azure."):
        from azure.core.exceptions import AzureError, ClientAuthenticationError

        if isinstance(exc, ClientAuthenticationError) or type(exc).__name__ == "CredentialUnavailableError":
            return CliError(f"Azure sign-in failed: {exc} (sign in with `az login`)", "credential")
        if isinstance(exc, AzureError):
            return CliError(f"Azure answered: {str(exc)[:1000]}", "azure")
    if module.startswith(("requests", "urllib3")):
        return CliError(f"--api: the restore API could not be reached ({str(exc)[:500]})", "--api")
    return None


def _endpoint(exc: BaseException) -> str | None:
    """host:port of the connection an error (or one it wraps) failed to make, from requests' or urllib3's words."""
    import re

    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        found = re.search(r"host='([^']+)', port=(\d+)", str(e))
        if found:
            return f"{found.group(1)}:{found.group(2)}"
        stack += [getattr(e, "inner_exception", None), e.__cause__, e.__context__, *[
            a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]]
    return None


def connection_refused(exc: BaseException) -> CliError | None:
    """A connection refused (nothing listening), told as such with the endpoint and the setting or option naming it."""
    text = str(exc)
    if "Connection refused" not in text and "[Errno 111]" not in text:
        inner = exc.__cause__ or exc.__context__ or getattr(exc, "inner_exception", None)
        if inner is None or ("Connection refused" not in str(inner) and "[Errno 111]" not in str(inner)):
            return None
    where = _endpoint(exc)
    if where is None:
        return None
    run = None
    try:
        ctx = click.get_current_context(silent=True)
        run = ctx.meta.get(META) if ctx is not None else None
    except RuntimeError:
        pass
    env = run.env if run is not None else os.environ
    names = [(n, env.get(n) or os.environ.get(n) or "") for n in ("VMKEEPER_ARM_ENDPOINT", "AzureWebJobsStorage",
                                                                  "VMKEEPER_API_URL")]
    host, port = where.rsplit(":", 1)
    module = type(exc).__module__ or ""
    api = module.startswith(("requests", "urllib3"))  # the CLI's own calls (the app's API); the SDKs wrap theirs
    field = "--api" if api else next((n for n, v in names if f"{host}:{port}" in v), None)
    if field is None and port in ("80", "443"):
        field = next((n for n, v in names if f"//{host}" in v), None)
    field = field or "azure"
    if field == "VMKEEPER_API_URL":
        field = "--api"
    what = {"VMKEEPER_ARM_ENDPOINT": "Azure Resource Manager", "AzureWebJobsStorage": "storage",
            "--api": "the app's API", "azure": "Azure"}[field]
    return CliError(f"{field}: connection refused by {where} ({what}): nothing is listening there; is it running? "
                    "(the local stack: `make up`)", field, endpoint=where)
