"""Runs inside a matrix environment (any FastAPI/Starlette/Django version): configure otel-perf
with in-memory exporters *as the global providers* (what switches FastAPI 0.16x's own telemetry
on), serve an app with a real uvicorn on 127.0.0.1, drive it with real HTTP and report what was
recorded as JSON on stdout. Standard library only on the client side (plus ``websockets``)."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import socket
import sys
import threading
import time
from importlib.metadata import version
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import otel_perf

EXPORTER = InMemorySpanExporter()
READER = InMemoryMetricReader()


def configure() -> None:
    otel_perf.configure(service_name="matrix", traces_exporter="none", metrics_exporter="none",
                        logs_exporter="none", summary="true", span_processors=[SimpleSpanProcessor(EXPORTER)],
                        metric_readers=[READER])


class Server:
    """uvicorn serving ``app`` in a thread (uvicorn's Config.load puts otel-perf's middleware on)."""

    def __init__(self, app: Any):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error", lifespan="auto")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise SystemExit("uvicorn did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def new_trace() -> tuple[str, str]:
    """A trace id and the traceparent that makes the request's SERVER span join it."""
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def request(port: int, path: str, method: str = "GET") -> dict[str, Any]:
    trace_id, parent = new_trace()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, headers={"traceparent": parent})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return {"trace_id": trace_id, "status": response.status, "body": body.decode("utf-8", "replace"),
            "server_timing": response.getheader("server-timing")}


def stream(port: int, path: str, on_first_chunk: Any) -> dict[str, Any]:
    """Read a chunked response chunk by chunk; ``on_first_chunk`` runs after the first arrives."""
    trace_id, parent = new_trace()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"traceparent": parent})
    response = conn.getresponse()
    first = response.read1(65536)
    on_first_chunk()
    rest = response.read()
    conn.close()
    return {"trace_id": trace_id, "status": response.status, "first": first.decode(), "rest": rest.decode()}


def disconnect(port: int, path: str, after_headers: bool) -> str:
    """Send a request and hang up: before any response, or after the response headers."""
    trace_id, parent = new_trace()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\ntraceparent: {parent}\r\n\r\n".encode())
    if after_headers:
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    sock.close()
    return trace_id


def server_spans(trace_id: str, wait: bool = True) -> list[dict[str, Any]]:
    """The finished SERVER spans of ``trace_id`` (waits up to 20 s for the first)."""
    deadline = time.monotonic() + (20 if wait else 0)
    while True:
        found = [s for s in EXPORTER.get_finished_spans() if f"{s.context.trace_id:032x}" == trace_id]
        servers = [s for s in found if s.kind is SpanKind.SERVER]
        if servers or time.monotonic() > deadline:
            return [describe(s) for s in servers]
        time.sleep(0.02)


def spans_of(trace_id: str) -> list[dict[str, Any]]:
    return [describe(s) for s in EXPORTER.get_finished_spans() if f"{s.context.trace_id:032x}" == trace_id]


def describe(span: Any) -> dict[str, Any]:
    return {"name": span.name, "kind": span.kind.name, "scope": span.instrumentation_scope.name,
            "attributes": {k: v for k, v in span.attributes.items()}, "status": span.status.status_code.name,
            "start": span.start_time, "end": span.end_time, "span_id": f"{span.context.span_id:016x}",
            "parent": f"{span.parent.span_id:016x}" if span.parent else None}


def duration_series() -> list[dict[str, Any]]:
    """Every ``http.server.request.duration`` series, from every instrumentation scope."""
    data = READER.get_metrics_data()
    series = []
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "http.server.request.duration":
                    for point in metric.data.data_points:
                        series.append({"scope": sm.scope.name, "attributes": dict(point.attributes),
                                       "count": point.count, "bounds": list(point.explicit_bounds)})
    return series


def summary_routes() -> list[dict[str, Any]]:
    from otel_perf._internal.sdk import providers

    return providers.current().summary.as_dict()["routes"]


def emit(results: dict[str, Any], packages: tuple[str, ...]) -> None:
    results["versions"] = {name: version(name) for name in packages}
    results["python"] = sys.version.split()[0]
    json.dump(results, sys.stdout, default=str)
    sys.stdout.flush()
    os._exit(0)  # the server thread and exporters need no orderly exit here
