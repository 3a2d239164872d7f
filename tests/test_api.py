"""The public API used as an application would: its own SDK pieces added through configure()."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROGRAM = r'''
import asyncio, json
import otel_perf
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View, DropAggregation
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
otel_perf.configure(
    service_name="api-test", traces_exporter="none", metrics_exporter="none", logs_exporter="none",
    summary="false", span_processors=[SimpleSpanProcessor(spans)], metric_readers=[reader],
    views=[View(instrument_name="http.server.active_requests", aggregation=DropAggregation())],
)

async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

async def main():
    wrapped = otel_perf.OtelPerfMiddleware(app)
    scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "scheme": "http"}
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        pass
    await wrapped(scope, receive, send)

asyncio.run(main())
metrics = {m.name for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
print(json.dumps({"spans": [s.name for s in spans.get_finished_spans()], "metrics": sorted(metrics)}))
'''


def test_own_span_processors_metric_readers_and_views():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["spans"] == ["GET"]  # the request's SERVER span reached the application's own processor
    assert "http.server.request.duration" in out["metrics"]  # and its duration the application's reader
    assert "http.server.active_requests" not in out["metrics"]  # the application's view dropped this one
