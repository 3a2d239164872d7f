"""The duration histogram gives a correct p95 and an exact slow share in a real Prometheus."""

from __future__ import annotations

import psycopg
import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY, start_http_server

from otel_perf._internal.config.settings import Settings
from otel_perf._internal.integrations import psycopg as db
from tests.fixtures.net import free_port, wait_for
from tests.fixtures.otlp import InMemoryTelemetry

DURATION = "db_client_operation_duration_seconds"


@pytest.fixture
def scraped_app():
    """A MeterProvider exposed on a free port for Prometheus to scrape."""
    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=REGISTRY)
    yield provider, port
    server.shutdown()
    provider.shutdown()  # unregisters the reader's collector


def test_p95_and_slow_share_from_buckets(scraped_app, start_prometheus, postgres, table):
    provider, port = scraped_app
    settings = Settings.resolve({}, environ={})
    db.install(InMemoryTelemetry(settings, TracerProvider(), provider, local=False))
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        for _ in range(18):
            conn.execute(f"SELECT count(*) FROM {table}")
        for _ in range(2):
            conn.execute(f"SELECT pg_sleep(0.12), count(*) FROM {table}")
    prom = start_prometheus(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs: [{{job_name: app, static_configs: [{{targets: ['127.0.0.1:{port}']}}]}}]\n"
    )
    series = f'{DURATION}_bucket{{db_collection_name="{table}"}}'
    wait_for(lambda: prom.query(f"sum({series})"), timeout=30, what="the first scrape")
    slow_share = prom.query(
        f'1 - sum({DURATION}_bucket{{db_collection_name="{table}", le="0.1"}}) '
        f'/ sum({DURATION}_count{{db_collection_name="{table}"}})'
    )
    assert float(slow_share[0]["value"][1]) == pytest.approx(0.1)  # exactly 2 of 20: 0.1 s is a boundary
    p95 = float(prom.query(f"histogram_quantile(0.95, sum by (le) ({series}))")[0]["value"][1])
    assert 0.1 < p95 <= 0.25  # interpolated inside the (0.1, 0.25] bucket, not in whole seconds
