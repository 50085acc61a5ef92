"""LocalFunctionsHost's timer triggers on their schedules (``start_timers``), against a small FunctionApp built
here: each fires at its NCRONTAB occurrences, a %SETTING% schedule resolves from the app settings, a run that
raises does not stop the schedule, one function never runs twice at once (the occurrences a run outlasts are
skipped), one that cannot be indexed is left out, and close() stops them all."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import azure.functions as func

from devtools.functions_host import LocalFunctionsHost

AZURITE_UNUSED = "UseDevelopmentStorage=true"  # no queue function here: storage is never reached


def build_app(seen: dict[str, list[tuple[float, bool]]], running: dict[str, int]) -> func.FunctionApp:
    app = func.FunctionApp()
    lock = threading.Lock()

    def note(name: str, timer: func.TimerRequest) -> None:
        with lock:
            seen.setdefault(name, []).append((time.monotonic(), timer.past_due))

    @app.timer_trigger(arg_name="timer", schedule="* * * * * *")
    def every_second(timer: func.TimerRequest) -> None:
        note("every_second", timer)

    @app.timer_trigger(arg_name="timer", schedule="%TIMER_TEST_SCHEDULE%")
    def from_setting(timer: func.TimerRequest) -> None:
        note("from_setting", timer)
        raise RuntimeError("this run fails; the next still comes")

    @app.timer_trigger(arg_name="timer", schedule="* * * * * *")
    def slow(timer: func.TimerRequest) -> None:
        with lock:
            running["slow"] = running.get("slow", 0) + 1
            running["most"] = max(running.get("most", 0), running["slow"])
        note("slow", timer)
        time.sleep(1.3)
        with lock:
            running["slow"] -= 1

    @app.timer_trigger(arg_name="timer", schedule="%TIMER_TEST_MISSING%")
    def unindexed(timer: func.TimerRequest) -> None:
        note("unindexed", timer)

    @app.timer_trigger(arg_name="timer", schedule="0 0 0 30 2 *")  # 30 February: never
    def never(timer: func.TimerRequest) -> None:
        note("never", timer)

    return app


def test_timers_fire_on_their_schedules_until_closed(monkeypatch, caplog):
    monkeypatch.delenv("TIMER_TEST_MISSING", raising=False)
    monkeypatch.setenv("TIMER_TEST_SCHEDULE", "*/2 * * * * *")  # app settings reach the host as the environment
    monkeypatch.setenv("AzureWebJobsStorage", AZURITE_UNUSED)
    seen: dict[str, list[tuple[float, bool]]] = {}
    running: dict[str, int] = {}
    host = LocalFunctionsHost(build_app(seen, running), AZURITE_UNUSED)
    try:
        first = host.start_timers()
        assert set(first) == {"every_second", "from_setting", "slow", "never"}  # unindexed is left out
        assert "unindexed" in caplog.text and "TIMER_TEST_MISSING" in caplog.text
        assert first["never"] is None
        now = datetime.now(UTC)
        assert 0 < (first["every_second"] - now).total_seconds() <= 1.0
        assert first["from_setting"].second % 2 == 0
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and (len(seen.get("from_setting", [])) < 2 or len(seen.get("slow", [])) < 2
                                               or len(seen.get("every_second", [])) < 4):
            time.sleep(0.1)
    finally:
        host.close()
    closed = time.monotonic()
    ticks = [t for t, _ in seen["every_second"]]
    assert len(ticks) >= 4 and all(0.5 < b - a < 1.5 for a, b in zip(ticks, ticks[1:], strict=False))
    assert len(seen["from_setting"]) >= 2  # the failed run did not stop its schedule
    assert sum(1 for i in host.invocations if i["function"] == "from_setting" and not i["ok"]) >= 2
    assert running["most"] == 1 and running["slow"] == 0  # never twice at once; close() waited for the run
    slow = [t for t, _ in seen["slow"]]  # the occurrences a run outlasted are skipped, not queued up
    assert all(1.3 < b - a < 2.5 for a, b in zip(slow, slow[1:], strict=False))
    assert not any(due for runs in seen.values() for _, due in runs)  # each started on time
    assert "unindexed" not in seen and "never" not in seen
    time.sleep(1.2)
    assert max(t for runs in seen.values() for t, _ in runs) <= closed  # nothing fired after close()
