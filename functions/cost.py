"""Cost per VM timer (daily by default): one Cost Management query per scope, results per VM and per policy,
budgets judged (shared/cost/service.py)."""

import logging

import azure.functions as func

bp = func.Blueprint()


@bp.timer_trigger(arg_name="timer", schedule="%VMKEEPER_COST_SCHEDULE%", run_on_startup=False)
def cost_per_vm(timer: func.TimerRequest) -> None:
    from datetime import UTC, datetime

    from shared.wiring import current

    logging.getLogger("vmkeeper.cost").info("cost: %s", current().cost.run(datetime.now(UTC)))
