"""DR drills: a timer plans the period's drills; a queue trigger advances each drill a step at a time
(shared/drill/service.py). The restores they make run on the restore worker."""

import logging

import azure.functions as func

bp = func.Blueprint()


@bp.timer_trigger(arg_name="timer", schedule="%VMKEEPER_DRILL_SCHEDULE%", run_on_startup=False)
def plan_drills(timer: func.TimerRequest) -> None:
    from datetime import UTC, datetime

    from shared.wiring import current

    logging.getLogger("vmkeeper.drill").info("drills: %s", current().drills.plan_and_enqueue(datetime.now(UTC)))


@bp.queue_trigger(arg_name="msg", queue_name="%VMKEEPER_DRILL_QUEUE%", connection="AzureWebJobsStorage")
def drill_worker(msg: func.QueueMessage) -> None:
    from shared.wiring import current

    current().drills.handle_message(msg.get_body())
