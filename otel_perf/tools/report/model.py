"""The report's content, independent of where it came from (Prometheus, baselines, summaries).

A report is a plain dict (it is embedded as JSON in the HTML file):

``title, source, generated, start, end, window`` (Unix seconds, a PromQL duration);
``sla``: the thresholds drawn and judged against;
``latency``: per route ``{route, t, p50, p95, p99, requests, window: {p50, p95, p99}}``;
``errors``: per service ``{job, t, ratio, budget, requests, errors}``;
``periods``: ``[{label, start, end, routes: {route: {count, p95, p99}}, queries: {shape: {count, mean}}}]``
(weeks for Prometheus, one per file otherwise); ``regressions``: rows of ``baseline.compare`` between
consecutive periods that got worse beyond the threshold;
``queries``: slowest shapes ``{shape, calls, total, mean, t, means}``;
``vitals``: ``[{vital, unit, good, poor, pages: [{page, device, p75, rating, t, values}]}]``.
"""

from __future__ import annotations

from typing import Any

from otel_perf._internal.config.sla import SLO
from otel_perf.tools import baseline

VITAL_UNITS = {"lcp": "s", "inp": "s", "cls": "", "fcp": "s", "ttfb": "s"}


def sla(slo: SLO) -> dict[str, Any]:
    return {
        "p95": slo.http_latency, "latency_target": slo.http_latency_target, "error_rate": slo.http_error_rate,
        "regression": slo.regression, "db_mean": slo.db_mean, "db_slow": slo.db_slow,
        "vitals": {v: {"good": getattr(slo, v), "poor": getattr(slo, f"{v}_poor")} for v in VITAL_UNITS},
    }


def regressions(periods: list[dict[str, Any]], threshold: float,
                min_samples: int = baseline.DEFAULT_MIN_SAMPLES) -> list[dict[str, Any]]:
    """Routes whose p95 and query shapes whose mean got worse than ``threshold`` from one period to the next.

    The same noise rules as ``otel-perf baseline check`` (minimum samples, absolute tolerances).
    """
    out = []
    for before, after in zip(periods, periods[1:], strict=False):
        for row in baseline.compare(before, after, threshold, min_samples):
            if row.status == "regression":
                out.append({"kind": row.kind, "key": row.key, "metric": row.metric, "before": row.base,
                            "after": row.new, "change": row.change, "period": after["label"],
                            "previous": before["label"], "end": after["end"]})
    return sorted(out, key=lambda r: (-r["change"], r["key"]))


def verdict(report: dict[str, Any]) -> str:
    if report["regressions"]:
        return f"{len(report['regressions'])} regression(s) above {report['sla']['regression']:.0%}"
    slow = [r for r in report["latency"] if (r["window"].get("p95") or 0) > report["sla"]["p95"]]
    if slow:
        return f"{len(slow)} route(s) over the p95 SLA"
    return "no regression, every route within the SLA"
