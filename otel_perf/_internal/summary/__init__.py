"""The local SLA summary: what a run taught you, with no backend at all.

Accumulated in-process while the program runs (a bounded reservoir of durations per route and per query
shape, so memory stays flat however long it runs) and printed at exit: per route the request
count, error %, p50/p95/p99 and a verdict against the SLA; the slowest query shapes; N+1 suspects.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import threading
from array import array
from typing import Any

from otel_perf._internal.config.sla import SLO
from otel_perf._internal.summary.bottlenecks import Bottlenecks
from otel_perf._internal.summary.render import render

RESERVOIR = 4096  # samples kept per series (32 KiB as doubles): quantiles stay within ~1 % rank error
UNMATCHED = "(unmatched)"
# Routes/shapes beyond this are folded into one "(other)" row: with the reservoirs, at most ~8 MiB
# per table however many query shapes or routes the program produces.
MAX_SERIES = 250


class _Series:
    __slots__ = ("count", "errors", "total", "maximum", "slow", "threshold", "samples", "weights")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.total = 0.0
        self.maximum = 0.0
        self.slow = 0
        self.threshold = 0.0
        self.samples = array("d")  # 8 bytes a sample, not a float object and a list slot
        self.weights: list[float] | None = None  # after merging processes: requests each sample stands for

    def add(self, duration: float) -> None:
        self.count += 1
        self.total += duration
        if duration > self.maximum:
            self.maximum = duration
        if len(self.samples) < RESERVOIR:
            self.samples.append(duration)
        else:  # reservoir sampling (Algorithm R): every sample equally likely to be kept
            slot = random.randrange(self.count)
            if slot < RESERVOIR:
                self.samples[slot] = duration

    def quantiles(self, *extra: float) -> dict[str, float]:
        qs = (0.50, 0.95, 0.99, *extra)
        if self.weights is not None:
            return self._weighted_quantiles(qs)
        ordered = sorted(self.samples)
        n = len(ordered)  # nearest rank: the ceil(q * n)-th smallest sample
        return {_name(q): ordered[max(0, math.ceil(q * n) - 1)] if n else 0.0 for q in qs}

    def _weighted_quantiles(self, qs: tuple[float, ...]) -> dict[str, float]:
        pairs = sorted(zip(self.samples, self.weights or (), strict=False))
        total = sum(w for _, w in pairs)
        out = {}
        for q in qs:
            running, value = 0.0, pairs[-1][0] if pairs else 0.0
            for sample, weight in pairs:
                running += weight
                if running >= q * total - 1e-9:
                    value = sample
                    break
            out[_name(q)] = value
        return out

    def state(self) -> list:
        """Everything needed to merge this series with another process's (JSON-ready)."""
        weights = self.weights if self.weights is not None else [self.count / len(self.samples)] * len(self.samples) if self.samples else []
        return [self.count, self.errors, self.total, self.maximum, self.slow, self.threshold, list(self.samples), weights]

    def merge(self, state: list) -> None:
        count, errors, total, maximum, slow, threshold, samples, weights = state
        mine = self.state()[7]
        self.count += count
        self.errors += errors
        self.total += total
        self.maximum = max(self.maximum, maximum)
        self.slow += slow
        self.threshold = threshold or self.threshold
        self.samples = array("d", [*self.samples, *samples])
        self.weights = [*mine, *weights]


def _name(q: float) -> str:
    """p50, p95, p99, p99.9: the quantile's percent without float noise."""
    return f"p{round(q * 100, 3):g}"

class Summary:
    def __init__(self, slo: SLO, service: str = ""):
        self.slo = slo
        self.service = service
        self._routes: dict[tuple[str, str], _Series] = {}
        self._queries: dict[str, _Series] = {}
        self._n_plus_one: dict[tuple[str, str], list[int]] = {}  # (route, shape) -> [requests, max count]
        self._lock = threading.Lock()
        self.bottlenecks = Bottlenecks()  # plan findings and slow-request profiles
        self.plan_findings = self.bottlenecks.plan_findings
        self.profile = self.bottlenecks.profile

    # -- recording (called on the hot path: keep it to a dict lookup and an append) ---------------

    def request(self, method: str, route: str | None, status: int | None, duration: float) -> None:
        series = self._routes.get((method, route or UNMATCHED))
        if series is None:
            series = self._series(self._routes, (method, route or UNMATCHED), ("*", "(other)"))
        series.add(duration)
        if status is not None and status >= 500:
            series.errors += 1

    def query(self, shape: str, duration: float, threshold: float) -> None:
        series = self._queries.get(shape)
        if series is None:
            series = self._series(self._queries, shape, "(other)")
        series.add(duration)
        series.threshold = threshold
        if duration > threshold:
            series.slow += 1

    def n_plus_one(self, route: str | None, shape: str, count: int) -> None:
        with self._lock:
            entry = self._n_plus_one.setdefault((route or UNMATCHED, shape), [0, 0])
            entry[0] += 1
            entry[1] = max(entry[1], count)

    def _series(self, table: dict, key: Any, overflow: Any) -> _Series:
        with self._lock:
            if key not in table and len(table) >= MAX_SERIES:
                key = overflow
            return table.setdefault(key, _Series())

    # -- several processes, one summary (see summary.shared) ---------------------------------------

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "routes": [[m, r, s.state()] for (m, r), s in self._routes.items()],
                "queries": [[shape, s.state()] for shape, s in self._queries.items()],
                "n_plus_one": [[r, shape, n, top] for (r, shape), (n, top) in self._n_plus_one.items()],
            }

    def merge(self, state: dict[str, Any]) -> None:
        for method, route, series in state.get("routes", ()):
            self._series(self._routes, (method, route), ("*", "(other)")).merge(series)
        for shape, series in state.get("queries", ()):
            self._series(self._queries, shape, "(other)").merge(series)
        with self._lock:
            for route, shape, n, top in state.get("n_plus_one", ()):
                entry = self._n_plus_one.setdefault((route, shape), [0, 0])
                entry[0] += n
                entry[1] = max(entry[1], top)

    # -- reporting -------------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        slo = self.slo
        routes = []
        target = _name(slo.http_latency_target)  # the SLA: this share of requests within http_latency
        for (method, route), s in sorted(self._routes.items(), key=lambda kv: -kv[1].count):
            q = s.quantiles(slo.http_latency_target)
            error_rate = s.errors / s.count if s.count else 0.0
            problems = []
            if q[target] > slo.http_latency:
                problems.append("slow")
            if error_rate > slo.http_error_rate:
                problems.append("errors")
            routes.append({
                "method": method, "route": route, "count": s.count, "errors": s.errors,
                "error_rate": error_rate, **q, "target_latency": q[target], "max": s.maximum,
                "verdict": "ok" if not problems else "+".join(problems),
            })
        queries = []
        for shape, s in sorted(self._queries.items(), key=lambda kv: (-kv[1].slow, -kv[1].total)):
            q = s.quantiles()
            queries.append({
                "shape": shape, "count": s.count, "mean": s.total / s.count if s.count else 0.0,
                "p95": q["p95"], "max": s.maximum, "slow": s.slow, "threshold": s.threshold,
            })
        suspects = [
            {"route": route, "shape": shape, "requests": n, "max_count": top}
            for (route, shape), (n, top) in sorted(self._n_plus_one.items(), key=lambda kv: -kv[1][0])
        ]
        return {
            "service": self.service,
            "pid": os.getpid(),
            "sla": {"http_latency": slo.http_latency, "http_latency_target": slo.http_latency_target,
                    "http_error_rate": slo.http_error_rate,
                    "db_slow": slo.db_slow, "db_mean": slo.db_mean, "n_plus_one": slo.n_plus_one},
            "routes": routes,
            "queries": queries,
            "n_plus_one": suspects,
            **self.bottlenecks.as_dict(),
        }

    def emit(self, path: str | None = None) -> None:
        """Print the summary to stderr (when anything happened) and write JSON to ``path``."""
        data = self.as_dict()
        if path:
            if "{pid}" in path:
                path = path.format(pid=os.getpid())
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2)
        if data["routes"] or data["queries"] or data["plan_findings"]:
            render(data, sys.stderr)
