"""Read a report's content from saved runs: baseline files and local summaries, one point in time each.

Each file is one period (its time: the baseline's ``created``, else the file's modification time),
in time order, so a CI job that keeps its baselines or summaries gets a trend without Prometheus.
Summaries carry p50 and errors; baselines carry p95/p99 and query means only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

from otel_perf._internal.config.sla import SLO
from otel_perf.tools.report import model


def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict) or "routes" not in data:
        raise ValueError(f"{path}: not an otel-perf baseline, summary or load result (no 'routes')")
    created = data.get("created")
    when = dt.datetime.fromisoformat(created).timestamp() if created else os.path.getmtime(path)
    if data.get("otel_perf_baseline"):  # baseline format: routes/queries keyed already
        routes = {k: {**v, "errors": None, "p50": None} for k, v in data["routes"].items()}
        queries = data.get("queries", {})
    else:  # local summary or load result: lists of rows
        routes = {f"{r['method']} {r['route']}": {"count": r["count"], "p50": r.get("p50"), "p95": r["p95"],
                                                   "p99": r["p99"], "errors": r.get("errors")} for r in data["routes"]}
        queries = {q["shape"]: {"count": q["count"], "mean": q["mean"]} for q in data.get("queries", [])}
    return {"path": path, "time": when, "routes": routes, "queries": queries}


def gather(paths: tuple[str, ...], slo: SLO) -> dict[str, Any]:
    runs = sorted((_load(p) for p in paths), key=lambda r: r["time"])
    times = [r["time"] for r in runs]
    periods = [{"label": f"run {i + 1} ({os.path.basename(r['path'])})", "start": r["time"], "end": r["time"],
                "routes": r["routes"], "queries": r["queries"]} for i, r in enumerate(runs)]
    keys = sorted({k for r in runs for k in r["routes"]}, key=lambda k: -sum(r["routes"].get(k, {}).get("count", 0)
                                                                           for r in runs))
    latency = []
    for key in keys[:8]:
        rows = [r["routes"].get(key, {}) for r in runs]
        last = next((row for row in reversed(rows) if row), {})
        latency.append({"route": key, "t": times, "requests": sum(row.get("count", 0) for row in rows),
                        **{q: [row.get(q) for row in rows] for q in ("p50", "p95", "p99")},
                        "window": {q: last.get(q) for q in ("p50", "p95", "p99")}})
    errors = []
    counted = [(sum(v["count"] for v in r["routes"].values()),
                sum(v["errors"] or 0 for v in r["routes"].values())) for r in runs]
    if any(r["errors"] is not None for run in runs for r in run["routes"].values()):
        cum_n = cum_e = 0
        ratio, budget = [], []
        for n, e in counted:
            cum_n, cum_e = cum_n + n, cum_e + e
            ratio.append(e / n if n else None)
            budget.append(1 - (cum_e / cum_n) / slo.http_error_rate if cum_n else None)
        errors.append({"job": "all runs", "t": times, "ratio": ratio, "budget": budget, "requests": cum_n,
                       "errors": cum_e})
    shapes = sorted({s for r in runs for s in r["queries"]},
                    key=lambda s: -sum(r["queries"].get(s, {}).get("mean", 0) * r["queries"].get(s, {}).get("count", 0)
                                       for r in runs))[:5]
    queries = []
    for shape in shapes:
        rows = [r["queries"].get(shape, {}) for r in runs]
        calls = sum(row.get("count", 0) for row in rows)
        total = sum(row.get("count", 0) * row.get("mean", 0) for row in rows)
        queries.append({"shape": shape, "calls": calls, "total": total, "mean": total / calls if calls else 0,
                        "t": times, "means": [row.get("mean") for row in rows]})
    return {"source": ", ".join(paths), "start": times[0], "end": times[-1], "window": f"{len(runs)} runs",
            "step": None, "sla": model.sla(slo), "latency": latency, "routes_total": len(keys), "errors": errors,
            "periods": periods, "regressions": model.regressions(periods, slo.regression), "queries": queries,
            "vitals": []}
