"""Agent end to end with the real binary: test app under `otel-perf run` -> the agent Collector started
with the shipped collector/otelcol-agent.yaml (never edited; a second --config overlay moves the
listeners to free 127.0.0.1 ports) -> traces to an OTLP receiver standing in for Tempo, metrics to a
real Prometheus.

Debian's Prometheus 2.42 has no OTLP receiver, so the overlay sends the metrics pipeline to the
Collector's own `prometheus` exporter and Prometheus scrapes it (honor_labels keeps the exporter's
`job`/`instance`, as Prometheus 3's OTLP receiver sets them). Everything before the exporter, the
processors included, is the shipped pipeline.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from otel_perf.tools.generate import dashboards
from tests.apps import scrub_app
from tests.fixtures.net import wait_for
from tests.fixtures.otelcol import Agent
from tests.fixtures.otlp import GrpcReceiver, attributes
from tests.fixtures.procs import serve

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "collector-e2e"
JOB = f"shop/{SERVICE}"  # service.namespace/service.name
# The RED panels of the service dashboard: they must return data for the traffic below.
RED_PANELS = {"Requests/s per route", "Error % per route", "Requests by status code", "p95 per route (SLA 200 ms)",
              "p50 / p95 / p99", "Share of requests <= 200 ms"}
SUBSTITUTE = {"$service": ".*", "$instance": ".*", "$route": ".*", "$__rate_interval": "15s", "$__range": "5m"}


def get(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=10).status
    except urllib.error.HTTPError as exc:
        return exc.code


def substitute(expr: str) -> str:
    for var, value in SUBSTITUTE.items():
        expr = expr.replace(var, value)
    return expr


@pytest.fixture
def stack(start_collector, start_prometheus, tmp_path):
    tempo = GrpcReceiver()
    agent = Agent(start_collector, tempo.endpoint, tmp_path / "queue", prometheus=True)
    rule_files = {f"rules/{p.name}": p.read_text() for p in (ROOT / "collector/prometheus/rules").glob("*.yml")}
    prom = start_prometheus(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "otel-collector-exporter", "honor_labels": True,
             "static_configs": [{"targets": [f"127.0.0.1:{agent.prometheus_port}"]}]},
            {"job_name": "otel-collector", "static_configs": [{"targets": [f"127.0.0.1:{agent.telemetry}"]}]},
        ],
    }), rule_files=rule_files)
    app = serve("scrub_app:app", OTEL_EXPORTER_OTLP_ENDPOINT=agent.otlp_http, OTEL_SERVICE_NAME=SERVICE,
                OTEL_RESOURCE_ATTRIBUTES="service.namespace=shop,service.version=1.2.3,deployment.environment.name=ci",
                OTEL_METRIC_EXPORT_INTERVAL="500", OTEL_BSP_SCHEDULE_DELAY="200", OTEL_PERF_SUMMARY="false")
    try:
        yield app, agent, tempo, prom
    finally:
        app.stop()
        tempo.stop()


def test_agent_end_to_end(stack):
    app, agent, tempo, prom = stack
    stop = threading.Event()

    def traffic() -> None:
        mix = ["/fast"] * 6 + ["/slow", "/boom", "/items/7", "/items/8"]
        with ThreadPoolExecutor(4) as pool:
            while not stop.is_set():
                list(pool.map(lambda p: get(app.url + p), mix))

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        assert get(app.url + f"/scrub?token={scrub_app.SECRET_TOKEN}&page=2") == 200
        count = 'http_server_request_duration_seconds_count{http_route="/items/{item_id}"}'
        wait_for(lambda: prom.query(count), timeout=60, what=f"{count} in Prometheus")
        # a few scrapes so that rate() over the dashboards' windows has points
        wait_for(lambda: prom.query(f"count_over_time({count}[1m]) >= 4"), timeout=60, what="four scrapes")
    finally:
        stop.set()
        worker.join(30)

    # -- metric names and labels the dashboards and rules query --------------------------------------
    [series, *_] = prom.query(count)
    labels = series["metric"]
    assert labels["job"] == JOB, labels
    assert labels["instance"]  # service.instance.id
    assert {"http_request_method", "http_response_status_code"} <= set(labels), labels
    # promoted resource attributes (transform/promote): labels on every point
    assert labels["service_name"] == SERVICE and labels["service_version"] == "1.2.3", labels
    assert labels["deployment_environment_name"] == "ci", labels
    assert prom.query(f'target_info{{job="{JOB}"}}'), "target_info (the dashboards' $service/$instance variables)"
    stored = set(prom.api("label/__name__/values"))
    for name in ("http_server_request_duration_seconds_bucket", "http_server_request_duration_seconds_sum",
                 "http_server_active_requests", "target_info"):
        assert name in stored, name
    buckets = {s["metric"]["le"] for s in prom.query('http_server_request_duration_seconds_bucket{http_route="/fast"}')}
    assert "0.2" in buckets, sorted(buckets)  # the SLA threshold survives the Collector as a bucket boundary
    assert prom.query('http_server_request_duration_seconds_count{http_response_status_code="500"}')

    # -- every rule and dashboard expression executes; the RED panels return data ---------------------
    for path in sorted((ROOT / "collector/prometheus").glob("*/*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                prom.query(rule["expr"])  # raises PrometheusError on an error
    with_data: dict[str, bool] = {}
    for path in sorted((ROOT / "grafana/dashboards").glob("*.json")):
        for title, expr in dashboards.queries(json.loads(path.read_text())):
            with_data[title] = with_data.get(title, False) or bool(prom.query(substitute(expr)))
    assert RED_PANELS <= set(with_data)
    assert sorted(t for t in RED_PANELS if not with_data[t]) == []
    # the Collector's own metrics the pipeline alerts watch are scraped too
    # the Collector's own metrics, under the names the pipeline alerts and dashboard query
    pipeline_names = set(re.findall(r"otelcol_[a-z_]+", (ROOT / "grafana/dashboards/pipeline.json").read_text()))
    stored = set(prom.api("label/__name__/values"))
    for name in ("otelcol_receiver_accepted_spans_total", "otelcol_exporter_sent_spans_total",
                 "otelcol_exporter_queue_size", "otelcol_exporter_queue_capacity"):
        assert name in pipeline_names and name in stored, name

    # -- traces reached "Tempo", scrubbed ---------------------------------------------------------------
    def scrub_spans():
        return [s for s in tempo.spans() if s.name in ("GET /scrub", "SELECT users")]

    wait_for(lambda: len(scrub_spans()) == 2, timeout=30, what="the /scrub spans at the trace receiver")
    server, db = sorted(scrub_spans(), key=lambda s: s.name)
    server_attrs, db_attrs = attributes(server.attributes), attributes(db.attributes)
    assert server_attrs["url.query"] == "token=REDACTED&page=REDACTED"
    assert server_attrs["url.full"].endswith("/scrub?token=REDACTED&page=REDACTED")
    assert server_attrs["http.request.header.authorization"] == "****"
    assert scrub_app.EMAIL not in server_attrs["enduser.email"]
    assert db_attrs["db.user.password"] == "****"
    assert "4242" not in db_attrs["db.query.text"] and "example.com" not in db_attrs["db.query.text"]
    assert db_attrs["db.query.text"].startswith("SELECT id, name FROM users WHERE email = ")
    with tempo.lock:
        wire = b"".join(req.SerializeToString() for req in tempo.traces)
    for secret in (scrub_app.SECRET_TOKEN, scrub_app.EMAIL, "eyJhbGciOi", "hunter2", "4242"):
        assert secret.encode() not in wire, f"{secret!r} reached the trace backend"
    # resource_detection added the host, without overriding what the application said
    resource = next(r for r in tempo.resources() if r.get("service.name") == SERVICE)
    assert resource["host.name"] and resource["service.namespace"] == "shop"
