"""The alerts outbox: every alert is written to a table first (its id as the row key, so a change
raised twice is one row), then published; a publish that fails leaves the row unsent and the next
``flush`` sends it. Alerts never stop the work that raised them: a failure to record or publish is
logged, never raised. The rows also feed the report page (failed and poisoned jobs with reasons).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..azure.tables import OnFirstUse
from ..instants import format_instant
from .events import Alert, cloud_event

log = logging.getLogger("vmkeeper.alerts")
PARTITION = "alert"
FLUSH_LIMIT = 100  # events per publish: far below Event Grid's 1 MB per request


class Alerts(OnFirstUse):
    def __init__(self, table: Any, publish: Callable[[list[dict[str, Any]]], None] | None, source: str,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        super().__init__(table)
        self.publish, self.source, self.clock = publish, source, clock

    def raise_(self, alert: Alert) -> bool:
        """Record and publish ``alert``; False when this change was raised before (or can't be recorded)."""
        from azure.core.exceptions import ResourceExistsError

        now = self.clock()
        event = cloud_event(alert, self.source, now)
        try:
            self._ensure()
            self.table.create_entity({"PartitionKey": PARTITION, "RowKey": alert.id, "type": alert.type,
                                      "subject": alert.subject, "key": alert.key[:1000], "time": format_instant(now),
                                      "event": json.dumps(event), "sent": False})
        except ResourceExistsError:
            return False
        except Exception:  # noqa: BLE001 (an alert must never fail the work that raised it)
            log.exception("alert %s %s: could not be recorded", alert.type, alert.subject)
            return False
        self._send([(alert.id, event)])
        return True

    def flush(self) -> int:
        """Publish every recorded alert not sent yet (a publish that failed earlier); returns how many went."""
        try:
            self._ensure()
            rows = list(self.table.query_entities(f"PartitionKey eq '{PARTITION}' and sent eq false"))
        except Exception:  # noqa: BLE001
            log.exception("alerts: could not read unsent alerts")
            return 0
        rows.sort(key=lambda r: r.get("time", ""))
        sent = 0
        for start in range(0, len(rows), FLUSH_LIMIT):
            sent += self._send([(r["RowKey"], json.loads(r["event"])) for r in rows[start:start + FLUSH_LIMIT]])
        return sent

    def _send(self, events: list[tuple[str, dict[str, Any]]]) -> int:
        if self.publish is None:
            return 0  # no topic configured: recorded (the report shows them), not published
        try:
            self.publish([e for _, e in events])
        except Exception as exc:  # noqa: BLE001
            log.warning("alerts: publish failed, kept for the next flush: %s", exc)
            return 0
        for row_key, _ in events:
            try:
                self.table.update_entity({"PartitionKey": PARTITION, "RowKey": row_key, "sent": True})
            except Exception:  # noqa: BLE001 (sent again on the next flush: the same id, a duplicate subscribers can drop)
                log.exception("alert %s: published but not marked sent", row_key)
        return len(events)

    def recent(self, since: datetime, types: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Alerts raised since ``since``, newest first: type, subject, time and the event's data."""
        self._ensure()
        rows = self.table.query_entities(f"PartitionKey eq '{PARTITION}' and time ge '{format_instant(since)}'",
                                         select=["type", "subject", "time", "event"])
        out = [{"type": r["type"], "subject": r["subject"], "time": r["time"],
                "data": json.loads(r["event"]).get("data") or {}} for r in rows if not types or r["type"] in types]
        return sorted(out, key=lambda r: r["time"], reverse=True)
