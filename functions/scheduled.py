"""Scheduled protection: a timer plans the slot and fans jobs out over a Storage queue; the queue
trigger runs each job step (retries and poison from the platform)."""

import logging

import azure.functions as func

bp = func.Blueprint()


@bp.timer_trigger(arg_name="timer", schedule="%VMKEEPER_SCHEDULE%", run_on_startup=False)
def plan_slot(timer: func.TimerRequest) -> None:
    from datetime import UTC, datetime

    from shared.wiring import current

    logging.getLogger("vmkeeper.schedule").info("planned: %s", current().schedule.plan_and_enqueue(datetime.now(UTC)))


@bp.queue_trigger(arg_name="msg", queue_name="%VMKEEPER_JOBS_QUEUE%", connection="AzureWebJobsStorage")
def protection_worker(msg: func.QueueMessage) -> None:
    from shared.wiring import current

    current().schedule.handle_message(msg.get_body())
