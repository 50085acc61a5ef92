"""Every ARM request, recorded as (method, resource type, action, status) with the caller's
``User-Agent`` (so a test can tell one client's calls from another's): later tests compare what
the app calls with what infra/ grants."""

from __future__ import annotations

import threading
from typing import Any


class CallLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self.enabled = True

    def record(self, method: str, path: str, operation: str | None, status: int, ts: float,
               user_agent: str | None = None) -> None:
        if not self.enabled:
            return
        resource_type, _, action = (operation or "").rpartition("/")
        entry = {
            "method": method, "resourceType": resource_type or None, "action": action or None,
            "operation": operation, "status": status, "path": path, "time": ts, "userAgent": user_agent,
        }
        with self._lock:
            self._entries.append(entry)

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return self._entries[since:]

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
