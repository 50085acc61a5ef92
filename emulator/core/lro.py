"""Long-running operations, as ARM's async contract describes them.

An accepted PUT/DELETE/POST starts an Operation that ends after a configurable span of emulated
time. Clients follow ``Azure-AsyncOperation`` (always 200 with a status body) or ``Location``
(202 while running, then the final result). Completion effects (provisioningState → Succeeded,
the resource removed, a restore point's disks captured) run exactly once, when the operation ends.
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .clock import Clock, iso
from .routing import Response
from .throttle import retry_after_header

TERMINAL = ("Succeeded", "Failed", "Canceled")


class OperationFailed(Exception):
    """Raised by an ``on_success`` callback that finds, when the operation ends, that it cannot succeed
    (e.g. a resource group whose delete is blocked by what it holds): the operation ends Failed with
    ``error`` and its ``on_failure`` runs."""

    def __init__(self, error: dict[str, Any]):
        super().__init__(error.get("message", ""))
        self.error = error


@dataclass
class Operation:
    id: str
    subscription_id: str
    location: str
    start: float
    end: float
    outcome: str = "Succeeded"
    error: dict[str, Any] | None = None
    status: str = "InProgress"
    on_success: Callable[[Operation], None] | None = None
    on_failure: Callable[[Operation], None] | None = None
    result: Callable[[], Response] | None = None  # the final answer of the Location URL
    extra: dict[str, Any] = field(default_factory=dict)

    def percent(self, now: float) -> float:
        if self.status != "InProgress":
            return 100.0
        span = max(self.end - self.start, 1e-9)
        return max(0.0, min(99.0, (now - self.start) / span * 100))


class Operations:
    def __init__(self, clock: Clock):
        self._clock = clock
        self._ops: dict[str, Operation] = {}
        self._due: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        # Fast tests may ask for a poll delay below a second: the SDK parses Retry-After as an int,
        # so that delay travels as retry-after-ms (which azure-core reads when Retry-After is absent).
        self.retry_after_ms: int | None = None

    def start(
        self,
        subscription_id: str,
        location: str,
        duration: float,
        *,
        on_success: Callable[[Operation], None] | None = None,
        on_failure: Callable[[Operation], None] | None = None,
        result: Callable[[], Response] | None = None,
        fail_with: dict[str, str] | None = None,
    ) -> Operation:
        now = self._clock.timestamp()
        op = Operation(
            id=str(uuid.uuid4()),
            subscription_id=subscription_id,
            location=(location or "global").replace(" ", "").lower(),
            start=now,
            end=now + max(0.0, duration),
            on_success=on_success,
            on_failure=on_failure,
            result=result,
        )
        if fail_with:
            op.outcome, op.error = "Failed", fail_with
        self._ops[op.id.lower()] = op
        heapq.heappush(self._due, (op.end, next(self._seq), op.id.lower()))
        return op

    def get(self, op_id: str) -> Operation | None:
        return self._ops.get(op_id.lower())

    def next_due(self) -> float | None:
        return self._due[0][0] if self._due else None

    def settle(self) -> None:
        """Finish every operation whose time has come (call with the state lock held)."""
        now = self._clock.timestamp()
        while self._due and self._due[0][0] <= now:
            _, _, key = heapq.heappop(self._due)
            op = self._ops.get(key)
            if op is None or op.status != "InProgress":
                continue
            op.status = op.outcome
            callback = op.on_success if op.outcome == "Succeeded" else op.on_failure
            if callback is None:
                continue
            try:
                callback(op)
            except OperationFailed as failed:
                op.status, op.outcome, op.error = "Failed", "Failed", failed.error
                if op.on_failure:
                    op.on_failure(op)

    def settle_all(self) -> None:
        while self._due:
            end = self._due[0][0]
            if end > self._clock.timestamp():
                self._clock.advance(end - self._clock.timestamp())
            self.settle()

    def retry_headers(self, op: Operation) -> dict[str, str]:
        if self.retry_after_ms:
            return {"retry-after-ms": str(self.retry_after_ms)}
        return {"Retry-After": retry_after_header(self._clock, max(0.0, op.end - self._clock.timestamp()))}

    # --- the two monitor answers ---------------------------------------------------------
    def status_body(self, op: Operation, op_url_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": op_url_id,
            "name": op.id,
            "status": op.status,
            "startTime": iso(op.start),
        }
        if op.status == "InProgress":
            body["percentComplete"] = round(op.percent(self._clock.timestamp()), 1)
        else:
            body["endTime"] = iso(op.end)
        if op.status in ("Failed", "Canceled"):
            body["error"] = op.error or {"code": "InternalOperationError", "message": "The operation failed."}
        return body

    def location_response(self, op: Operation) -> Response:
        if op.status == "InProgress":
            return Response(202, None, self.retry_headers(op))
        if op.status == "Succeeded":
            if op.result:
                return op.result()
            return Response(204, None)
        # A failed operation's Location answers with the error, as the synchronous call would have.
        return Response(400, {"error": op.error or {"code": "InternalOperationError", "message": "The operation failed."}})
