"""A WebHook event subscriber on 127.0.0.1 for tests: it passes Event Grid's endpoint validation (the
CloudEvents abuse-protection ``OPTIONS`` handshake and the ``SubscriptionValidationEvent``) and keeps
every event delivered to it, in arrival order.

    with WebHookSubscriber() as subscriber:          # listening on a free port
        ... create an event subscription with endpointUrl=subscriber.url, publish ...
        events = subscriber.wait_for(2, timeout=10)  # the first two events (dicts), or TimeoutError

A delivery of CloudEvents carries one event (``application/cloudevents+json``), of the Event Grid or a
custom schema an array; either way ``events`` holds single events. ``fail_next(n, status)`` makes the next
n deliveries fail, to watch Event Grid retry.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Delivery:
    """One notification request as it arrived: lower-cased headers and the parsed body."""

    headers: dict[str, str]
    body: Any


class WebHookSubscriber:
    def __init__(self, *, allowed_origin: str | None = "*", path: str = "/api/events"):
        """``allowed_origin``: the ``WebHook-Allowed-Origin`` answered to the handshake (None: refuse it)."""
        self.allowed_origin = allowed_origin
        self.deliveries: list[Delivery] = []
        self.handshakes = 0
        self.validations = 0
        self._failures: list[int] = []
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{path}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-subscriber", daemon=True)
        self._thread.start()

    # --- what tests read -----------------------------------------------------------------------------------
    @property
    def events(self) -> list[dict[str, Any]]:
        with self._changed:
            return [e for d in self.deliveries for e in (d.body if isinstance(d.body, list) else [d.body])]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The first ``count`` events once that many have arrived; TimeoutError (saying how many came) if not."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.events) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.events)} of {count} events arrived at {self.url} in {timeout} s")
                self._changed.wait(left)
            return self.events[:count]

    def fail_next(self, count: int, status: int = 503) -> None:
        with self._changed:
            self._failures.extend([status] * count)

    def clear(self) -> None:
        with self._changed:
            self.deliveries.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebHookSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the HTTP side ---------------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        subscriber = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_OPTIONS(self) -> None:  # noqa: N802 (the CloudEvents abuse-protection handshake)
                with subscriber._changed:
                    subscriber.handshakes += 1
                origin = self.headers.get("WebHook-Request-Origin")
                if subscriber.allowed_origin is None or not origin:
                    self._answer(400)
                    return
                self._answer(200, {"WebHook-Allowed-Origin": subscriber.allowed_origin, "WebHook-Allowed-Rate": "*"})

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._answer(400)
                    return
                if headers.get("aeg-event-type") == "SubscriptionValidation":
                    with subscriber._changed:
                        subscriber.validations += 1
                    code = body[0]["data"]["validationCode"] if isinstance(body, list) and body else None
                    self._answer(200, body={"validationResponse": code})
                    return
                with subscriber._changed:
                    status = subscriber._failures.pop(0) if subscriber._failures else 200
                    if status == 200:
                        subscriber.deliveries.append(Delivery(headers, body))
                        subscriber._changed.notify_all()
                self._answer(status)

            def _answer(self, status: int, headers: dict[str, str] | None = None, body: Any = None) -> None:
                payload = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        return Handler
