"""GET /api/health: a cheap liveness probe for the platform and operators (no Azure calls)."""

import json

import azure.functions as func

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    from shared import __version__

    return func.HttpResponse(json.dumps({"status": "ok", "version": __version__}), mimetype="application/json")
