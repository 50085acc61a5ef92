"""Start local Azure as child processes on free 127.0.0.1 ports, and stop them afterwards:
Azurite (queues, tables, blobs; telemetry off) and ``python -m emulator``."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Azurite's published development account (documented by Microsoft; not a secret). Local only.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _die_with_parent() -> None:
    """In the child, before exec: if this (parent) process dies — even by SIGKILL or a timeout's
    SIGTERM, when no finally block runs — the child gets SIGTERM too. No stray servers."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Azurite:
    queue_port: int
    table_port: int
    blob_port: int

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{AZURITE_ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{AZURITE_ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{AZURITE_ACCOUNT};"
        )


def azurite_binary() -> str:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if not found:
        raise RuntimeError("Azurite is not installed: run `make setup` (npm ci installs it from package-lock.json)")
    return found


@contextlib.contextmanager
def azurite(attempts: int = 3) -> Iterator[Azurite]:
    """Azurite on free ports; a start that fails (a port taken between choosing and binding, a
    slow machine) is tried again on new ports."""
    workdir = tempfile.mkdtemp(prefix="vmkeeper-azurite-")  # its cwd: debug logs never land in the repo
    proc, ports, error = None, None, None
    try:
        for _ in range(attempts):
            ports = Azurite(free_port(), free_port(), free_port())
            cmd = [
                azurite_binary(), "--silent", "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck",
                "--blobHost", "127.0.0.1", "--blobPort", str(ports.blob_port),
                "--queueHost", "127.0.0.1", "--queuePort", str(ports.queue_port),
                "--tableHost", "127.0.0.1", "--tablePort", str(ports.table_port),
            ]
            errors = Path(workdir) / "azurite.err"  # a file, not a pipe: a full pipe would block Azurite
            with errors.open("wb") as err:
                proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                                        preexec_fn=_die_with_parent)
            try:
                for port in (ports.queue_port, ports.table_port, ports.blob_port):
                    _wait_port(port, proc, timeout=60)
                break
            except (RuntimeError, TimeoutError) as exc:
                error = f"{exc}: {errors.read_text(errors='replace')[-500:]}"
                _stop(proc)
                proc = None
        if proc is None or ports is None:
            raise RuntimeError(f"Azurite did not start: {error}")
        yield ports
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def emulator_process(*args: str) -> Iterator[dict]:
    """``python -m emulator`` in a child process; yields the JSON line it prints first."""
    workdir = tempfile.mkdtemp(prefix="vmkeeper-emulator-")  # the throwaway CA lives and dies here
    cmd = [sys.executable, "-m", "emulator", "--workdir", workdir, *args]
    log = Path(workdir) / "emulator.log"  # a file, not a pipe that could fill and block the server
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True,
                                start_new_session=True, preexec_fn=_die_with_parent)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            raise RuntimeError(f"emulator did not start: {log.read_text(errors='replace')[-2000:]}")
        info = json.loads(line)
        yield info
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
