"""An app for the pre-fork tests: it counts its own import with the global OpenTelemetry API."""

from opentelemetry import metrics
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

metrics.get_meter("prefork_app").create_counter("prefork_app.imports").add(1)


async def fast(request):
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/fast", fast)])
