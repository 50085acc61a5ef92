"""On-demand restores over HTTP (shared/restore/api.py) and the queue worker that runs their steps.

Every route needs the function key (the host checks it); App Service authentication in front adds the
caller as X-MS-CLIENT-PRINCIPAL, which the API reads for roles. The OpenAPI document is anonymous."""

import azure.functions as func

bp = func.Blueprint()


def _answer(answer) -> func.HttpResponse:
    return func.HttpResponse(answer.text(), status_code=answer.status, headers=answer.headers,
                             mimetype=answer.content_type)


def _api():
    from shared.wiring import current

    return current().restore_api


@bp.route(route="vms/{subscription}/{resourceGroup}/{vm}/recovery-points", methods=["GET"],
          auth_level=func.AuthLevel.FUNCTION)
def recovery_points(req: func.HttpRequest) -> func.HttpResponse:
    p = req.route_params
    return _answer(_api().recovery_points(req.headers, p.get("subscription", ""), p.get("resourceGroup", ""),
                                          p.get("vm", "")))


@bp.route(route="restores", methods=["GET", "POST"], auth_level=func.AuthLevel.FUNCTION)
def restores(req: func.HttpRequest) -> func.HttpResponse:
    if req.method.upper() == "POST":
        return _answer(_api().create(req.headers, req.get_body()))
    return _answer(_api().recent(req.headers, req.params))


@bp.route(route="restores/{id}", methods=["GET", "DELETE"], auth_level=func.AuthLevel.FUNCTION)
def restore(req: func.HttpRequest) -> func.HttpResponse:
    restore_id = req.route_params.get("id", "")
    if req.method.upper() == "DELETE":
        return _answer(_api().cancel(req.headers, restore_id))
    return _answer(_api().get(req.headers, restore_id))


@bp.route(route="restores/{id}/access", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def restore_access(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(_api().access(req.headers, req.route_params.get("id", "")))


@bp.route(route="restores/{id}/script", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def restore_script(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(_api().script(req.headers, req.route_params.get("id", "")))


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    from shared.restore.api import RestoreApi

    return _answer(RestoreApi.openapi())


@bp.queue_trigger(arg_name="msg", queue_name="%VMKEEPER_RESTORE_QUEUE%", connection="AzureWebJobsStorage")
def restore_worker(msg: func.QueueMessage) -> None:
    from shared.wiring import current

    current().restores.handle_message(msg.get_body())


# Every 5 minutes (shared/restore/lease.py SWEEP_SCHEDULE): file recoveries and exports past their expiry are ended,
# and one a crashed worker left is sent on again. A fixed schedule: how late an expiry may be acted on is not a
# setting to get wrong.
@bp.timer_trigger(arg_name="timer", schedule="0 */5 * * * *", run_on_startup=False)
def restore_leases(timer: func.TimerRequest) -> None:
    import logging
    from datetime import UTC, datetime

    from shared.wiring import current

    logging.getLogger("vmkeeper.restore").info("leases: %s", current().restores.sweep_leases(datetime.now(UTC)))
