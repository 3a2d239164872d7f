"""The report from saved runs (baseline files, local summaries): one point each, compared in time order."""

from __future__ import annotations

import json

from click.testing import CliRunner

from otel_perf.tools.report import cli


def baseline(path, created: str, p95: float, mean: float) -> str:
    path.write_text(json.dumps({
        "otel_perf_baseline": 1, "created": created,
        "routes": {"GET /orders": {"count": 500, "p95": p95, "p99": p95 * 1.3},
                   "GET /health": {"count": 500, "p95": 0.004, "p99": 0.005}},
        "queries": {"SELECT orders": {"count": 900, "mean": mean}},
    }))
    return str(path)


def summary(path, p95: float) -> str:
    path.write_text(json.dumps({"routes": [
        {"method": "GET", "route": "/orders", "count": 400, "errors": 2, "p50": p95 / 3, "p95": p95, "p99": p95 * 1.2}],
        "queries": []}))
    return str(path)


def test_a_slower_run_is_called_out_and_gates(tmp_path):
    files = [baseline(tmp_path / "b3.json", "2026-11-15T00:00:00+00:00", 0.120, 0.004),  # given out of order
             baseline(tmp_path / "b1.json", "2026-11-01T00:00:00+00:00", 0.080, 0.004),
             baseline(tmp_path / "b2.json", "2026-11-08T00:00:00+00:00", 0.081, 0.0041)]
    html, md = tmp_path / "r.html", tmp_path / "r.md"
    args = [a for f in files for a in ("--from-baseline", f)] + ["--html", str(html), "--markdown", str(md)]
    result = CliRunner().invoke(cli, [*args, "--fail-on-regression"])
    assert result.exit_code == 1, result.output
    text = md.read_text()
    assert "REGRESSION run 3 (b3.json) vs run 2 (b2.json): p95 of route `GET /orders` +48%" in text
    assert text.count("REGRESSION") == 1  # run 2 vs run 1 moved by 1 %, the query not at all
    assert "REGRESSION run 3 (b3.json)" in html.read_text()


def test_summaries_give_errors_and_budget(tmp_path):
    files = [summary(tmp_path / "s1.json", 0.05), summary(tmp_path / "s2.json", 0.05)]
    result = CliRunner().invoke(cli, ["--from-summary", files[0], "--from-summary", files[1],
                                      "--html", str(tmp_path / "r.html"), "--markdown", "-"])
    assert result.exit_code == 0, result.output
    assert "| `all runs` | 800 | 4 | 0.50% | -400.0% |" in result.output  # 0.5 % errors: 5x the 0.1 % budget
    assert "Verdict: no regression" in result.output
