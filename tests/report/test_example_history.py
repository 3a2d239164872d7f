"""The report, the Sloth dashboards and the error-budget dashboard on a real Prometheus holding data
produced by the example service.

The patient-timeline example runs under ``otel-perf run`` with the Prometheus exporter while traffic
is driven at it; Prometheus scrapes it live. Thirty days of history before that are backfilled from
the distributions the example just produced (per route and query shape: its bucket shares, mean and
rate, replayed half-hourly with a daily wave); Core Web Vitals come from a log-normal model (page views
need a browser per beacon). Prometheus evaluates the generated rules (production windows) on it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from otel_perf._internal.config import sla
from otel_perf.tools.generate import PROMETHEUS_DIRS, RULES_DIR, dashboards, render, rules
from otel_perf.tools.report import cli
from tests.fixtures.net import free_port, wait_for
from tests.fixtures.procs import serve
from tests.report import history

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SLOTH_QUERIES = ROOT / "tests/slo/data/sloth-dashboards.yaml"
JOB = "patient-timeline"
HTTP, DB = "http_server_request_duration_seconds", "db_client_operation_duration_seconds"
SLOS = ("requests-availability", "requests-latency")
PATHS = ["/api/patients/{p}/timeline?limit=20"] * 6 + ["/api/patients?q=sm", "/api/patients/{p}/authors",
                                                       "/api/reports/activity", "/?provider=1", "/healthz"]


def drive(url: str, stop: threading.Event) -> None:
    def one(i: int) -> None:
        provider = 1 + i % 20
        path = PATHS[i % len(PATHS)].format(p=provider + 20 * (i % 50))
        req = urllib.request.Request(url + path, headers={"X-Provider-Id": str(provider)})
        try:
            urllib.request.urlopen(req, timeout=10).read()
        except OSError:
            pass

    with ThreadPoolExecutor(4) as pool:
        i = 0
        while not stop.is_set():
            list(pool.map(one, range(i, i + 8)))
            i += 8


@pytest.fixture
def example(timeline_dsn):
    metrics = free_port()
    server = serve("patient_timeline.app:app", extra=("--app-dir", str(EXAMPLES), "--no-access-log"),
                   DATABASE_URL=timeline_dsn, OTEL_SERVICE_NAME=JOB, OTEL_METRICS_EXPORTER="prometheus",
                   OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1", OTEL_EXPORTER_PROMETHEUS_PORT=str(metrics),
                   OTEL_TRACES_EXPORTER="none", OTEL_LOGS_EXPORTER="none", OTEL_PERF_SUMMARY="false",
                   OTEL_PERF_DB_SHAPE_LABEL="true")
    stop = threading.Event()
    worker = threading.Thread(target=drive, args=(server.url, stop), daemon=True)
    worker.start()
    try:
        yield server, metrics
    finally:
        stop.set()
        worker.join(30)
        server.stop()


def vitals() -> list[history.Histogram]:
    out = []
    for vital, median, sigma in (("lcp", 1.9, 0.4), ("inp", 0.12, 0.5), ("cls", 0.04, 0.8), ("ttfb", 0.3, 0.5)):
        name = f"browser_web_vital_{vital}" + ("" if vital == "cls" else "_seconds")
        for device, slower in (("desktop", 1.0), ("mobile", 1.6)):
            out.append(history.lognormal(name, {"http_route": "/", "browser_device_class": device}, 0.02,
                                         median * slower, sigma, sla.DEFAULT.vital_buckets(vital)))
    return out


def substitute(expr: str, **values: str) -> str:
    for name, value in values.items():
        expr = expr.replace("${" + name + "}", value)
    assert "$" not in expr, expr
    return expr


def sloth_query(prom, expr: str) -> list[dict]:
    found = re.fullmatch(r"label_values\((.*), (\w+)\)", expr)
    if found:  # a Grafana variable query: the values of one label over a selector
        return prom.query(f"group by ({found.group(2)}) ({found.group(1)})")
    return prom.query(expr)


def burning(prom, slo_name: str) -> bool:
    return bool(prom.query(f'slo:current_burn_rate:ratio{{sloth_slo="{slo_name}"}} > 0'))


def test_report_and_slo_dashboards_on_the_example_service(example, history_dir, prometheus_on, chromium, tmp_path):
    server, metrics = example
    instance = f"127.0.0.1:{metrics}"
    began = time.time()
    wait_for(lambda: b"http_route=\"/api/reports/activity\"" in urllib.request.urlopen(
        f"http://{instance}/metrics", timeout=5).read(), timeout=60, what="the example's metrics")
    time.sleep(max(0.0, 8 - (time.time() - began)))  # a few seconds of traffic for its distributions
    scrape = urllib.request.urlopen(f"http://{instance}/metrics", timeout=5).read().decode()
    seconds = time.time() - began
    measured = (history.from_scrape(scrape, HTTP, ("http_request_method", "http_route"), seconds,
                                    status="http_response_status_code")
                + history.from_scrape(scrape, DB, ("db_query_summary", "db_operation_name", "db_collection_name"),
                                      seconds))
    assert {h.labels["http_route"] for h in measured if h.metric == HTTP} >= {
        "/api/patients/{patient_id}/timeline", "/api/reports/activity"}
    assert any(h.metric == DB and h.labels["db_query_summary"] for h in measured)

    end = time.time() - 900
    # half-hourly samples: a 1h rate over the history needs two of them
    history.write(history_dir / "history.om", measured + vitals(), end - 30 * 86400, end, 1800,
                  {"job": JOB, "instance": instance})
    history.backfill(history_dir / "history.om", history_dir / "data")
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [instance]}]}]}
    files = render(sla.DEFAULT, rules.Timing(evaluation=1), collector=False)  # production windows, 1s evaluation
    rule_files = {Path(k).name: v for k, v in files.items() if k.startswith(PROMETHEUS_DIRS)}
    prom = prometheus_on(config, rule_files)
    # The 1h SLIs' recent history too (the last six hours), as if the rules had been running: Sloth's
    # month panel sums slo:sli_error:ratio_rate1h at whole hours, each within the 5m lookback. The
    # backfill steps from an offset hashed from the rule file's path, so a step under 5m, not 1h. Two
    # passes, because the Sloth SLIs read otel-perf's recordings; Prometheus restarted for each pass's blocks.
    hourly = render(sla.DEFAULT, rules.Timing(evaluation=60), collector=False)
    for name in ("slo.yml", "sloth.yml"):
        doc = yaml.safe_load(hourly[f"{RULES_DIR}/{name}"])
        for group in doc["groups"]:
            group["rules"] = [r for r in group["rules"] if r.get("record", "").endswith("rate1h")]
        doc["groups"] = [g for g in doc["groups"] if g["rules"]]
        (history_dir / f"hourly-{name}").write_text(yaml.safe_dump(doc))
        history.backfill_rules(history_dir / f"hourly-{name}", prom.url, end - 6 * 3600, end, history_dir / "data")
        prom.stop()
        prom = prometheus_on(config, rule_files)
    wait_for(lambda: len(prom.query("slo:period_error_budget_remaining:ratio")) == len(SLOS), timeout=90,
             interval=1, what="the Sloth-compatible budget series of both SLOs")

    # -- the community's Sloth dashboards: every query answers, from our rules ---------------------
    spec = yaml.safe_load(SLOTH_QUERIES.read_text())
    month = str(dt.datetime.now(dt.timezone.utc).month)
    empty, unlabelled = [], []
    for q in spec["queries"]:
        windows = spec["variables"]["sli_window"] if "${sli_window}" in q["expr"] else ["5m"]
        for slo_name in SLOS:
            for window in windows:
                expr = substitute(q["expr"], service=JOB, slo=slo_name, sli_window=window, **{"__to:date:M": month},
                                  min_burning_rate=spec["variables"]["min_burning_rate"])
                result = sloth_query(prom, expr)
                where = f"{q['dashboard']} {q['panel']} ({slo_name}, {window})"
                if q.get("burning_only") and not burning(prom, slo_name):
                    continue
                if not result:
                    empty.append(where)
                elif q["from_rules"] and not any(k.startswith("sloth_") for r in result for k in r["metric"]):
                    unlabelled.append(where)
    assert empty == [] and unlabelled == [], (empty, unlabelled)
    assert burning(prom, "requests-latency")  # the slow report route burns the latency budget

    # -- our error-budget dashboard: every panel answers -----------------------------------------
    board = json.loads((ROOT / "grafana/dashboards/error-budget.json").read_text())
    answers = {title: bool(prom.query(expr.replace("$service", ".*"))) for title, expr in dashboards.queries(board)}
    assert answers and all(answers.values()), answers

    # -- the report ------------------------------------------------------------------------------
    html_path, md_path = tmp_path / "report.html", tmp_path / "report.md"
    result = CliRunner().invoke(cli, ["--prometheus", prom.url, "--window", "30d", "--html", str(html_path),
                                      "--markdown", str(md_path)])
    assert result.exit_code == 0, result.output
    md = md_path.read_text()
    for route in ("/api/patients/{patient_id}/timeline", "/api/reports/activity"):
        assert f"GET {route}" in md
    assert "| `patient-timeline` |" in md and "LCP" in md and "mobile" in md

    page = chromium.new_page()
    problems, requests = [], []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(html_path.as_uri())
    page.wait_for_selector("body[data-charts-drawn]", timeout=15_000)
    drawn = page.evaluate("""() => [...document.querySelectorAll('.chart')].map(el => {
        const canvas = el.querySelector('canvas');
        if (!canvas || !canvas.width || !canvas.height) return [el.id, 0];
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let inked = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked++;
        return [el.id, inked];
    })""")
    screenshot = tmp_path / "report.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"report screenshot: {screenshot}")
    ids = [name for name, _ in drawn]
    assert sum(i.startswith("latency-") for i in ids) >= 4 and {"periods", "errors", "budget", "queries"} <= set(ids), ids
    assert any(i.startswith("vital-") for i in ids), ids
    assert [name for name, inked in drawn if inked < 2000] == [], drawn  # every chart drew lines, not just a frame
    assert problems == [] and [u for u in requests if not u.startswith("file:")] == [], (problems, requests)
