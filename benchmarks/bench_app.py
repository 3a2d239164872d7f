"""The ASGI app every HTTP benchmark variant serves: one route, a tiny JSON body.

``BENCH_VARIANT`` picks how it is instrumented when imported:
- ``bare``: nothing;
- ``vanilla``: upstream OpenTelemetryMiddleware + SDK + OTLP/HTTP exporters (what
  auto-instrumentation sets up), to ``OTEL_EXPORTER_OTLP_ENDPOINT``;
- ``otel-perf``: ``otel_perf.configure()`` exporting to the same endpoint.
"""

import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

VARIANT = os.environ.get("BENCH_VARIANT", "bare")

if VARIANT == "otel-perf":
    import otel_perf

    otel_perf.configure(service_name="bench")


async def item(request):
    return JSONResponse({"id": request.path_params["item_id"], "ok": True})


app = Starlette(routes=[Route("/items/{item_id:int}", item)])

if VARIANT == "vanilla":
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from vanilla import install_sdk

    install_sdk("bench")
    app = OpenTelemetryMiddleware(app)
