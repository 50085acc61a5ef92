"""`make up` / `make down`: a local stack an operator can point the CLI at.

``python -m scripts.stack up`` starts local Azure (Azurite and the ARM emulator, child processes on 127.0.0.1),
seeds a small fleet (devtools/fleet.py's tags over a few subscriptions), runs the app on the local Functions host
(queue triggers pumping, timers on their schedules, HTTP on 127.0.0.1:``--port``, 7071 as ``func start``, or a
free port, printed, if that one is taken), protects the fleet once, writes ``local.settings.json`` (the Functions
format; the app's settings plus what the CLI needs: the app's URL and key, and ``VMKEEPER_CLI_CREDENTIAL=
local-static``), prints what to try and runs in the foreground until Ctrl-C (SIGINT) or SIGTERM. Then it stops
everything it started and removes the settings and pid files it wrote.

``python -m scripts.stack down`` stops the stack the pid file names (SIGINT, as Ctrl-C) and waits for it to end.

Nothing is overwritten that the stack did not write: a ``local.settings.json`` of another origin stays, and the
stack refuses to start."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devtools.fleet import VMKEEPER_TAG_SETS

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILE = ROOT / "local.settings.json"
PID_FILE = ROOT / ".local-stack.pid"
DEFAULT_PORT = 7071  # `func start`'s
MARKER = "VMKEEPER_LOCAL_STACK"  # in Values: this file is the stack's to replace and remove
ENTRY = "scripts.stack"  # how `down` knows the pid file's process is a stack (its command line)
REGIONS = ["westeurope", "northeurope"]
FLEET = {"subscriptions": 2, "resource_groups": 2, "vms": 10, "data_disks": [1, 2], "regions": REGIONS,
         "seed": 2026, "tag_sets": VMKEEPER_TAG_SETS}
POLICIES = {"version": 1, "default": "bronze", "policies": {
    "gold": {"schedule": {"every_hours": 4}, "snapshots": {"luns": "all"},
             "restore_point": {"consistency": "CrashConsistent"}, "retention": {"keep_last": 6}},
    "silver": {"schedule": {"every_hours": 12}, "snapshots": {"luns": "all", "include_os_disk": False},
               "retention": {"keep_last": 4}},
    "bronze": {"schedule": {"every_hours": 24}, "snapshots": {"luns": [0]}, "retention": {"keep_last": 7}},
}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.stack", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up_ = sub.add_parser("up", help="start the local stack in the foreground until Ctrl-C")
    up_.add_argument("--port", type=int, default=int(os.environ.get("VMKEEPER_LOCAL_PORT") or DEFAULT_PORT),
                     help=f"the app's HTTP port on 127.0.0.1 (default: VMKEEPER_LOCAL_PORT, else {DEFAULT_PORT}; "
                          "0: a free one)")
    down_ = sub.add_parser("down", help="stop the local stack the pid file names")
    for p in (up_, down_):
        p.add_argument("--settings-file", type=Path, default=SETTINGS_FILE, help="the local.settings.json written")
        p.add_argument("--pid-file", type=Path, default=PID_FILE, help="where the running stack's pid is kept")
    args = parser.parse_args(argv)
    return up(args.port, args.settings_file, args.pid_file) if args.command == "up" else down(args.pid_file)


# --- the pid file -------------------------------------------------------------------------------------
def running_stack(pid_file: Path) -> int | None:
    """The pid the file names, if that process is alive and is a stack; a stale file (no such process, or a
    reused pid running something else) is removed and None returned."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        cmdline, pid = [], 0
    if ENTRY.encode() in cmdline and b"up" in cmdline:
        return pid
    with contextlib.suppress(FileNotFoundError):
        pid_file.unlink()
    return None


def down(pid_file: Path, timeout: float = 60.0) -> int:
    pid = running_stack(pid_file)
    if pid is None:
        print(f"no local stack is running ({pid_file} names none)")
        return 0
    os.kill(pid, signal.SIGINT)  # as Ctrl-C in its terminal: it stops what it started and removes its files
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists() and running_stack(pid_file) == pid:
        time.sleep(0.2)
    if running_stack(pid_file) == pid:
        print(f"the local stack (pid {pid}) is still stopping after {timeout:g} s", file=sys.stderr)
        return 1
    print(f"local stack (pid {pid}) stopped")
    return 0


# --- up -----------------------------------------------------------------------------------------------
def up(port: int, settings_file: Path, pid_file: Path) -> int:
    other = running_stack(pid_file)
    if other is not None:
        print(f"a local stack is already running (pid {other}): `make down` stops it", file=sys.stderr)
        return 1
    if settings_file.exists() and not _ours(settings_file):
        print(f"{settings_file} exists and was not written by `make up`: move it away first (nothing was started)",
              file=sys.stderr)
        return 1
    # Ctrl-C, `make down`, `kill`: all stop as cleanly. SIGINT's handler is set even when inherited ignored (a shell
    # ignores it in what it starts in the background, `make up &`), or `make down` could not stop it.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    pid_file.write_text(f"{os.getpid()}\n")
    try:
        with _stack(port) as (values, banner):
            _write(settings_file, values, port=int(values["VMKEEPER_API_URL"].rsplit(":", 1)[1]))
            print(banner.replace("{settings}", _shown(settings_file)), flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping the local stack …", flush=True)
    finally:
        if _ours(settings_file):
            settings_file.unlink()
        if running_stack(pid_file) == os.getpid():
            pid_file.unlink()
    print("local stack stopped: Azurite, the emulator and the app are gone", flush=True)
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _ours(path: Path) -> bool:
    try:
        return MARKER in json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    except (OSError, ValueError, AttributeError):
        return False


def _write(path: Path, values: dict[str, str], port: int) -> None:
    """Written whole, then renamed into place: whoever waits for the file never reads half of it."""
    doc = {"IsEncrypted": False, "Values": values, "Host": {"LocalHttpPort": port}}
    part = path.with_name(f".{path.name}.{os.getpid()}")
    part.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    part.replace(path)


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    return str(path)


@contextlib.contextmanager
def _stack(port: int):
    """Everything running: yields the settings file's Values and the banner to print. Stops it all on exit."""
    import importlib

    from devtools.functions_host import LocalFunctionsHost
    from devtools.processes import azurite, emulator_process
    from emulator.testing import LocalAzure, StaticCredential
    from shared import wiring
    from shared.access import OPERATOR, encode_principal
    from shared.cli.context import CREDENTIAL_SETTING, LOCAL_STATIC

    started = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {message}", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="vmkeeper-stack-"))
    with azurite() as storage, emulator_process() as info:
        say(f"Azurite on 127.0.0.1 (queue :{storage.queue_port}, table :{storage.table_port}, "
            f"blob :{storage.blob_port}), telemetry off; ARM emulator at {info['base_url']}")
        az = LocalAzure(info["base_url"], info["ca_path"])
        az.settings(lro={"default_seconds": 0.2})
        fleet = az.seed(**FLEET)
        subs = fleet["subscriptions"]
        _restore_groups(az, subs)
        say(f"seeded {fleet['vms']} VMs ({fleet['disks']} disks) in {len(subs)} subscriptions")
        policy_file = workdir / "policies.json"
        policy_file.write_text(json.dumps(POLICIES), encoding="utf-8")
        settings = app_settings(storage.connection_string, az.base_url, az.ca_path, subs, str(policy_file))
        os.environ.update(settings)  # app settings reach the functions as the environment
        wiring.use(wiring.Wiring(credential=StaticCredential()))  # the emulator takes any bearer token
        import function_app

        host = LocalFunctionsHost(importlib.reload(function_app).app, storage.connection_string)
        try:
            host.ensure_queues()
            host.fire_timer("plan_slot")
            host.run_until_idle(timeout=300)
            host.fire_timer("compliance_evaluation")  # `vmkeeper status --recorded` and the report have a verdict
            failed = sum(1 for i in host.invocations if not i["ok"])
            say(f"fleet protected once: {len(host.invocations)} function invocations, {failed} failed")
            host.start()
            timers = host.start_timers()
            url = _serve(host, port, say)
            principal = encode_principal("00000000-0000-0000-0000-00000000a11c", [OPERATOR], name="you@localhost")
            values = {**settings, "VMKEEPER_API_URL": url, "VMKEEPER_API_KEY": host.function_key or "",
                      "VMKEEPER_API_PRINCIPAL": principal, CREDENTIAL_SETTING: LOCAL_STATIC,
                      MARKER: "written by `make up`; removed when it stops"}
            yield values, banner(url, host.function_key or "", principal, az, subs, timers, _example_vm(subs))
        finally:
            host.close()
            wiring.use(None)
    import shutil

    shutil.rmtree(workdir, ignore_errors=True)


def app_settings(connection: str, arm: str, ca: str, subs: list[str], policy_file: str) -> dict[str, str]:
    """The app settings infra/app/function.bicep writes, with local values (its schedules' defaults)."""
    return {
        "AzureWebJobsStorage": connection, "VMKEEPER_ARM_ENDPOINT": arm, "VMKEEPER_ARM_CA_BUNDLE": ca,
        "VMKEEPER_SUBSCRIPTIONS": ",".join(subs), "VMKEEPER_POLICY_FILE": policy_file,
        "VMKEEPER_SCHEDULE": "0 */15 * * * *", "VMKEEPER_RETENTION_SCHEDULE": "0 30 3 * * *",
        "VMKEEPER_COMPLIANCE_SCHEDULE": "0 */30 * * * *", "VMKEEPER_DRILL_SCHEDULE": "0 0 3 * * *",
        "VMKEEPER_REPLICATION_SCHEDULE": "0 10,40 * * * *", "VMKEEPER_RECOVERY_PLAN_SCHEDULE": "0 */15 * * * *",
        "VMKEEPER_PROTECT_SCHEDULE": "0 5,35 * * * *", "VMKEEPER_COST_SCHEDULE": "0 15 6 * * *",
        "VMKEEPER_COST_TABLE": "vmkeepercost", "VMKEEPER_RETAIL_PRICES_URL": f"{arm}/api/retail/prices",
        "VMKEEPER_PROTECT_QUEUE": "vmkeeper-protect", "VMKEEPER_PROTECT_TABLE": "vmkeeperprotection",
        "VMKEEPER_JOBS_QUEUE": "vmkeeper-jobs", "VMKEEPER_RESTORE_QUEUE": "vmkeeper-restores",
        "VMKEEPER_RESTORE_TABLE": "vmkeeperrestores", "VMKEEPER_DRILL_QUEUE": "vmkeeper-drills",
        "VMKEEPER_REPLICATION_QUEUE": "vmkeeper-replication", "VMKEEPER_FAILOVER_QUEUE": "vmkeeper-failovers",
        "VMKEEPER_FAILOVER_TABLE": "vmkeeperfailovers", "VMKEEPER_LEDGER_TABLE": "vmkeeperledger",
        "VMKEEPER_BUDGET_TABLE": "vmkeeperbudget", "VMKEEPER_ALERTS_TABLE": "vmkeeperalerts",
        "VMKEEPER_WRITES_PER_SECOND": "100", "VMKEEPER_RESTORE_SCOPES": ",".join(f"/subscriptions/{s}" for s in subs),
    }


def _restore_groups(az: Any, subs: list[str]) -> None:
    from azure.mgmt.resource.resources import ResourceManagementClient

    for s in subs:
        az.client(ResourceManagementClient, s).resource_groups.create_or_update("rg-restore", {"location": REGIONS[0]})


def _example_vm(subs: list[str]) -> tuple[str, str | None]:
    """A gold VM of the fleet and its newest complete snapshot set's id (from the evaluation just recorded), for
    the commands printed."""
    from shared.wiring import current

    recorded = current().compliance.recorded()
    for row in recorded.vms if recorded else ():
        point = next((k.point_id for k in row.kinds if k.kind == "snapshot_set" and k.point_id), None)
        if row.policy == "gold" and point:
            return row.vm_id, point
    return f"/subscriptions/{subs[0]}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000", None


def _serve(host: Any, port: int, say: Any) -> str:
    try:
        return host.serve_http(port)
    except OSError as exc:  # taken (another stack, `func start`): any free port, printed in the banner
        url = host.serve_http(0)
        say(f"port {port} is taken ({exc.strerror}): the app listens on {url} instead")
        return url


def banner(url: str, key: str, principal: str, az: Any, subs: list[str], timers: dict[str, Any],
           example: tuple[str, str | None]) -> str:
    vm, point = example
    cli = "vmkeeper --settings {settings}"
    group = f"/subscriptions/{vm.split('/')[2]}/resourceGroups/rg-restore"
    restore = f"  {cli} restore {vm} {point or '<POINT_ID from points>'} --target-type disks \\\n" \
              f"      --resource-group {group} --dry-run"
    next_runs = ", ".join(f"{n} {t:%H:%M:%S}" for n, t in sorted(timers.items(), key=lambda x: str(x[1])) if t)[:300]
    return f"""
vmkeeper local stack is up (pid {os.getpid()}): Ctrl-C here, or `make down` in another terminal, stops it.
  app (local Functions host)  {url}/api/health   function key in {{settings}} (VMKEEPER_API_KEY)
  ARM emulator                {az.base_url}   CA {az.ca_path}
  subscriptions               {', '.join(subs)}
  timers (UTC)                {next_runs}
  settings for the CLI        {{settings}}  (the static local credential: loopback only)

Try (with .venv/bin on your PATH):
  {cli} status
  {cli} status --recorded
  {cli} points {vm}
{restore}
  {cli} report -o report.html     then open report.html
  curl -s -H 'x-functions-key: {key}' -H 'X-MS-CLIENT-PRINCIPAL: {principal}' {url}/api/report -o report.html
"""


if __name__ == "__main__":
    sys.exit(main())
