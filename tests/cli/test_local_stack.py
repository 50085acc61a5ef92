"""`make up`'s stack as an operator meets it: started as `make up` starts it (``python -m scripts.stack up``, a
process of its own), its ``local.settings.json`` lets the CLI — no credential handed in, it reads the file's —
run ``status`` against local Azure and the app, showing the seeded fleet; SIGINT (Ctrl-C) stops it cleanly, its
files removed and none of its processes left. And what it must not do: overwrite a settings file it did not write,
or signal a process a stale pid file names."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from click.testing import CliRunner

from scripts import stack
from shared.cli.main import cli
from tests.cli.cli_world import json_out

ROOT = Path(__file__).resolve().parent.parent.parent


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc: each one's parent)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(text.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_make_ups_settings_file_lets_the_cli_show_the_fleet_and_ctrl_c_stops_everything(tmp_path):
    settings, pid_file, log = tmp_path / "local.settings.json", tmp_path / "stack.pid", tmp_path / "stack.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "scripts.stack", "up", "--port", "0", "--settings-file",
                                 str(settings), "--pid-file", str(pid_file)], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 45
        while not settings.exists():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        doc = json.loads(settings.read_text())
        values = doc["Values"]
        assert doc["IsEncrypted"] is False and pid_file.read_text().strip() == str(proc.pid)
        api, arm = urlsplit(values["VMKEEPER_API_URL"]), urlsplit(values["VMKEEPER_ARM_ENDPOINT"])
        assert (api.scheme, api.hostname, doc["Host"]["LocalHttpPort"]) == ("http", "127.0.0.1", api.port)
        assert (arm.scheme, arm.hostname) == ("https", "127.0.0.1") and Path(values["VMKEEPER_ARM_CA_BUNDLE"]).is_file()
        assert values["VMKEEPER_CLI_CREDENTIAL"] == "local-static" and values["VMKEEPER_API_KEY"]
        printed = log.read_text()
        assert "vmkeeper --settings" in printed and " status" in printed and "/api/report" in printed
        with urllib.request.urlopen(f"{values['VMKEEPER_API_URL']}/api/health", timeout=10) as health:
            assert health.status == 200  # the app's HTTP triggers, served

        result = CliRunner().invoke(cli, ["--settings", str(settings), "status", "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output  # the fleet was protected once: all met or opted out
        fleet = json_out(result, "status")
        assert sorted(v["name"] for v in fleet["vms"]) == [f"vm-{i:05d}" for i in range(10)]
        assert {v["subscription"] for v in fleet["vms"]} == set(values["VMKEEPER_SUBSCRIPTIONS"].split(","))
        assert fleet["counts"]["met"] == 8 and fleet["counts"]["opted_out"] == 2
        human = CliRunner(env={"COLUMNS": "100"}).invoke(cli, ["--settings", str(settings), "status", "--recorded"])
        assert human.exit_code == 0 and "vm-00000" in human.stdout and "8 met" in human.stdout

        children = descendants(proc.pid)
        assert len(children) >= 2  # Azurite and the emulator at least
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, log.read_text()
    assert "local stack stopped" in log.read_text()
    assert not settings.exists() and not pid_file.exists()
    assert [p for p in children if alive(p)] == []


def test_up_refuses_a_settings_file_it_did_not_write_and_starts_nothing(tmp_path):
    theirs = tmp_path / "local.settings.json"
    theirs.write_text('{"IsEncrypted": false, "Values": {"FUNCTIONS_WORKER_RUNTIME": "python"}}')
    before = theirs.read_text()
    assert stack.main(["up", "--settings-file", str(theirs), "--pid-file", str(tmp_path / "pid")]) == 1
    assert theirs.read_text() == before and not (tmp_path / "pid").exists()


def test_down_never_signals_a_process_that_is_not_a_stack(tmp_path, capsys):
    stale = tmp_path / "stack.pid"
    stale.write_text(f"{os.getpid()}\n")  # a reused pid: this test's own process, which must live on
    assert stack.main(["down", "--pid-file", str(stale)]) == 0
    assert "no local stack is running" in capsys.readouterr().out and not stale.exists()


def test_a_taken_port_is_told_and_the_app_served_on_a_free_one(monkeypatch):
    import socket

    import azure.functions as func

    from devtools.functions_host import LocalFunctionsHost

    app = func.FunctionApp()

    @app.route(route="health", auth_level=func.AuthLevel.ANONYMOUS)
    def health(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")  # the host's default, undone after
    told: list[str] = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        host = LocalFunctionsHost(app, "UseDevelopmentStorage=true")
        try:
            url = stack._serve(host, port, told.append)
            assert urlsplit(url).port not in (port, None) and url in told[0] and str(port) in told[0]
            with urllib.request.urlopen(f"{url}/api/health", timeout=10) as answer:
                assert answer.read() == b"ok"
        finally:
            host.close()
