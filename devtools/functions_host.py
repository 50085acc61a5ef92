"""A local stand-in for the Azure Functions host, for tests and the demo (the real ``func`` host
can't be installed here). It runs a FunctionApp's functions as the host would:

- queue triggers: messages are received from Azurite, handed to the function as
  ``azure.functions.QueueMessage`` (with ``dequeue_count``), deleted on success, left to reappear
  after ``visibilityTimeout`` on failure, and moved to ``<queue>-poison`` once they have failed
  ``maxDequeueCount`` times (values from host.json);
- host.json's values, overridden by app settings named ``AzureFunctionsJobHost__<path>`` as the host reads
  them (``AzureFunctionsJobHost__extensions__queues__maxPollingInterval``);
- timer triggers: fired on demand (``fire_timer``), or on their NCRONTAB schedules once ``start_timers()``
  is called (UTC; one run of a function at a time, as the host's singleton lock keeps it);
- Event Grid triggers: events delivered to a loopback webhook (the emulator's event subscription)
  or handed over directly, as ``azure.functions.EventGridEvent``;
- HTTP triggers: ``http()`` (or real HTTP on 127.0.0.1 after ``serve_http()``) routes a request as
  the host does (``routePrefix``, route templates, methods, authorization levels and keys) and
  answers with the function's ``HttpResponse``, or a 500 if it raised.

It only calls the handlers through ``app.get_functions()``, never our code's internals.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from devtools import http_routes

log = logging.getLogger("functions_host")
HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
POOL_SIZE = 32  # connections kept per queue client: one per worker thread


class LocalFunctionsHost:
    def __init__(self, app: Any, connection_string: str, settings: dict[str, str] | None = None, *,
                 visibility_timeout: int | None = None, workers: int | None = None,
                 function_keys: dict[str, str] | None = None, host_keys: dict[str, str] | None = None,
                 master_key: str | None = None):
        import azure.functions  # noqa: F401  (fail early if missing)

        self.settings = dict(settings or {})
        os.environ.update(self.settings)  # app settings reach a function as environment variables
        host = host_config(os.environ)
        # Keys, generated as the host does when none are given. The host keeps function keys per
        # function; here every function shares the same ones.
        self.function_keys = dict(function_keys or {"default": secrets.token_urlsafe(32)})
        self.host_keys = dict(host_keys or {"default": secrets.token_urlsafe(32)})
        self.master_key = master_key or secrets.token_urlsafe(32)
        self.function_key = self.function_keys.get("default", next(iter(self.function_keys.values()), None))
        self.host_key = self.host_keys.get("default", next(iter(self.host_keys.values()), None))
        self.route_prefix = host.get("extensions", {}).get("http", {}).get("routePrefix", "api").strip("/")
        queues = host.get("extensions", {}).get("queues", {})
        self.max_dequeue_count = int(queues.get("maxDequeueCount", 5))
        self.batch_size = min(32, int(queues.get("batchSize", 16)))
        self.new_batch_threshold = int(queues.get("newBatchThreshold", self.batch_size // 2))
        self.max_polling_interval = _seconds(queues.get("maxPollingInterval", "00:01:00"))
        self.visibility_timeout = visibility_timeout if visibility_timeout is not None else int(_seconds(
            queues.get("visibilityTimeout", "00:00:30")))
        self.connection_string = connection_string
        os.environ.setdefault("AzureWebJobsStorage", connection_string)
        self.functions = {f.get_function_name(): f for f in app.get_functions()}  # once per app object
        self.invocations: list[dict[str, Any]] = []
        self._unindexed: set[str] = set()
        self._lock = threading.Lock()
        self._queues: dict[str, Any] = {}
        queue_functions = sum(1 for f in self.functions.values() if f.get_trigger().type == "queueTrigger")
        self.workers = workers or max(1, queue_functions) * (self.batch_size + self.new_batch_threshold)
        self._busy = 0  # queue messages being handled
        self._busy_by: dict[str, int] = {}
        self._settled = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="fn")
        self._server: ThreadingHTTPServer | None = None
        self._http_server: ThreadingHTTPServer | None = None
        self.routes = self._http_routes()  # a bad template fails here, as the host fails to start
        self._pump_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._timer_threads: list[threading.Thread] = []
        self._timers_stop = threading.Event()

    # --- helpers -----------------------------------------------------------------------------
    def resolve(self, value: str) -> str:
        if value and value.startswith("%") and value.endswith("%"):
            return os.environ[value.strip("%")]
        return value

    def _by_trigger(self, trigger_type: str) -> dict[str, Any]:
        return {name: f for name, f in self.functions.items() if f.get_trigger().type == trigger_type}

    def _queue(self, name: str):
        with self._lock:
            if name not in self._queues:
                from azure.storage.queue import QueueClient

                self._queues[name] = QueueClient.from_connection_string(self.connection_string, name,
                                                                        transport=_pooled_transport())
            return self._queues[name]

    def _record(self, function: str, ok: bool, error: str | None = None, **extra: Any) -> None:
        with self._lock:
            self.invocations.append({"function": function, "ok": ok, "error": error, **extra})

    # --- queue triggers ---------------------------------------------------------------------
    def queue_names(self) -> dict[str, str]:
        """Queue functions by the queue they read; one whose ``%SETTING%`` does not resolve is left out with an
        error, as the host leaves out a function it cannot index (the others run)."""
        out = {}
        for name, f in self._by_trigger("queueTrigger").items():
            try:
                out[name] = self.resolve(f.get_trigger().queue_name)
            except KeyError as missing:
                if name not in self._unindexed:
                    self._unindexed.add(name)
                    log.error("function %s not indexed: app setting %s does not resolve", name, missing)
        return out

    def ensure_queues(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        for queue in self.queue_names().values():
            for name in (queue, f"{queue}-poison"):
                try:
                    self._queue(name).create_queue()
                except ResourceExistsError:
                    pass

    def receive(self) -> int:
        """As the host does per queue function: once the messages in hand drop to
        ``newBatchThreshold``, fetch ``batchSize`` more (at most batchSize + newBatchThreshold at
        once); hand them to workers without waiting. Returns how many were received."""
        from azure.functions.queue import QueueMessage

        received = 0
        for fname, queue_name in self.queue_names().items():
            with self._settled:
                if self._busy_by.get(fname, 0) > self.new_batch_threshold:
                    continue
            client = self._queue(queue_name)
            handler = self.functions[fname].get_user_function()
            for msg in client.receive_messages(messages_per_page=self.batch_size, max_messages=self.batch_size,
                                               visibility_timeout=max(self.visibility_timeout, 60)):
                fm = QueueMessage(id=msg.id, body=_decode(msg.content), dequeue_count=msg.dequeue_count,
                                  pop_receipt=msg.pop_receipt, insertion_time=msg.inserted_on,
                                  expiration_time=msg.expires_on, time_next_visible=msg.next_visible_on)
                with self._settled:
                    self._busy += 1
                    self._busy_by[fname] = self._busy_by.get(fname, 0) + 1
                self._pool.submit(self._run_queue_message, fname, handler, client, queue_name, msg, fm)
                received += 1
        return received

    def _wait(self, timeout: float, until: Callable[[], bool]) -> None:
        with self._settled:
            self._settled.wait_for(until, timeout)

    def poll_once(self) -> int:
        """Receive one round of messages and run them to the end; returns messages handled."""
        handled = self.receive()
        self._wait(3600, lambda: self._busy == 0)
        return handled

    def _run_queue_message(self, fname: str, handler: Callable, client: Any, queue_name: str, msg: Any, fm: Any) -> None:
        try:
            try:
                handler(fm)
            except Exception as exc:  # the host's own behaviour: log, retry later, poison at the bound
                self._record(fname, False, f"{type(exc).__name__}: {exc}", dequeue_count=msg.dequeue_count)
                if msg.dequeue_count >= self.max_dequeue_count:
                    self._queue(f"{queue_name}-poison").send_message(msg.content)
                    client.delete_message(msg)
                else:
                    client.update_message(msg, visibility_timeout=self.visibility_timeout)
                return
            self._record(fname, True, dequeue_count=msg.dequeue_count)
            client.delete_message(msg)
        except Exception:  # Storage itself failed: the message reappears after its visibility timeout
            log.exception("settling message %s", msg.id)
        finally:
            with self._settled:
                self._busy -= 1
                self._busy_by[fname] -= 1
                self._settled.notify_all()

    def _serve(self, stop: Callable[[], bool], until_idle: bool) -> bool:
        """Poll as the host does: at once while messages come; after an empty poll, wait 100 ms,
        doubling up to ``maxPollingInterval``. With ``until_idle``, return True once the queues
        are empty and every handler has returned."""
        interval = 0.0
        while not stop():
            if self.receive():
                interval = 0.0
                self._wait(0.05, lambda: self._busy <= self.new_batch_threshold)  # room for a batch, or look again
                continue
            if until_idle and self._busy == 0 and self.pending() == 0:
                return True
            interval = min(self.max_polling_interval, max(0.1, interval * 2))
            time.sleep(interval)
        return False

    def start(self) -> None:
        """Keep delivering queue messages in the background, as the host does, until ``close()``."""
        self._stop = threading.Event()
        self._pump_thread = threading.Thread(target=self._serve, args=(self._stop.is_set, False), name="functions-host",
                                             daemon=True)
        self._pump_thread.start()

    def pending(self) -> int:
        """Messages in the trigger queues, visible or not (Azure's approximate count includes both)."""
        return sum(self._queue(q).get_queue_properties().approximate_message_count for q in self.queue_names().values())

    def run_until_idle(self, timeout: float = 120.0) -> bool:
        """Deliver messages until the trigger queues are empty and every handler has returned."""
        deadline = time.monotonic() + timeout
        return self._serve(lambda: time.monotonic() > deadline, until_idle=True)

    # --- timer triggers ---------------------------------------------------------------------
    def fire_timer(self, name: str, past_due: bool = False) -> Any:
        from azure.functions.timer import TimerRequest

        handler = self._by_trigger("timerTrigger")[name].get_user_function()
        try:
            result = handler(TimerRequest(past_due=past_due))
        except Exception as exc:
            self._record(name, False, f"{type(exc).__name__}: {exc}")
            raise
        self._record(name, True)
        return result

    def timer_schedules(self) -> dict[str, Any]:
        """Timer functions by their parsed schedule (devtools/ncrontab.py); one whose ``%SETTING%`` does not
        resolve, or whose expression does not parse, is left out with an error, as the host leaves out a
        function it cannot index."""
        from devtools import ncrontab

        out = {}
        for name, f in self._by_trigger("timerTrigger").items():
            try:
                out[name] = ncrontab.parse(self.resolve(f.get_trigger().schedule))
            except (KeyError, ncrontab.CronError) as exc:
                if name not in self._unindexed:
                    self._unindexed.add(name)
                    why = f"app setting {exc} does not resolve" if isinstance(exc, KeyError) else str(exc)
                    log.error("function %s not indexed: %s", name, why)
        return out

    def start_timers(self, clock: Callable[[], datetime] | None = None) -> dict[str, datetime | None]:
        """Fire each timer function on its schedule in the background until ``close()``: a thread per
        function, never two runs of one at once; a run that outlasts occurrences skips them (the next is
        computed from when it ended, as the host does), and a run that starts late is ``past_due``. A run
        that raises is recorded and logged; the schedule goes on. Returns each function's first occurrence."""
        now = clock or (lambda: datetime.now(UTC))
        self._timers_stop = threading.Event()
        first: dict[str, datetime | None] = {}
        for name, schedule in self.timer_schedules().items():
            first[name] = schedule.next_after(now())
            thread = threading.Thread(target=self._run_timer, args=(name, schedule, first[name], now),
                                      name=f"timer-{name}", daemon=True)
            self._timer_threads.append(thread)
            thread.start()
        return first

    def _run_timer(self, name: str, schedule: Any, due: datetime | None, now: Callable[[], datetime]) -> None:
        while due is not None and not self._timers_stop.is_set():
            wait = (due - now()).total_seconds()
            if wait > 0:
                self._timers_stop.wait(min(wait, 1.0))  # looked at each second: close() is never kept waiting
                continue
            past_due = wait < -1.0  # started over a second late (a machine that slept)
            try:
                self.fire_timer(name, past_due=past_due)
            except Exception:  # recorded by fire_timer; the host logs it and keeps the schedule
                log.exception("timer function %s failed", name)
            due = schedule.next_after(max(due, now()))

    # --- Event Grid triggers ----------------------------------------------------------------
    def deliver_event(self, name: str, event: dict[str, Any]) -> None:
        """Hand one event to an Event Grid-triggered function as the Python worker does: through
        azure-functions' own converter, so an Event Grid-schema event arrives as an
        ``EventGridEvent`` and a CloudEvents 1.0 one (``specversion``) as a ``CloudEvent``."""
        from azure.functions.eventgrid import EventGridEventInConverter
        from azure.functions.meta import Datum

        handler = self._by_trigger("eventGridTrigger")[name].get_user_function()
        ge = EventGridEventInConverter.decode(Datum(json.dumps(event), "json"), trigger_metadata={})
        try:
            handler(ge)
        except Exception as exc:
            self._record(name, False, f"{type(exc).__name__}: {exc}", event_id=event.get("id"), event_class=type(ge).__name__)
            raise
        self._record(name, True, event_id=event.get("id"), event_class=type(ge).__name__)

    def serve_event_grid(self, name: str) -> str:
        """A loopback webhook for the emulator's Event Grid: returns its URL."""
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                events = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = 200
                for event in events if isinstance(events, list) else [events]:
                    try:
                        host.deliver_event(name, event)
                    except Exception:  # the function failed: Event Grid will retry
                        status = 500
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/runtime/webhooks/eventgrid?functionName={name}"

    # --- HTTP triggers ----------------------------------------------------------------------
    def _http_routes(self) -> list[http_routes.Route]:
        routes = []
        for name, f in self._by_trigger("httpTrigger").items():
            trigger = f.get_trigger()
            template = "/".join(p for p in (self.route_prefix, (trigger.route or name).strip("/")) if p)
            methods = None
            if trigger.methods:
                methods = {str(getattr(m, "value", m)).upper() for m in trigger.methods}
                if "GET" in methods:  # the current host lets HEAD through wherever GET is (BuildConstraintMethods)
                    methods.add("HEAD")
            routes.append(http_routes.Route(template, name, frozenset(methods) if methods else None,
                                            http_routes.parse(template)))
        return http_routes.host_order(routes)

    def http(self, method: str, path: str, *, headers: Mapping[str, str] | None = None, body: bytes | str = b"",
             query: Mapping[str, str] | None = None) -> HttpAnswer:
        """One request, as the host serves it: the first route (in the host's order) whose template
        and methods match, else 404; then the function's authorization level, else 401 (empty body);
        then the function, its ``HttpResponse`` as the answer, or 500 (empty body) if it raised.
        ``path`` includes the route prefix (``/api/items/7``) and may carry a query string."""
        return self._http(method, path, dict(headers or {}), body, query, "http://localhost")

    def _http(self, method: str, path: str, headers: dict[str, str], body: bytes | str,
              query: Mapping[str, str] | None, origin: str) -> HttpAnswer:
        import azure.functions as func
        from azure.functions.http import HttpResponseConverter

        method = method.upper()
        path, _, query_string = path.partition("?")
        pairs = parse_qsl(query_string, keep_blank_values=True) + list((query or {}).items())
        params: dict[str, str] = {}
        for k, v in pairs:  # a repeated parameter arrives comma-joined, as the host's StringValues does
            params[k] = f"{params[k]},{v}" if k in params else v
        parts = http_routes.split_path(path)
        for route in self.routes:
            values = route.match(method, parts)
            if values is not None:
                break
        else:
            return HttpAnswer(404)
        if not self._authorized(route.function, headers, params):
            return HttpAnswer(401)
        req = func.HttpRequest(method, f"{origin}/{path.lstrip('/')}" + (f"?{urlencode(pairs)}" if pairs else ""),
                               headers=headers, params=params, route_params=values,
                               body=body.encode() if isinstance(body, str) else body)
        name, handler = route.function, self.functions[route.function].get_user_function()
        try:
            result = handler(req)
            if not isinstance(result, func.HttpResponse | str):  # the worker can't send it back: the invocation fails
                raise TypeError(f"an HTTP function returned {type(result).__name__}, not HttpResponse or str")
            datum = HttpResponseConverter.encode(result, expected_type=None)  # as the worker encodes it
        except Exception as exc:
            self._record(name, False, f"{type(exc).__name__}: {exc}", method=method, path=path, status=500)
            return HttpAnswer(500)
        if datum.type == "string":  # a plain str return: a 200 with it as text (the host's string result)
            answer = HttpAnswer(200, Headers([("content-type", "text/plain; charset=utf-8")]), datum.value.encode())
        else:
            out = datum.value
            answer = HttpAnswer(int(out["status_code"].value), Headers([(k, v.value) for k, v in out["headers"].items()]),
                                out["body"].value or b"")
            for cookie in out.get("cookies") or []:  # the worker sends Set-Cookie apart, one per cookie
                answer.headers.pairs += [("set-cookie", m.OutputString()) for m in cookie.values()]
        if method == "HEAD":
            answer.body = b""
        self._record(name, True, method=method, path=path, status=answer.status)
        return answer

    def _authorized(self, function: str, headers: Mapping[str, str], params: Mapping[str, str]) -> bool:
        """The host's key check: the ``x-functions-key`` header if sent, else the ``code`` query
        parameter. Function level takes a function key, a host key or the master key; admin level
        only the master key."""
        level = self.functions[function].get_trigger().auth_level
        level = str(getattr(level, "value", level) or "function").lower()
        if level == "anonymous":
            return True
        lowered = {k.lower(): v for k, v in headers.items()}
        key = lowered.get("x-functions-key") if "x-functions-key" in lowered else next(
            (v for k, v in params.items() if k.lower() == "code"), None)
        if not key:
            return False
        allowed = [self.master_key] if level == "admin" else [
            self.master_key, *self.function_keys.values(), *self.host_keys.values()]
        return any(secrets.compare_digest(key.encode(), k.encode()) for k in allowed)

    def serve_http(self, port: int = 0) -> str:
        """Serve ``http()`` over real HTTP on 127.0.0.1 (``port``, else a free one; OSError if it is taken)
        until ``close()``; returns the base URL, to which the routes (``/api/...``) are appended."""
        host = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # the body, written after the headers, is not held for their ACK

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers: dict[str, str] = {}
                for k, v in self.headers.items():
                    headers[k] = f"{headers[k]},{v}" if k in headers else v
                answer = host._http(self.command, self.path, headers, body, None,
                                    f"http://{self.headers.get('Host') or '127.0.0.1'}")
                self.send_response(answer.status)
                for k, v in answer.headers.pairs:
                    if k.lower() not in ("content-length", "transfer-encoding"):  # the server frames the body
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        if self._http_server is None:
            self._http_server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
            threading.Thread(target=self._http_server.serve_forever, name="functions-http", daemon=True).start()
        return f"http://127.0.0.1:{self._http_server.server_address[1]}"

    def close(self) -> None:
        self._timers_stop.set()
        for thread in self._timer_threads:
            thread.join(60)  # a run in progress ends first, as the host drains on shutdown
        if self._pump_thread is not None:
            self._stop.set()
            self._pump_thread.join(10)
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        if self._http_server:
            self._http_server.shutdown()
            self._http_server.server_close()
        self._pool.shutdown(wait=True)


class Headers(Mapping[str, str]):
    """An answer's headers, looked up in any case; a repeated one (Set-Cookie) comma-joined, or
    one by one through ``get_all``."""

    def __init__(self, pairs: list[tuple[str, str]] | None = None):
        self.pairs = list(pairs or [])

    def get_all(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k.lower() == name.lower()]

    def __getitem__(self, name: str) -> str:
        values = self.get_all(name)
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k.lower() for k, _ in self.pairs))

    def __len__(self) -> int:
        return len(dict.fromkeys(k.lower() for k, _ in self.pairs))


@dataclass
class HttpAnswer:
    """What the host answered an HTTP request with."""

    status: int
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


HOST_OVERRIDE = "AzureFunctionsJobHost__"


def host_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """host.json with the app settings that override its values, as the host reads them: a setting
    ``AzureFunctionsJobHost__extensions__queues__batchSize`` sets ``extensions.queues.batchSize`` (keys in
    any case; the value a string, as an app setting is)."""
    host = json.loads(HOST_JSON.read_text())
    for name, value in environ.items():
        if not name.lower().startswith(HOST_OVERRIDE.lower()):
            continue
        *path, leaf = name[len(HOST_OVERRIDE):].split("__")
        node = host
        for key in path:
            key = next((k for k in node if k.lower() == key.lower()), key)
            node = node.setdefault(key, {})
        node[next((k for k in node if k.lower() == leaf.lower()), leaf)] = value
    return host


def _pooled_transport() -> Any:
    """A requests session per queue client, as the app's own clients have: a pool of 32 connections
    (requests keeps 10 by default, and a busy host would open a fresh one per call over that),
    requests' retries off (azure-core's policy decides), the environment not read per request."""
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from urllib3.util.retry import Retry

    session = requests.Session()
    session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE,
                                            max_retries=Retry(total=False, redirect=False, raise_on_status=False))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return RequestsTransport(session=session, session_owner=True)


def _decode(content: Any) -> bytes:
    """Queue messages are base64 (host.json messageEncoding), as the Functions host expects."""
    import base64

    raw = content.encode() if isinstance(content, str) else content
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        return raw


def _seconds(hms: str) -> float:
    h, m, s = hms.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)
