"""Site Recovery failovers over HTTP (shared/failover/api.py), the queue worker that runs their steps, and the timer
that keeps one recovery plan per application in step with the fleet (shared/failover/keeper.py).

Every route needs the function key (the host checks it); App Service authentication in front adds the caller as
X-MS-CLIENT-PRINCIPAL, which the API reads for the app role Failover.Operator."""

import logging

import azure.functions as func

bp = func.Blueprint()


def _answer(answer) -> func.HttpResponse:
    return func.HttpResponse(answer.text(), status_code=answer.status, headers=answer.headers,
                             mimetype=answer.content_type)


def _api():
    from shared.wiring import current

    return current().failover_api


@bp.route(route="failovers", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def failovers(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(_api().create(req.headers, req.get_body()))


@bp.route(route="failovers/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def failover(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(_api().get(req.headers, req.route_params.get("id", "")))


@bp.queue_trigger(arg_name="msg", queue_name="%VMKEEPER_FAILOVER_QUEUE%", connection="AzureWebJobsStorage")
def failover_worker(msg: func.QueueMessage) -> None:
    from shared.wiring import current

    current().failovers.handle_message(msg.get_body())


@bp.timer_trigger(arg_name="timer", schedule="%VMKEEPER_RECOVERY_PLAN_SCHEDULE%", run_on_startup=False)
def keep_recovery_plans(timer: func.TimerRequest) -> None:
    from shared.wiring import current

    summary = current().recovery_plans.sweep()
    logging.getLogger("vmkeeper.failover.plans").info("recovery plans: %s", summary["counts"])
