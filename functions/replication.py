"""Site Recovery: a timer sweeps the fleet for VMs that should replicate (a tag added later, a policy changed);
a queue trigger runs each replication job a step at a time (shared/replication/service.py). VM events reach it
through the auto-protect Event Grid trigger (functions/autoprotect.py)."""

import logging

import azure.functions as func

bp = func.Blueprint()


@bp.timer_trigger(arg_name="timer", schedule="%VMKEEPER_REPLICATION_SCHEDULE%", run_on_startup=False)
def replication_sweep(timer: func.TimerRequest) -> None:
    from datetime import UTC, datetime

    from shared.wiring import current

    logging.getLogger("vmkeeper.replication").info("replication sweep: %s", current().replication.sweep(datetime.now(UTC)))


@bp.queue_trigger(arg_name="msg", queue_name="%VMKEEPER_REPLICATION_QUEUE%", connection="AzureWebJobsStorage")
def replication_worker(msg: func.QueueMessage) -> None:
    from shared.wiring import current

    current().replication.handle_message(msg.get_body())
