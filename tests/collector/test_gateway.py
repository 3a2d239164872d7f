"""The gateway tier with the real binary: the shipped collector/otelcol-gateway.yaml (tail-sampling
policies generated from the SLA spec) and two gateways behind an agent's load_balancing exporter.

The overlay moves listeners to free 127.0.0.1 ports and shortens `decision_wait` (10 s shipped) to
keep the test short; the policies are the shipped ones. Traces are built with a real SDK and explicit
timestamps, so "slow" is exact, not a sleep.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from pathlib import Path

from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from tests.fixtures.net import wait_for
from tests.fixtures.otelcol import Agent, TraceSink, ports, sdk_tracer, telemetry_readers

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "collector/otelcol-gateway.yaml"
MS = 1_000_000
DECISION_WAIT = "2s"


def start_gateway(start_collector, sink: TraceSink, percentage: int | None = None, name: str = "gateway"):
    health, grpc, http, telemetry = ports(4)
    overlay = {
        "extensions": {"health_check": {"endpoint": f"127.0.0.1:{health}"}},
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{grpc}"},
                                             "http": {"endpoint": f"127.0.0.1:{http}"}}}},
        "processors": {"tail_sampling": {"decision_wait": DECISION_WAIT}},
        "service": {"telemetry": {"metrics": {"readers": telemetry_readers(GATEWAY, telemetry)}}},
    }
    env = {"TEMPO_OTLP_ENDPOINT": sink.endpoint}
    if percentage is not None:
        env["OTEL_PERF_TAIL_SAMPLING_PERCENTAGE"] = str(percentage)
    collector = start_collector(GATEWAY, overlay, env=env, name=name, health_port=health, telemetry_port=telemetry)
    return collector, grpc


def make_trace(tracer, server_ms: float, db_ms: float | None = None, error: bool = False, spans: int = 0) -> str:
    """One trace: a SERVER span of ``server_ms`` with an optional DB child of ``db_ms`` and ``spans``
    plain children; returns the trace id (hex)."""
    start = time.time_ns() - int(server_ms * MS) - 5 * MS
    root = tracer.start_span("GET /orders", kind=SpanKind.SERVER, start_time=start)
    context = set_span_in_context(root)
    if db_ms is not None:
        db = tracer.start_span("SELECT orders", context=context, kind=SpanKind.CLIENT, start_time=start + MS)
        db.set_attribute("db.system.name", "postgresql")
        db.end(end_time=start + MS + int(db_ms * MS))
    for i in range(spans):
        child = tracer.start_span(f"step {i}", context=context, start_time=start + MS)
        child.end(end_time=start + 2 * MS)
    if error:
        root.set_status(Status(StatusCode.ERROR, "boom"))
    root.end(end_time=start + int(server_ms * MS))
    return format(root.get_span_context().trace_id, "032x")


def trace_ids(sink: TraceSink) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for span in sink.spans():
        out[span.trace_id.hex()] += 1
    return out


def test_tail_sampling_keeps_errors_slow_and_a_share_of_the_rest(start_collector):
    sink = TraceSink()
    try:
        _, grpc = start_gateway(start_collector, sink)  # the shipped default: 10 % of healthy traces
        tracer, provider = sdk_tracer(f"127.0.0.1:{grpc}")
        must_keep = {
            "error": [make_trace(tracer, 12, db_ms=3, error=True) for _ in range(20)],
            "slow": [make_trace(tracer, 350) for _ in range(20)],
            "slow-db": [make_trace(tracer, 180, db_ms=150) for _ in range(20)],
        }
        healthy = [make_trace(tracer, 20, db_ms=5) for _ in range(1600)]
        healthy += [make_trace(tracer, 190, db_ms=90) for _ in range(400)]  # just under both thresholds
        assert provider.force_flush(60_000)
        provider.shutdown()
        expected_spans = {t: 2 for ids in must_keep.values() for t in ids}
        expected_spans.update({t: 1 for t in must_keep["slow"]})

        def kept() -> dict[str, int]:
            return trace_ids(sink)

        wait_for(lambda: set(expected_spans) <= set(kept()), timeout=60, interval=0.5,
                 what="every errored / slow / slow-DB trace at the backend")
        time.sleep(3)  # the healthy traces' decisions are due at the same time; let the last batch land
        got = kept()
        for kind, ids in must_keep.items():
            assert all(got.get(t) == expected_spans[t] for t in ids), f"{kind}: a trace is missing or incomplete"
        kept_healthy = [t for t in healthy if t in got]
        assert all(got[t] == 2 for t in kept_healthy)  # whole traces, never half
        # 10 % of 2,000: mean 200, standard deviation sqrt(2000 * 0.1 * 0.9) = 13.4; allow 4.5 sigma
        n, p = len(healthy), 0.10
        bound = 4.5 * math.sqrt(n * p * (1 - p))
        assert abs(len(kept_healthy) - n * p) <= bound, f"kept {len(kept_healthy)} of {n} healthy traces"
    finally:
        sink.stop()


def test_two_gateways_behind_the_load_balancing_exporter(start_collector, tmp_path):
    sinks = [TraceSink(), TraceSink()]
    try:
        gateways = [start_gateway(start_collector, sink, percentage=100, name=f"gateway{i}")
                    for i, sink in enumerate(sinks)]
        lb = {
            "exporters": {"load_balancing": {
                "routing_key": "traceID",
                "protocol": {"otlp": {"tls": {"insecure": True}, "timeout": "5s"}},
                "resolver": {"static": {"hostnames": [f"127.0.0.1:{grpc}" for _, grpc in gateways]}},
            }},
            "service": {"pipelines": {"traces": {"exporters": ["load_balancing"]}}},
        }
        agent = Agent(start_collector, "127.0.0.1:9", tmp_path / "queue", extra=lb)
        tracer, provider = sdk_tracer(f"127.0.0.1:{agent.grpc}", schedule_delay_millis=50, max_export_batch_size=64)
        traces = {}
        for _ in range(300):
            traces[make_trace(tracer, 30, db_ms=5, spans=2)] = 4
        assert provider.force_flush(60_000)
        provider.shutdown()

        def landed() -> list[dict[str, int]]:
            return [trace_ids(sink) for sink in sinks]

        wait_for(lambda: sum(len(x) for x in landed()) >= len(traces), timeout=60, interval=0.5,
                 what=f"{len(traces)} traces across the two gateways")
        time.sleep(2)
        first, second = landed()
        assert not set(first) & set(second), "a trace was split across gateways"
        assert set(first) | set(second) == set(traces)
        assert all({**first, **second}[t] == 4 for t in traces), "incomplete traces"
        assert min(len(first), len(second)) > len(traces) * 0.3, (len(first), len(second))
    finally:
        for sink in sinks:
            sink.stop()
