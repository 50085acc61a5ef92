"""HTTPS transport: a threaded HTTP/1.1 server on 127.0.0.1 with a throwaway CA made at start
(trustme), so the real SDK clients verify TLS against ``ca_path`` as they would against Azure."""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import struct
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .app import Emulator

log = logging.getLogger("emulator.server")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "local-azure-emulator"
    # TCP_NODELAY: an answer is written as its headers, then its body; with Nagle on, the body waits for the
    # client's delayed ACK of the headers (40 ms on Linux), so every call took ~45 ms instead of ~2 ms.
    disable_nagle_algorithm = True
    emulator: Emulator  # set on the subclass made per server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        outcome = self.emulator.handle(self.command, self.path, dict(self.headers.items()), body)
        if outcome.delay:
            time.sleep(outcome.delay)
        if outcome.reset:
            # SO_LINGER 0 makes close() send a TCP RST: the client sees "connection reset by peer".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        resp = outcome.response
        raw = isinstance(resp.body, bytes)  # a data plane's own bytes (a SAS read), sent as they are
        payload = b"" if resp.body is None else resp.body if raw else json.dumps(resp.body).encode()
        self.send_response(resp.status)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        if resp.body is not None and not raw:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _serve  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("%s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class EmulatorServer:
    """Owns the listening socket, the TLS material and the emulator's background threads."""

    def __init__(self, emulator: Emulator | None = None, *, port: int = 0, workdir: str | None = None):
        import trustme

        self.emulator = emulator or Emulator()
        self.workdir = workdir or tempfile.mkdtemp(prefix="local-azure-emulator-")
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_path = os.path.join(self.workdir, "ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        handler = type("Handler", (_Handler,), {"emulator": self.emulator})
        self.httpd = _Server(("127.0.0.1", port), handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.base_url = f"https://127.0.0.1:{self.port}"
        self.emulator.base_url = self.base_url
        self._thread: threading.Thread | None = None

    def info(self) -> dict[str, object]:
        return {"base_url": self.base_url, "ca_path": self.ca_path, "port": self.port, "pid": os.getpid(),
                "tenant_id": self.emulator.store.tenant_id}

    def start(self) -> EmulatorServer:
        self.emulator.start_ticker()
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="emulator-https", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.emulator.start_ticker()
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.emulator.stop()
