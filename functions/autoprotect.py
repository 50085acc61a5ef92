"""Auto-protect triggers: Event Grid (Azure-subscription system topic) → a protection job on a
Storage queue; the queue trigger runs each job step (retries and poison from the platform)."""

import azure.functions as func

bp = func.Blueprint()


@bp.event_grid_trigger(arg_name="event")
def vm_events(event: func.EventGridEvent) -> None:
    from shared.wiring import current

    current().autoprotect.handle_event({
        "id": event.id, "eventType": event.event_type, "subject": event.subject, "topic": event.topic,
        "data": event.get_json(), "dataVersion": event.data_version,
        "eventTime": event.event_time.isoformat() if event.event_time else "",
    })


@bp.queue_trigger(arg_name="msg", queue_name="%VMKEEPER_PROTECT_QUEUE%", connection="AzureWebJobsStorage")
def protect_worker(msg: func.QueueMessage) -> None:
    from shared.wiring import current

    current().autoprotect.handle_message(msg.get_body())
