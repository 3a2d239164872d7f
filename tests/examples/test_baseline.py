"""The regression gate: comparison rules, the CLI's outputs and exit codes, and real runs of the example."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from otel_perf.tools.baseline import cli, compare

from .conftest import SCENARIO, run_example

GATE_SCENARIO = Path(__file__).with_name("gate_locustfile.py")

OTEL_PERF = str(Path(sys.executable).parent / "otel-perf")
SLOW_ROUTE = "GET /api/reports/activity"


def _base(p95: float = 0.100, count: int = 100, mean: float = 0.010) -> dict:
    return {"routes": {"GET /a": {"count": count, "p95": p95, "p99": p95 * 2}},
            "queries": {"SELECT $1": {"count": count, "mean": mean}}}


def _status(rows, key):
    return next(r.status for r in rows if r.key == key)


def test_threshold_tolerance_and_sample_rules():
    base = _base()
    assert {r.status for r in compare(base, _base(), 0.2, 20)} == {"ok"}
    slower = compare(base, _base(p95=0.150, mean=0.015), 0.2, 20)
    assert _status(slower, "GET /a") == "regression" and _status(slower, "SELECT $1") == "regression"
    assert _status(compare(base, _base(p95=0.115), 0.2, 20), "GET /a") == "ok"  # +15 % is within 20 %
    assert _status(compare(base, _base(p95=0.115), 0.1, 20), "GET /a") == "regression"  # configurable
    assert _status(compare(base, _base(p95=0.050), 0.2, 20), "GET /a") == "improved"
    # tiny latencies: +100 % but only +1 ms, below the 10 ms tolerance
    assert _status(compare(_base(p95=0.001), _base(p95=0.002), 0.2, 20), "GET /a") == "ok"
    assert _status(compare(base, _base(p95=0.5, count=5), 0.2, 20), "GET /a") == "few samples"
    added = {"routes": {"GET /b": {"count": 100, "p95": 1.0, "p99": 1.0}}, "queries": {}}
    rows = compare(base, added, 0.2, 20)
    assert _status(rows, "GET /a") == "missing" and _status(rows, "GET /b") == "new"


def _summary(path: Path, p95: float) -> str:
    path.write_text(json.dumps({
        "routes": [{"method": "GET", "route": "/a", "count": 50, "p50": p95 / 2, "p95": p95, "p99": p95}],
        "queries": [{"shape": "SELECT * FROM t WHERE id = $1", "count": 500, "mean": p95 / 10}],
    }))
    return str(path)


def test_cli_save_check_reports(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    runner = CliRunner()
    base = str(tmp_path / "baseline.json")
    result = runner.invoke(cli, ["save", base, "--from-summary", _summary(tmp_path / "a.json", 0.1)])
    assert result.exit_code == 0, result.output
    saved = json.loads(Path(base).read_text())
    assert saved["routes"]["GET /a"] == {"count": 50, "p95": 0.1, "p99": 0.1}

    md, js = tmp_path / "report.md", tmp_path / "report.json"
    ok = runner.invoke(cli, ["check", base, "--from-summary", _summary(tmp_path / "b.json", 0.12),
                             "--markdown", str(md), "--json", str(js)])
    assert ok.exit_code == 0, ok.output
    assert json.loads(js.read_text())["passed"] is True and "passed" in md.read_text()

    monkeypatch.setenv("OTEL_PERF_SLO_REGRESSION", "0.05")  # the default threshold comes from the SLA spec
    strict = runner.invoke(cli, ["check", base, "--from-summary", str(tmp_path / "b.json")])
    assert strict.exit_code == 1, strict.output
    monkeypatch.delenv("OTEL_PERF_SLO_REGRESSION")

    bad = runner.invoke(cli, ["check", base, "--from-summary", _summary(tmp_path / "c.json", 0.15),
                              "--markdown", str(md), "--json", str(js)])
    assert bad.exit_code == 1
    report = json.loads(js.read_text())
    assert report["passed"] is False
    assert {(r["key"], r["status"]) for r in report["rows"]} == {
        ("GET /a", "regression"), ("SELECT * FROM t WHERE id = $1", "regression")}
    assert "**FAILED**" in md.read_text() and "| :x: | `GET /a` | p95 | 100.0 ms | 150.0 ms | +50% |" in md.read_text()
    assert runner.invoke(cli, ["check", base]).exit_code == 2  # no source given


def _drive(users: int = 2, requests: int = 140, scenario: Path = GATE_SCENARIO):
    def drive(url: str) -> None:
        subprocess.run([OTEL_PERF, "load", str(scenario), "--url", url, "--users", str(users), "--requests",
                        str(requests), "--duration", "60", "--seed", "1"], check=True, capture_output=True)
    return drive


# Measured on this shared 2-core machine (server, Locust, PostgreSQL and other suites at once), four
# identical runs of this scenario: report route p95 294-312 ms, with the injected +50 % 426-454 ms;
# timeline p95 8.9-12 ms (it has reached +9 ms under heavier contention), hence a 20 ms tolerance
# instead of the 10 ms default. Threshold and minimum samples are the defaults (20 %, 20). When the
# other suites saturate the cores, even the report route's p95 has moved +38 % between identical runs
# (its statement's mean only +7 %): hence the confirming rerun below, and only two users, so the
# report route's p95 is its pg_sleep plus little queueing (with four, a noisy baseline once hid the
# injected +50 % under the 20 % threshold in CI).
GATE = ["--tolerance", "0.02"]


def test_gate_passes_an_unchanged_rerun_and_fails_a_50_percent_slowdown(timeline_dsn, tmp_path):
    first = run_example(timeline_dsn, tmp_path / "first.json", _drive())
    baseline = tmp_path / "baseline.json"
    subprocess.run([OTEL_PERF, "baseline", "save", str(baseline), "--from-summary", str(tmp_path / "first.json")],
                   check=True, capture_output=True)
    assert json.loads(baseline.read_text())["routes"][SLOW_ROUTE]["count"] >= 50

    for _attempt in range(2):  # a regression must reproduce: one confirming rerun, as docs advise for CI
        run_example(timeline_dsn, tmp_path / "same.json", _drive())
        same = subprocess.run([OTEL_PERF, "baseline", "check", str(baseline), "--from-summary",
                               str(tmp_path / "same.json"), *GATE], capture_output=True, text=True)
        if same.returncode == 0:
            break
    assert same.returncode == 0, same.stdout + same.stderr
    assert "REGRESSION" not in same.stdout

    slow = run_example(timeline_dsn, tmp_path / "slow.json", _drive(), EXAMPLE_SLOW_SECONDS="0.375")  # 1.5 x 0.25
    report = tmp_path / "check.json"
    worse = subprocess.run([OTEL_PERF, "baseline", "check", str(baseline), "--from-summary",
                            str(tmp_path / "slow.json"), "--json", str(report), *GATE],
                           capture_output=True, text=True)
    assert worse.returncode == 1, worse.stdout
    rows = {(r["key"], r["metric"]): r for r in json.loads(report.read_text())["rows"]}
    slow_p95 = rows[(SLOW_ROUTE, "p95")]
    assert slow_p95["status"] == "regression" and slow_p95["change"] > 0.2
    assert rows[(SLOW_ROUTE, "errors")]["status"] == "ok"  # the error rate is compared too, and unchanged
    [report_query] = [r for r in rows.values() if r["kind"] == "query" and "pg_sleep" in r["key"]]
    assert report_query["status"] == "regression"  # the slow statement's mean, from otel_perf.db
    assert [k for k, r in rows.items() if r["status"] == "regression"] == [(SLOW_ROUTE, "p95"),
                                                                          (report_query["key"], "mean")]
    assert "REGRESSION" in worse.stdout and SLOW_ROUTE in worse.stderr
    assert first["routes"] and slow["routes"]


def test_baseline_from_prometheus(timeline_dsn, tmp_path, start_prometheus):
    """The PromQL behind ``--prometheus`` run on a real Prometheus scraping the example's metrics."""
    from tests.fixtures.net import free_port, wait_for

    metrics_port = free_port()
    prometheus = start_prometheus(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs: [{{job_name: app, static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]}}]\n")
    baseline = tmp_path / "baseline.json"

    def scraped_after(moment: float) -> None:
        wait_for(lambda: prometheus.query(f'timestamp(up{{job="app"}} == 1) > {moment}'), timeout=20,
                 what="Prometheus to scrape the example")

    def drive(url: str) -> None:
        # Counters are judged by their increase, so the series must exist before the measured traffic.
        _drive(users=4, requests=100, scenario=SCENARIO)(url)
        scraped_after(time.time())
        _drive(users=4, requests=200, scenario=SCENARIO)(url)
        scraped_after(time.time())
        # One evaluation time for both: a window that slid between them would judge other requests.
        at = ["--window", "1m", "--at", str(time.time())]
        saved = subprocess.run([OTEL_PERF, "baseline", "save", str(baseline), "--prometheus", prometheus.url, *at],
                               capture_output=True, text=True)
        assert saved.returncode == 0, saved.stderr
        again = subprocess.run([OTEL_PERF, "baseline", "check", str(baseline), "--prometheus", prometheus.url, *at,
                                "--min-samples", "1"], capture_output=True, text=True)
        assert again.returncode == 0, again.stdout + again.stderr

    run_example(timeline_dsn, tmp_path / "summary.json", drive, OTEL_METRICS_EXPORTER="prometheus",
                OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1", OTEL_EXPORTER_PROMETHEUS_PORT=str(metrics_port),
                OTEL_TRACES_EXPORTER="none", OTEL_LOGS_EXPORTER="none", OTEL_PERF_SUMMARY="true",
                OTEL_PERF_DB_SHAPE_LABEL="true")

    saved = json.loads(baseline.read_text())
    report = saved["routes"][SLOW_ROUTE]
    assert report["count"] > 0 and 0.25 <= report["p95"] <= report["p99"] <= 1.0  # bucket-interpolated
    assert saved["routes"]["GET /api/patients/{patient_id}/timeline"]["p95"] < 0.2
    # Metrics carry db.query.summary ("SELECT events"), coarser than the local summary's statements:
    # the slow report's statement shares "SELECT events" with the timeline page and lifts its mean.
    queries = saved["queries"]
    assert queries["SELECT clinicians"]["count"] >= 25  # the N+1 endpoint's lookups
    assert queries["SELECT events"]["mean"] > 5 * queries["SELECT clinicians"]["mean"]


def _write(path: Path, routes: list[dict], queries: list[dict] | None = None, **extra) -> str:
    path.write_text(json.dumps({"routes": routes, "queries": queries or [], **extra}))
    return str(path)


def _route(p95: float = 0.1, count: int = 100, errors: int = 0) -> dict:
    return {"method": "GET", "route": "/a", "count": count, "errors": errors, "p50": p95 / 2, "p95": p95, "p99": p95}


def _saved(tmp_path: Path, **kw) -> str:
    base = str(tmp_path / "base.json")
    result = CliRunner().invoke(cli, ["save", base, "--from-summary", _write(tmp_path / "s.json", [_route(**kw)],
                                                                                 sla={}, pid=1)])
    assert result.exit_code == 0, result.output
    return base


def test_nothing_compared_fails_with_a_reason(tmp_path):
    base = _saved(tmp_path)
    md = tmp_path / "report.md"
    empty = CliRunner().invoke(cli, ["check", base, "--from-summary", _write(tmp_path / "e.json", []),
                                     "--markdown", str(md)])
    assert empty.exit_code == 1
    assert "nothing compared: the new run" in empty.output and "no requests" in empty.output
    assert "**FAILED**" in md.read_text() and "nothing compared" in md.read_text()
    few = CliRunner().invoke(cli, ["check", base, "--from-summary", _write(tmp_path / "f.json", [_route(count=3)])])
    assert few.exit_code == 1 and "at least 20 samples" in few.output


def test_noise_settings_are_printed_with_every_result(tmp_path):
    base = _saved(tmp_path)
    result = CliRunner().invoke(cli, ["check", base, "--from-summary", _write(tmp_path / "n.json", [_route()]),
                                      "--tolerance", "0.02", "--min-samples", "30", "--markdown", "-"])
    assert result.exit_code == 0, result.output
    settings = "threshold 20%, tolerance 20 ms (query shapes 1 ms), error-rate tolerance 0.10%, minimum samples 30"
    assert result.output.count(settings) >= 3  # table caption, Markdown report, verdict line
    assert "### otel-perf baseline check: passed" in result.output  # `--markdown -` wrote to stdout
    assert not (Path.cwd() / "-").exists()


def test_error_rate_gates(tmp_path):
    base = _saved(tmp_path, errors=0)
    worse = CliRunner().invoke(cli, ["check", base, "--from-summary",
                                     _write(tmp_path / "w.json", [_route(errors=5)]), "--json", "-"])
    assert worse.exit_code == 1
    report = json.loads(worse.stdout[worse.stdout.index("{"):worse.stdout.rindex("}") + 1])
    assert {(r["metric"], r["status"]) for r in report["rows"]} == {("p95", "ok"), ("errors", "regression")}
    assert "errors +5.00 pp" in worse.stderr
    within = CliRunner().invoke(cli, ["check", base, "--error-tolerance", "0.1", "--from-summary",
                                      _write(tmp_path / "ok.json", [_route(errors=5)])])
    assert within.exit_code == 0, within.output


def test_server_side_against_client_side_warns(tmp_path):
    base = _saved(tmp_path)  # a local summary: server side
    load = _write(tmp_path / "load.json", [_route()], scenario="locustfile.py", url="http://127.0.0.1:8000")
    result = CliRunner().invoke(cli, ["check", base, "--from-summary", load])
    assert result.exit_code == 0, result.output
    assert "warning: the baseline is server-side and the new run client-side" in result.stderr
