"""RPO compliance timer: evaluates the fleet, raises alerts on each change, records the rows the
report and the CLI read (shared/compliance/service.py)."""

import logging

import azure.functions as func

bp = func.Blueprint()


@bp.timer_trigger(arg_name="timer", schedule="%VMKEEPER_COMPLIANCE_SCHEDULE%", run_on_startup=False)
def compliance_evaluation(timer: func.TimerRequest) -> None:
    from datetime import UTC, datetime

    from shared.wiring import current

    logging.getLogger("vmkeeper.compliance").info("compliance: %s", current().compliance.run(datetime.now(UTC)))
