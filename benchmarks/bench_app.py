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
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": "bench"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(
        MeterProvider(resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())])
    )
    app = OpenTelemetryMiddleware(app)
