"""The shipped Prometheus and Alertmanager configs, started for real (Debian's Prometheus 2.42 and
Alertmanager 0.25): Prometheus loads rules/*.yml beside its config and sends to Alertmanager, which
routes by severity to the webhook receiver from ALERT_WEBHOOK_URL and inhibits warnings by criticals.

The only changes to the shipped files are the addresses: Prometheus' Alertmanager target and the
webhook URL point at the processes the test started (compose resolves `alertmanager:9093`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from otel_perf.tools.validate import render_placeholders
from tests.fixtures.net import wait_for
from tests.fixtures.prometheus import PrometheusError

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "collector/prometheus/prometheus.yml"
ALERTMANAGER = ROOT / "collector/alertmanager/alertmanager.yml"

ALWAYS_FIRING = """\
groups:
  - name: stack-test
    rules:
      - alert: StackTestPage
        expr: vector(1)
        labels: {severity: critical, service: checkout}
        annotations: {summary: always firing}
"""


@pytest.fixture
def webhook():
    """A webhook receiver in the test: collects the alerts Alertmanager posts."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.received = received  # type: ignore[attr-defined]
    server.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"  # type: ignore[attr-defined]
    yield server
    server.shutdown()


def shipped_alertmanager(webhook_url: str) -> str:
    return render_placeholders(ALERTMANAGER.read_text(), {"ALERT_WEBHOOK_URL": webhook_url})


def alerts_named(received: list[dict], name: str) -> list[dict]:
    return [a for msg in received for a in msg["alerts"] if a["labels"].get("alertname") == name]


def test_prometheus_loads_the_shipped_config_and_rule_files(start_prometheus):
    prom = start_prometheus(PROMETHEUS.read_text(), rule_files={"rules/test.yml": ALWAYS_FIRING})
    config = yaml.safe_load(prom.api("status/config")["yaml"])
    assert config["storage"]["tsdb"]["out_of_order_time_window"] == "30m"
    assert {job["job_name"] for job in config["scrape_configs"]} >= {"prometheus", "otel-collector", "tempo"}
    assert config["rule_files"] == [str(prom.workdir / "rules/*.yml")]  # resolved beside the config
    groups = prom.api("rules")["groups"]
    assert [g["name"] for g in groups] == ["stack-test"]
    assert prom.query("vector(1)")[0]["value"][1] == "1"
    with pytest.raises(PrometheusError, match="parse error"):
        prom.query("sum(")


def test_alert_reaches_the_webhook_through_the_shipped_configs(start_prometheus, start_alertmanager, webhook,
                                                               tmp_path):
    secrets = tmp_path / "secrets"
    subprocess.run([sys.executable, str(ROOT / "collector/make_secrets.py"), str(secrets)], check=True,
                   capture_output=True)
    password = (secrets / "alertmanager-password").read_text().strip()
    am = start_alertmanager(shipped_alertmanager(webhook.url), web_config=secrets / "alertmanager-web.yml",
                            auth=("otel-perf", password))
    config = yaml.safe_load(PROMETHEUS.read_text())
    manager = config["alerting"]["alertmanagers"][0]
    manager["basic_auth"]["password_file"] = str(secrets / "alertmanager-password")  # the compose secret's path here
    manager["static_configs"][0]["targets"] = [f"127.0.0.1:{am.port}"]
    start_prometheus(yaml.safe_dump(config), rule_files={"rules/test.yml": ALWAYS_FIRING})

    # critical -> the `page` route (group_wait 10s) -> webhook.
    wait_for(lambda: alerts_named(webhook.received, "StackTestPage"), timeout=60, what="the page at the webhook")
    [alert] = alerts_named(webhook.received, "StackTestPage")[:1]
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["service"] == "checkout"
    assert alert["status"] == "firing"


def test_critical_inhibits_warnings_of_the_same_service(start_alertmanager, webhook):
    am = start_alertmanager(shipped_alertmanager(webhook.url))
    now = datetime.now(timezone.utc)
    window = {"startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=10)).isoformat()}
    am.post_alerts(
        [
            {"labels": {"alertname": "LatencyBudgetBurn", "severity": "critical", "service": "checkout"}, **window},
            {"labels": {"alertname": "LatencyP95High", "severity": "warning", "service": "checkout"}, **window},
            {"labels": {"alertname": "LatencyP95High", "severity": "warning", "service": "search"}, **window},
        ]
    )

    def states():
        return {(a["labels"]["alertname"], a["labels"]["service"]): a["status"] for a in am.alerts()}

    wait_for(
        lambda: len(states()) == 3 and states()[("LatencyP95High", "checkout")]["inhibitedBy"],
        timeout=30,
        what="inhibition",
    )
    got = states()
    assert got[("LatencyP95High", "checkout")]["state"] == "suppressed"
    assert got[("LatencyP95High", "search")]["state"] == "active"  # other service: not inhibited
    assert got[("LatencyBudgetBurn", "checkout")]["state"] == "active"
