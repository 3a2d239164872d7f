"""The Prometheus names in otel_perf._internal.catalogue are the ones the real exporter produces and Prometheus stores.

Each metric of the table is recorded on a real SDK MeterProvider read by the Python Prometheus
exporter; the text exposition (prometheus_client.generate_latest) must contain exactly the
translated names, and a real Prometheus scraping that exposition must store them under those names.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from otel_perf._internal import catalogue
from tests.fixtures.net import wait_for

# Unit "1" gauges translate differently in the exporter (_ratio) and Prometheus 3's OTLP receiver:
# the table avoids them on purpose, so none may appear.
METRICS = [m for m in catalogue.ALL if not (m.unit == "1" and m.kind == "gauge")]
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("",)}


def expected_samples(metric: catalogue.Metric) -> set[str]:
    return {metric.prometheus + s for s in SUFFIXES.get(metric.kind, ("",))}


@pytest.fixture(scope="module")
def exposition() -> bytes:
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(registry=registry)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "names"}))
    meter = provider.get_meter("otel_perf.tests")
    attrs = {"http.route": "/items/{id}", "http.request.method": "GET"}
    for m in METRICS:
        if m.kind == "histogram":
            meter.create_histogram(m.name, unit=m.unit, description=m.description).record(0.1, attrs)
        elif m.kind == "counter":
            meter.create_counter(m.name, unit=m.unit, description=m.description).add(1, attrs)
        elif m.kind == "updowncounter":
            meter.create_up_down_counter(m.name, unit=m.unit, description=m.description).add(1, attrs)
        elif m.kind == "gauge":
            meter.create_gauge(m.name, unit=m.unit, description=m.description).set(1, attrs)
        else:
            pytest.fail(f"{m.name}: unknown kind {m.kind!r}")
    text = generate_latest(registry)
    provider.shutdown()
    return text


def test_table_has_no_unit_one_gauges():
    assert [m.name for m in catalogue.ALL if m.unit == "1" and m.kind == "gauge"] == []


def test_exporter_produces_the_table_names(exposition):
    samples = {s.name for fam in text_string_to_metric_families(exposition.decode()) for s in fam.samples}
    for m in METRICS:
        missing = expected_samples(m) - samples
        assert not missing, f"{m.name}: exporter did not produce {sorted(missing)}"
    assert "http_route" in exposition.decode() and "http_request_method" in exposition.decode()
    assert catalogue.label("http.route") == "http_route"


def test_prometheus_stores_the_table_names(exposition, start_prometheus):
    """A real Prometheus scraping the exporter's output keeps every name as the table says."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(exposition)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        prom = start_prometheus(
            "global: {scrape_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: app\n    static_configs: [{{targets: ['127.0.0.1:{server.server_address[1]}']}}]\n"
        )
        wait_for(lambda: prom.query('up{job="app"} == 1'), timeout=30, what="the first scrape")
        stored = set(prom.api("label/__name__/values"))
        for m in METRICS:
            missing = expected_samples(m) - stored
            assert not missing, f"{m.name}: Prometheus stored no {sorted(missing)}"
        [route] = prom.query(f'{catalogue.HTTP_SERVER_DURATION.prometheus}_count{{job="app"}}')
        assert route["metric"]["http_route"] == "/items/{id}"
    finally:
        server.shutdown()
