"""Retention timer: a pass over everything vmkeeper made (shared/retention/service.py)."""

import logging

import azure.functions as func

bp = func.Blueprint()


@bp.timer_trigger(arg_name="timer", schedule="%VMKEEPER_RETENTION_SCHEDULE%", run_on_startup=False)
def retention_pass(timer: func.TimerRequest) -> None:
    from datetime import UTC, datetime

    from shared.wiring import current

    wiring = current()
    _, applied = wiring.retention.run(datetime.now(UTC))
    logging.getLogger("vmkeeper.retention").info("retention pass: %s", applied)
    isolated = wiring.isolated_retention  # the backup subscription's copies, with the second identity (or None)
    if isolated is not None:
        _, applied = isolated.run(datetime.now(UTC))
        logging.getLogger("vmkeeper.retention").info("isolated copies' retention pass: %s", applied)
