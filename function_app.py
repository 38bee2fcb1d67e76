"""The Functions entry point: a table of contents. Logic lives in the packages it names."""

import azure.functions as func

from blueprints import eventgrid, http_api, queue, timer
from clients import azure_monitor

# Traces, metrics and logs to Azure Monitor when APPLICATIONINSIGHTS_CONNECTION_STRING is set.
azure_monitor.setup()

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(http_api.bp)
app.register_functions(timer.bp)
app.register_functions(queue.bp)
app.register_functions(eventgrid.bp)
