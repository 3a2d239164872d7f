"""The local summary: verdicts against the configured latency target, text printed as it is."""

from __future__ import annotations

import io

from otel_perf._internal.config.sla import SLO
from otel_perf._internal.summary import Summary
from otel_perf._internal.summary.render import render


def _route(summary: Summary, fast: int, slow: int) -> dict:
    for _ in range(fast):
        summary.request("GET", "/r", 200, 0.010)
    for _ in range(slow):
        summary.request("GET", "/r", 200, 0.500)
    return summary.as_dict()


def test_verdict_uses_the_configured_latency_target():
    # 3 % of requests over 200 ms: inside a 95 % target, outside a 99 % one.
    default = _route(Summary(SLO()), 97, 3)["routes"][0]
    assert default["verdict"] == "ok" and default["target_latency"] == default["p95"]
    strict = _route(Summary(SLO().with_overrides({"http_latency_target": 0.99}, "t")), 97, 3)
    (row,) = strict["routes"]
    assert row["verdict"] == "slow" and row["target_latency"] == row["p99"] == 0.5
    assert strict["sla"]["http_latency_target"] == 0.99
    lax = _route(Summary(SLO().with_overrides({"http_latency_target": 0.9}, "t")), 92, 8)["routes"][0]
    assert lax["verdict"] == "ok" and lax["p95"] == 0.5  # p95 is over 200 ms, but the SLA asks for 90 %
    out = io.StringIO()
    render(strict, out)
    assert "SLA: p99 < 200.0 ms (0.99 of requests within it)" in out.getvalue()


def test_sql_and_routes_are_printed_as_they_are():
    summary = Summary(SLO(), "svc")
    summary.request("GET", "/items/[id]", 200, 0.01)
    summary.query("SELECT a[i], b[1:2] FROM t WHERE [x] = ?", 0.2, 0.1)
    summary.n_plus_one("/items/[id]", "SELECT a[i] FROM t", 12)
    out = io.StringIO()
    render(summary.as_dict(), out)
    text = out.getvalue()
    assert "GET /items/[id]" in text
    assert "SELECT a[i], b[1:2] FROM t WHERE [x] = ?" in text
    assert "ran `SELECT a[i] FROM t` up to 12 times" in text
    assert "\033[" not in text  # not a terminal: no escape codes either
