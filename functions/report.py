"""The operator's report page: GET /api/report (function key, and a reader role of the restore API)."""

import azure.functions as func

bp = func.Blueprint()


@bp.route(route="report", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def report(req: func.HttpRequest) -> func.HttpResponse:
    from shared.wiring import current

    answer = current().report_api.page(req.headers)
    return func.HttpResponse(answer.text(), status_code=answer.status, headers=answer.headers,
                             mimetype=answer.content_type.split(";")[0], charset="utf-8")
