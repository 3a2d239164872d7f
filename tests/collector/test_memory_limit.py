"""Under a tiny memory limit the agent refuses data, the SDK retries, and the application is unaffected.

The overlay gives the shipped memory_limiter an absolute limit below the Collector's idle heap, so
every export is refused (`otelcol_receiver_refused_spans_total`); the refusals are retryable, so
the application's SDK sends the same spans again (refused > spans the app produced) while every
request is still answered promptly.
"""

from __future__ import annotations

import time
import urllib.request

from tests.fixtures.net import wait_for
from tests.fixtures.otelcol import Agent, TraceSink
from tests.fixtures.procs import serve

TINY = {"processors": {"memory_limiter": {"limit_percentage": 0, "spike_limit_percentage": 0,
                                          "limit_mib": 4, "spike_limit_mib": 1}}}


def test_tiny_memory_limit_refuses_the_sdk_retries_the_app_is_unaffected(start_collector, tmp_path):
    sink = TraceSink()
    agent = Agent(start_collector, sink.endpoint, tmp_path / "queue", extra=TINY)
    # The limiter decides at its check interval: send nothing before it has found itself over the limit.
    wait_for(lambda: "above hard limit" in agent.collector.log(), timeout=30, interval=0.2,
             what="the memory limiter over its limit")
    app = serve("scrub_app:app", OTEL_EXPORTER_OTLP_ENDPOINT=agent.otlp_http, OTEL_SERVICE_NAME="tiny-limit",
                OTEL_BSP_SCHEDULE_DELAY="100", OTEL_METRIC_EXPORT_INTERVAL="500", OTEL_PERF_SUMMARY="false")
    try:
        latencies = []
        for _ in range(100):
            start = time.perf_counter()
            with urllib.request.urlopen(app.url + "/fast", timeout=5) as resp:
                assert resp.status == 200
            latencies.append(time.perf_counter() - start)
        latencies.sort()
        assert latencies[94] < 0.1, f"p95 {latencies[94]:.3f}s: the app waited for its telemetry"

        def refused() -> float:
            return agent.collector.metric("otelcol_receiver_refused_spans_total")

        # 100 server spans were produced; retries make the agent refuse more than that
        wait_for(lambda: refused() > 100, timeout=60, interval=0.5, what=f"retried refusals (refused {refused()})")
        assert agent.collector.running()
        assert "memory" in agent.collector.log().lower()
        assert not [s for s in sink.spans() if s.name == "GET /fast"]  # nothing got past the limiter
    finally:
        assert app.stop()
        sink.stop()
