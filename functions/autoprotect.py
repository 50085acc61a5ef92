"""Auto-protect triggers: Event Grid (Azure-subscription system topic) → a protection job on a
Storage queue; the queue trigger runs each job step (retries and poison from the platform); a timer sweeps
the fleet for VMs no event enrolled (older than vmkeeper, tagged later, an event lost)."""

import logging
from datetime import datetime
from typing import Any

import azure.functions as func

bp = func.Blueprint()


def _instant(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def event_dict(event: func.EventGridEvent | func.CloudEvent) -> dict[str, Any]:
    """The event as Event Grid sent it, in its own schema: the worker hands the trigger a
    ``CloudEvent`` when the subscription delivers CloudEvents 1.0, an ``EventGridEvent`` otherwise."""
    if isinstance(event, func.CloudEvent):
        return {
            "specversion": event.specversion or "1.0", "type": event.type, "source": event.source,
            "subject": event.subject, "id": event.id, "time": _instant(event.time), "data": event.get_json(),
        }
    return {
        "id": event.id, "eventType": event.event_type, "subject": event.subject, "topic": event.topic,
        "data": event.get_json(), "dataVersion": event.data_version, "eventTime": _instant(event.event_time),
    }


# The declared type is what the worker checks against its converter (it takes no Union); the
# converter decides by the payload, so a CloudEvents subscription still hands over a CloudEvent.
@bp.event_grid_trigger(arg_name="event")
def vm_events(event: func.EventGridEvent) -> None:
    from shared.wiring import current

    wiring, body = current(), event_dict(event)
    wiring.autoprotect.handle_event(body)
    wiring.replication.handle_event(body)  # a critical VM's event also queues its Site Recovery (functions/replication.py)


@bp.queue_trigger(arg_name="msg", queue_name="%VMKEEPER_PROTECT_QUEUE%", connection="AzureWebJobsStorage")
def protect_worker(msg: func.QueueMessage) -> None:
    from shared.wiring import current

    current().autoprotect.handle_message(msg.get_body())


@bp.timer_trigger(arg_name="timer", schedule="%VMKEEPER_PROTECT_SCHEDULE%", run_on_startup=False)
def protect_sweep(timer: func.TimerRequest) -> None:
    from datetime import UTC

    from shared.wiring import current

    logging.getLogger("vmkeeper.autoprotect").info("protect sweep: %s", current().autoprotect.sweep(datetime.now(UTC)))
