"""Real OTLP over the wire (HTTP/protobuf and gRPC), pre-fork servers, and a dead Collector."""

from __future__ import annotations

import signal
import time

import pytest

from otel_perf._internal.catalogue import HTTP_SERVER_DURATION
from tests.fixtures.net import free_port, wait_for
from tests.fixtures.procs import serve

FAST = {"OTEL_METRIC_EXPORT_INTERVAL": "500", "OTEL_BSP_SCHEDULE_DELAY": "200"}


def request_counts(receiver, route: str) -> dict[str, int]:
    """Latest cumulative request count per service.instance.id for ``route``."""
    latest: dict[str, int] = {}
    for resource, point in receiver.points(HTTP_SERVER_DURATION.name):
        attrs = {kv.key: kv.value.string_value for kv in point.attributes}
        if attrs.get("http.route") == route:
            latest[resource["service.instance.id"]] = point.count
    return latest


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_spans_and_metrics_arrive_over_otlp(protocol, otlp_http, otlp_grpc):
    receiver = otlp_http if protocol == "http/protobuf" else otlp_grpc
    server = serve(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
                   OTEL_SERVICE_NAME="wire-test", **FAST)
    for path in ("/items/1", "/items/2", "/unavailable"):
        server.get(path)
    wait_for(lambda: request_counts(receiver, "/items/{item_id}"), timeout=20, what="duration metric")
    wait_for(lambda: receiver.logs, timeout=20, what="the app's warning as an OTLP log record")
    record = receiver.logs[0].resource_logs[0].scope_logs[0].log_records[0]
    assert record.body.string_value == "backend unavailable for /unavailable"
    assert record.trace_id  # correlated with the request's span
    names = {s.name for s in receiver.spans()}
    assert {"GET /items/{item_id}", "GET /unavailable"} <= names
    resource, point = next((r, p) for r, p in receiver.points(HTTP_SERVER_DURATION.name)
                           if any(kv.value.string_value == "/items/{item_id}" for kv in p.attributes))
    assert resource["service.name"] == "wire-test"
    assert resource["service.instance.id"]
    assert resource["telemetry.distro.name"] == "otel-perf"
    assert 0.2 in point.explicit_bounds and point.count == 2
    process_metrics = {"process.cpu.time", "process.memory.usage", "process.thread.count", "cpython.gc.collections"}
    wait_for(lambda: all(receiver.points(m) for m in process_metrics), timeout=20, what="runtime metrics")
    assert server.stop()
    assert "Traceback" not in server.stderr


@pytest.mark.parametrize("server_kind", ["uvicorn", "gunicorn"])
def test_shutdown_flushes_what_is_queued(otlp_http, server_kind):
    # A long batch delay: only the exit flush can deliver these spans (uvicorn then dies of the
    # re-raised SIGTERM, where atexit handlers never run).
    extra = ("-w", "2") if server_kind == "gunicorn" else ()
    server = serve(server=server_kind, extra=extra, OTEL_EXPORTER_OTLP_ENDPOINT=otlp_http.endpoint,
                   OTEL_BSP_SCHEDULE_DELAY="60000", OTEL_METRIC_EXPORT_INTERVAL="60000")
    for _ in range(3):
        server.get("/items/5")
    assert server.stop()
    assert sum(s.name == "GET /items/{item_id}" for s in otlp_http.spans()) == 3


def test_dead_collector_costs_one_warning_and_a_fast_exit():
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    server = serve(OTEL_EXPORTER_OTLP_ENDPOINT=dead, OTEL_EXPORTER_OTLP_TIMEOUT="5", **FAST)
    statuses = [server.get("/fast") for _ in range(50)] + [server.get("/items/3") for _ in range(50)]
    assert statuses == [200] * 100
    wait_for(lambda: True, timeout=1)
    time.sleep(1.5)  # let a few export attempts fail in the background
    started = time.monotonic()
    assert server.stop(signal.SIGTERM)
    elapsed = time.monotonic() - started
    assert elapsed < 4.0, f"exit took {elapsed:.1f}s with the Collector down"  # vanilla: ~32 s
    assert "Traceback" not in server.stderr
    warnings = [line for line in server.stderr.splitlines() if "NOT being delivered" in line]
    assert len(warnings) <= 1, server.stderr


def gunicorn_instances(receiver, preload: bool) -> dict[str, int]:
    extra = ("-w", "2", "--preload") if preload else ("-w", "2")
    server = serve("prefork_app:app", server="gunicorn", extra=extra,
                   OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, **FAST)
    statuses = [server.get("/fast") for _ in range(40)]
    assert statuses == [200] * 40
    wait_for(lambda: sum(request_counts(receiver, "/fast").values()) == 40, timeout=20,
             what="40 requests counted across workers")
    assert server.stop(), server.stderr
    return request_counts(receiver, "/fast")


@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
def test_gunicorn_workers_export_separately(otlp_http, preload):
    counts = gunicorn_instances(otlp_http, preload)
    assert len(counts) >= 1 and sum(counts.values()) == 40
    instances = {r["service.instance.id"] for r in otlp_http.resources()}
    assert len(instances) >= 2, "each worker needs its own service.instance.id"
    # The app counts one import in the process that imports it; with --preload that is the
    # master, which must not export, and the workers must not inherit the count.
    imports = [p.as_int for _, p in otlp_http.points("prefork_app.imports")]
    assert imports == [] if preload else all(v == 1 for v in imports)


def test_uvicorn_workers_export_separately(otlp_http):
    server = serve("prefork_app:app", extra=("--workers", "2"), OTEL_EXPORTER_OTLP_ENDPOINT=otlp_http.endpoint, **FAST)
    statuses = [server.get("/fast") for _ in range(40)]
    assert statuses == [200] * 40
    wait_for(lambda: sum(request_counts(otlp_http, "/fast").values()) == 40, timeout=30, what="40 requests")
    assert server.stop()
    workers = {r["service.instance.id"] for r in otlp_http.resources() if r.get("process.pid")}
    assert len({r["service.instance.id"] for r in otlp_http.resources()}) >= 2, workers


def test_prometheus_exporter_serves_exact_sla_buckets():
    import urllib.request

    port = free_port()
    server = serve(OTEL_METRICS_EXPORTER="prometheus", OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
                   OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1", OTEL_TRACES_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    for _ in range(3):
        server.get("/items/1")
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert server.stop()
    bucket = next(line for line in body.splitlines()
                  if line.startswith(f"{HTTP_SERVER_DURATION.prometheus}_bucket") and 'le="0.2"' in line
                  and 'http_route="/items/{item_id}"' in line)
    assert bucket.endswith(" 3.0")
    assert "telemetry stays local" not in server.stderr  # nothing was meant to go over OTLP


def test_console_exporter_prints_spans():
    server = serve(OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
                   OTEL_BSP_SCHEDULE_DELAY="100")
    server.get("/items/4")
    assert server.stop()
    assert '"name": "GET /items/{item_id}"' in server.stdout


def test_drops_and_export_failures_are_counted():
    import re
    import urllib.request

    from otel_perf._internal.catalogue import EXPORT_FAILURES, SDK_SPANS_PROCESSED

    port = free_port()
    dead = f"http://127.0.0.1:{free_port()}"
    server = serve(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=dead + "/v1/traces", OTEL_BSP_MAX_QUEUE_SIZE="4",
                   OTEL_BSP_SCHEDULE_DELAY="100", OTEL_EXPORTER_OTLP_TIMEOUT="1", OTEL_LOGS_EXPORTER="none",
                   OTEL_METRICS_EXPORTER="prometheus", OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
                   OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1")
    assert [server.get("/fast") for _ in range(60)] == [200] * 60

    def counted() -> tuple[float, float]:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        dropped = re.search(rf'^{SDK_SPANS_PROCESSED.prometheus}{{.*error_type="queue_full".*}} (\S+)$', body, re.M)
        failed = re.search(rf'^{EXPORT_FAILURES.prometheus}{{.*signal="traces".*}} (\S+)$', body, re.M)
        return float(dropped.group(1)) if dropped else 0.0, float(failed.group(1)) if failed else 0.0

    dropped, failed = wait_for(lambda: all(counted()) and counted(), timeout=20, what="drops and failures counted")
    assert dropped > 0 and failed >= 1
    assert server.stop()
    assert "Traceback" not in server.stderr
