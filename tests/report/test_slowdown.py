"""A 50 % slowdown injected into the second of four weeks is called out by the report, HTML and Markdown;
the same traffic without it (another service in the same Prometheus) is reported clean."""

from __future__ import annotations

import re
import time

from click.testing import CliRunner

from otel_perf._internal.config import sla
from otel_perf.tools.report import cli
from tests.report import history

DAY, WEEK = 86400, 7 * 86400
HTTP, DB = "http_server_request_duration_seconds", "db_client_operation_duration_seconds"
LCP = "browser_web_vital_lcp_seconds"
ROUTES = {("GET", "/api/orders"): (0.08, 6.0), ("GET", "/api/search"): (0.04, 3.0), ("POST", "/api/checkout"): (0.12, 1.0)}
SHAPES = {"SELECT orders": (0.008, 12.0), "INSERT payments": (0.02, 1.0)}


def histograms() -> list[history.Histogram]:
    out = []
    for (method, route), (median, rate) in ROUTES.items():
        out.append(history.lognormal(HTTP, {"http_request_method": method, "http_route": route,
                                            "http_response_status_code": "200"}, rate, median, 0.5,
                                     sla.DEFAULT.http_buckets, errors=0.0005,
                                     error_labels={"http_response_status_code": "500"}))
    for shape, (median, rate) in SHAPES.items():
        out.append(history.lognormal(DB, {"db_query_summary": shape}, rate, median, 0.6, sla.DEFAULT.db_buckets))
    for device, median in (("desktop", 1.6), ("mobile", 2.9)):
        out.append(history.lognormal(LCP, {"http_route": "/", "browser_device_class": device}, 0.05, median, 0.4,
                                     sla.DEFAULT.vital_buckets("lcp")))
    return out


def report(url: str, end: float, job: str, tmp_path) -> tuple[str, str]:
    html, md = tmp_path / f"{job}.html", tmp_path / f"{job}.md"
    result = CliRunner().invoke(cli, ["--prometheus", url, "--window", "28d", "--end", str(end), "--job", job,
                                      "--html", str(html), "--markdown", str(md)])
    assert result.exit_code == 0, result.output
    return html.read_text(), md.read_text()


def test_second_week_slowdown_is_called_out(history_dir, prometheus_on, tmp_path):
    end = (time.time() // 3600) * 3600 - 3600
    start = end - 4 * WEEK
    path = history_dir / "history.om"
    for job, slowdown in (("shop", (start + WEEK, start + 2 * WEEK, 1.5)), ("steady", None)):
        history.write(path, histograms(), start, end, 3600, {"job": job, "instance": "shop-1"}, slowdown)
        history.backfill(path, history_dir / "data")
    prom = prometheus_on({"global": {"evaluation_interval": "1s"}})

    html, md = report(prom.url, end, "shop", tmp_path)
    for text in (md, html.replace("&#x27;", "'").replace("&gt;", ">")):
        for method, route in ROUTES:
            # every route's p95 and every shape's mean: worse by about half in week 2, and only there
            found = re.search(rf"REGRESSION week 2 vs week 1: p95 of route `?{method} {route}`? \+(\d+)%", text)
            assert found and 35 <= int(found.group(1)) <= 75, (method, route, text[:3000])  # bucket interpolation
        for shape in SHAPES:
            found = re.search(rf"REGRESSION week 2 vs week 1: mean of query `?{shape}`? \+(\d+)%", text)
            assert found and 45 <= int(found.group(1)) <= 55, (shape, text[:3000])
        assert "week 3 vs week 2" not in text and "week 4 vs week 3" not in text
    assert "Verdict: 5 regression(s) above 20%" in md, md
    assert "LCP" in md and "mobile" in md  # vitals p75 per page made it in

    html, md = report(prom.url, end, "steady", tmp_path)
    assert "REGRESSION" not in md and "REGRESSION" not in html
    assert "regression(s)" not in md and "Verdict:" in md
