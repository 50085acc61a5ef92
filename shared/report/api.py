"""GET /api/report over HTTP, free of trigger types: the caller must hold a reader role of the restore
API (the page shows every protected VM's state and every restore); answered as one HTML page whose
Content-Security-Policy lets it load nothing from anywhere."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..restore.api import Answer, RestoreApi, problem

HTML = "text/html; charset=utf-8"


class ReportApi:
    def __init__(self, reports: Callable[[], Any]):
        self._reports = reports  # built on first use, by shared/wiring.py

    def page(self, headers: Mapping[str, str]) -> Answer:
        who = RestoreApi.authorize({k.lower(): v for k, v in headers.items()}, operator=False)
        if isinstance(who, Answer):
            return who
        try:
            html = self._reports().html()
        except Exception:  # noqa: BLE001 (an answer, never a trace)
            import logging

            logging.getLogger("vmkeeper.report").exception("report page")
            return problem(500, "Internal error", "the report could not be gathered")
        return Answer(200, html, {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}, HTML)
