"""End to end: app -> SDK Prometheus exporter -> real Prometheus evaluating the generated rules ->
real Alertmanager -> webhook receiver here; then every dashboard and alert query runs on that Prometheus.

Windows and pending periods are the production ones divided by 60 (same generator, ``Timing``), so
the fast-burn pages fire within seconds; the traffic is ~80 % slow requests, ~10 % 5xx and mostly slow statements.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from otel_perf._internal.config import sla as slo
from otel_perf.tools.generate import PROMETHEUS_DIRS, dashboards, render, rules, sloth
from tests.fixtures.net import free_port, wait_for
from tests.fixtures.procs import env

ROOT = Path(__file__).resolve().parents[2]
TIMING = rules.Timing(scale=1 / 60, min_requests=5, evaluation=1)
PAGED = {"ApiErrorBudgetBurnFast", "ApiLatencyBudgetBurnFast", "ApiRouteLatencyHigh"}
# Dashboard panels whose signal the traffic below produces: they must return data.
WITH_DATA = {
    "Requests/s per route", "Error % per route", "Requests/s against last week", "Requests by status code",
    "p95 per route (SLA 200 ms)", "p50 / p95 / p99", "Share of requests <= 200 ms", "Top slow routes",
    "Error budget remaining (30d)", "Latency budget remaining (30d)", "Error burn rate", "Latency burn rate",
    "Operation p95 by table (slow > 100 ms)", "Mean statement duration (SLA 50 ms)", "Statements/s by operation",
    "Slow queries/s by shape (> 100 ms)", "N+1 events by route (>= 10 same-shape statements)",
    "Top statements by total time", "Top statements by mean time (SLA 50 ms)",
    "CPU % of limit (SLA 70%)", "Memory % of limit (SLA 80%)", "CPU cores used", "Resident memory",
    "GC collections/s", "Threads", "Targets up", "Reporting instances per service",
}
# Grafana alert queries (production windows) the traffic gives a value.
RULES_WITH_DATA = {"ApiRouteLatencyHigh", "DbSlowQueries", "DbMeanLatencyHigh", "ProcessCpuHigh", "ProcessMemoryHigh"}
SUBSTITUTE = {"$service": ".*", "$instance": ".*", "$route": ".*", "$__rate_interval": "15s", "$__range": "5m"}


class Webhook:
    """Alertmanager's webhook receiver: collects the alerts it is sent."""

    def __init__(self) -> None:
        received = self.alerts = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received.extend(body["alerts"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def names(self) -> set[str]:
        return {a["labels"]["alertname"] for a in self.alerts if a["status"] == "firing"}


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.server.shutdown()


@pytest.fixture
def app(postgres):
    port, metrics = free_port(), free_port()
    environ = env(OTEL_METRICS_EXPORTER="prometheus", OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
                  OTEL_EXPORTER_PROMETHEUS_PORT=str(metrics), OTEL_TRACES_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
                  OTEL_PERF_SUMMARY="false", OTEL_PERF_DB_STAT_STATEMENTS_DSN=postgres.dsn,
                  OTEL_PERF_DB_STAT_STATEMENTS_INTERVAL="1", APP_DSN=postgres.dsn, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "tests.generate.app:app", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"app exited: {proc.stdout.read()}")
        return get(url + "/fast") == 200

    try:
        wait_for(ready, timeout=30, what="the e2e app")
        yield url, metrics
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def get(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=10).status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def substitute(expr: str) -> str:
    for var, value in SUBSTITUTE.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, expr
    return expr


def test_alerts_fire_route_and_every_query_runs(app, webhook, start_prometheus, start_alertmanager):
    url, metrics_port = app
    am = start_alertmanager(yaml.safe_dump({
        "route": {"receiver": "none", "group_by": ["alertname", "http_route"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "1h",
                  "routes": [{"matchers": ['alertname=~"Api.*"'], "receiver": "webhook"}]},
        "receivers": [{"name": "none"}, {"name": "webhook", "webhook_configs": [{"url": webhook.url}]}],
    }))
    files = render(slo.DEFAULT, TIMING, collector=False)
    rule_files = {f"rules/{Path(k).name}": v for k, v in files.items() if k.startswith(PROMETHEUS_DIRS)}
    prom = start_prometheus(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am.port}"]}]}]},
        "scrape_configs": [{"job_name": "e2e-app", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }), rule_files=rule_files)
    wait_for(lambda: prom.query('up{job="e2e-app"} == 1'), timeout=30, what="Prometheus scraping the app")

    stop = threading.Event()

    def traffic() -> None:
        # 80 % of HTTP requests slow, 10 % failing; statements mostly slow, an N+1 request now and then
        mix = ["/slow"] * 8 + ["/fail", "/fast"] + ["/db/slow"] * 3
        with ThreadPoolExecutor(len(mix)) as pool:
            for cycle in itertools.count():
                if stop.is_set():
                    break
                list(pool.map(lambda p: get(url + p), mix + (["/db/n-plus-one"] if cycle % 5 == 0 else [])))

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        wait_for(lambda: PAGED <= webhook.names(), timeout=90, interval=0.5,
                 what=f"{PAGED} at the webhook (got {webhook.names()})")
        # the database alerts fire too, and Alertmanager routes them away from the webhook
        wait_for(lambda: {"DbSlowQueries", "DbMeanLatencyHigh"} <= {a["labels"]["alertname"] for a in am.alerts()},
                 timeout=40, interval=0.5, what="database alerts at Alertmanager")
    finally:
        stop.set()
        worker.join(30)

    assert all(name.startswith("Api") for name in webhook.names()), webhook.names()
    latency = [a for a in webhook.alerts if a["labels"]["alertname"] == "ApiRouteLatencyHigh"]
    assert {a["labels"]["http_route"] for a in latency} == {"/slow"}  # the fast routes stay silent
    for alert in webhook.alerts:
        assert alert["labels"]["severity"] in ("critical", "warning")
        assert alert["labels"]["service"] == "e2e-app"
        assert alert["annotations"]["runbook_url"].endswith(f"/{alert['labels']['alertname']}.md")
        assert re.search(r"\d", alert["annotations"]["description"])  # the measured value is in it

    # Every rule Prometheus loaded evaluated without error.
    loaded = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
    assert len(loaded) == sum(len(g["rules"]) for d in rules.prometheus_rules(slo.DEFAULT, TIMING).values()
                              for g in d["groups"]) + sum(len(g["rules"]) for g in sloth.recording_rules(slo.DEFAULT))
    assert [r["name"] for r in loaded if r["health"] != "ok"] == []

    # The committed rules (production windows) run: Prometheus rule files and Grafana alert queries.
    for path in sorted(p for d in PROMETHEUS_DIRS for p in (ROOT / d).glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                prom.query(rule["expr"])  # raises PrometheusError on an error
    grafana = yaml.safe_load((ROOT / "grafana/provisioning/alerting/rules.yaml").read_text())
    answered = set()
    for group in grafana["groups"]:
        for rule in group["rules"]:
            for data in rule["data"]:
                if data["datasourceUid"] == "prometheus" and prom.query(data["model"]["expr"]):
                    answered.add(rule["title"])
    assert RULES_WITH_DATA <= answered, RULES_WITH_DATA - answered
    with_data: dict[str, bool] = {}
    for path in sorted((ROOT / "grafana/dashboards").glob("*.json")):
        model = json.loads(path.read_text())
        for title, expr in dashboards.queries(model):
            result = prom.query(substitute(expr))  # raises PrometheusError on an error
            with_data[title] = with_data.get(title, False) or bool(result)
    assert WITH_DATA <= set(with_data)  # the list above names real panels
    assert sorted(t for t in WITH_DATA if not with_data[t]) == []

