"""The Function App: one FunctionApp that registers the blueprints in functions/. No logic here;
heavy SDKs are imported lazily inside the handlers so cold start stays light."""

import azure.functions as func

from functions import BLUEPRINTS

app = func.FunctionApp()
for blueprint in BLUEPRINTS:
    app.register_functions(blueprint)
