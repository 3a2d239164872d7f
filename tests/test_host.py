"""What otel-perf guarantees to the program it runs in (docs/guarantees.md): its logging is
untouched, diagnostics reach stderr, environment problems never raise, memory stays bounded under
hostile traffic, and no SQL literal leaves the process on an error path."""

from __future__ import annotations

import gc
import http.client as httpclient
import random
import string
import threading
import tracemalloc

import pytest

from otel_perf._internal.config.settings import Settings
from otel_perf._internal.integrations import asgi as http
from otel_perf._internal.sdk import fast_otlp, providers
from tests.fixtures.net import free_port, wait_for


@pytest.fixture
def pipeline():
    """Factory: the real SDK pipeline (batching, OTLP exporters) built by providers.start."""
    started = []

    def make(**options):
        settings = Settings.resolve({"summary": "false", **options}, environ={})
        telemetry = providers.start(settings)
        providers.take_current()
        started.append(telemetry)
        return telemetry

    yield make
    http.uninstall()
    for t in started:
        for p in (t.tracer_provider, t.meter_provider, t.logger_provider):
            if p is not None:
                p.shutdown()


class InThreadServer:
    """A real uvicorn server running ``app`` in a thread of this process."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, port=self.port, log_level="warning", access_log=False,
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=20, what="uvicorn to start")

    def get_all(self, paths):
        conn = httpclient.HTTPConnection("127.0.0.1", self.port, timeout=10)
        statuses = []
        for path in paths:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        conn.close()
        return statuses

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


def scan_paths(n, seed=3):
    rng = random.Random(seed)
    return ["/" + "".join(rng.choices(string.ascii_letters, k=rng.randint(2000, 6000))) for _ in range(n)]


def test_memory_stays_bounded_under_a_404_scan(pipeline, otlp_http):
    from tests.apps.starlette_app import app

    telemetry = pipeline(endpoint=otlp_http.endpoint, logs_exporter="none", bsp_schedule_delay=100)
    http.install(telemetry)
    server = InThreadServer(app)
    try:
        assert set(server.get_all([f"/items/{i}" for i in range(300)])) == {200}  # warm every cache
        telemetry.tracer_provider.force_flush()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        assert set(server.get_all(scan_paths(1000))) == {404}
        telemetry.tracer_provider.force_flush()
        telemetry.meter_provider.force_flush()
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
    finally:
        server.stop()
    ours = [tracemalloc.Filter(True, "*/otel_perf/*")]
    grown = sum(s.size_diff for s in after.filter_traces(ours).compare_to(before.filter_traces(ours), "filename"))
    # ~4 MB of paths went through; what otel-perf still holds of them must be small.
    assert grown < 1_000_000, f"otel-perf holds {grown / 1e6:.1f} MB more after the scan"
    assert fast_otlp.cached_bytes() <= fast_otlp._CACHE_BYTES
    exported = [s for s in otlp_http.spans() if s.name == "GET"]
    assert len(exported) == 1000  # every scan request still reported
