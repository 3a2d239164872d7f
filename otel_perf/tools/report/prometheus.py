"""Read a report's content from Prometheus: range queries for the charts, instant queries per week.

Every query is portable PromQL (Prometheus 2.42). Series come from otel-perf's metric names
(``otel_perf._internal.catalogue``); query shapes need ``OTEL_PERF_DB_SHAPE_LABEL=true``, otherwise
statements are grouped by operation and table.
"""

from __future__ import annotations

import json
import math
import time
import urllib.parse
import urllib.request
from typing import Any

from otel_perf._internal import catalogue
from otel_perf._internal.config.sla import SLO
from otel_perf.tools.report import model

HTTP = catalogue.HTTP_SERVER_DURATION.prometheus
DB = catalogue.DB_CLIENT_DURATION.prometheus
METHOD, ROUTE, STATUS = (catalogue.label(n) for n in ("http.request.method", "http.route", "http.response.status_code"))
SHAPE = catalogue.label("db.query.summary")
OPERATION, TABLE = catalogue.label("db.operation.name"), catalogue.label("db.collection.name")
DEVICE = catalogue.label("browser.device.class")
VITALS = {"lcp": catalogue.WEB_VITAL_LCP, "inp": catalogue.WEB_VITAL_INP, "cls": catalogue.WEB_VITAL_CLS,
          "fcp": catalogue.WEB_VITAL_FCP, "ttfb": catalogue.WEB_VITAL_TTFB}
WEEK = 7 * 86400
STEPS = (60, 300, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)  # chart resolutions, seconds
MAX_POINTS = 200
MAX_ROUTES, MAX_SHAPES = 8, 5
FIVE_XX, EMPTY = '"5.."', '""'


class PrometheusError(RuntimeError):
    pass


def seconds(duration: str) -> int:
    """A PromQL duration (``30d``, ``1h30m``) in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": WEEK, "y": 365 * 86400}
    total, number = 0, ""
    for char in duration.strip():
        if char.isdigit():
            number += char
        elif char in units and number:
            total, number = total + int(number) * units[char], ""
        else:
            raise ValueError(f"not a duration: {duration!r} (e.g. 30d, 12h, 1w)")
    if number or not total:
        raise ValueError(f"not a duration: {duration!r} (e.g. 30d, 12h, 1w)")
    return total


def dur(secs: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


class Client:
    def __init__(self, url: str, timeout: float = 60):
        self.url, self.timeout = url.rstrip("/"), timeout

    def _get(self, path: str, **params: Any) -> Any:
        req = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            try:
                body = json.load(exc)
            except ValueError:
                raise PrometheusError(f"{self.url}: HTTP {exc.code}") from None
        except (OSError, ValueError) as exc:
            raise PrometheusError(f"cannot query {self.url}: {exc}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"{self.url}: {body.get('error', body)} (query: {params.get('query')})")
        return body["data"]["result"]

    def instant(self, query: str, at: float, labels: tuple[str, ...] = ()) -> dict[tuple[str, ...], float]:
        """``{values of labels: value}``, finite values only (a missing label reads as "")."""
        return {_key(s["metric"], labels): v for s in self._get("query", query=query, time=at)
                if math.isfinite(v := float(s["value"][1]))}

    def series(self, query: str, start: float, end: float, step: int,
               labels: tuple[str, ...] = ()) -> dict[tuple[str, ...], dict[float, float]]:
        out = {}
        for s in self._get("query_range", query=query, start=start, end=end, step=step):
            points = {float(t): float(v) for t, v in s["values"] if math.isfinite(float(v))}
            if points:
                out[_key(s["metric"], labels)] = points
        return out


def _key(metric: dict[str, str], labels: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(metric.get(k, "") for k in labels)


def _align(times: list[float], points: dict[float, float], digits: int = 6) -> list[float | None]:
    return [round(points[t], digits) if t in points else None for t in times]


def step_for(window: int) -> int:
    return next((s for s in STEPS if window / s <= MAX_POINTS), STEPS[-1])


def gather(url: str, window: str, slo: SLO, end: float | None = None, job: str | None = None) -> dict[str, Any]:
    client = Client(url)
    span = seconds(window)
    end = float(int(end if end is not None else time.time()))  # whole seconds: range answers come back in ms
    start = end - span
    step = step_for(span)
    end = start + (span // step) * step  # whole steps, so every series shares one time axis
    times = [start + i * step for i in range(1, span // step + 1)]
    sel = f'job="{job}"' if job else ""
    r = dur(step)

    def hsel(extra: str = "") -> str:
        return "{" + ", ".join(x for x in (sel, extra) if x) + "}"

    def q_range(query: str, labels: tuple[str, ...]) -> dict[tuple[str, ...], dict[float, float]]:
        return client.series(query, times[0], times[-1], step, labels) if times else {}

    report: dict[str, Any] = {"source": f"{url} over {window}", "start": start, "end": end, "window": window,
                              "step": step, "sla": model.sla(slo)}

    # -- latency per route ------------------------------------------------------------------------
    by = f"{METHOD}, {ROUTE}"
    rk = (METHOD, ROUTE)
    counts = client.instant(f"sum by ({by}) (increase({HTTP}_count{hsel()}[{window}]))", end, rk)
    top = sorted((k for k, n in counts.items() if n > 0), key=lambda k: -counts[k])[:MAX_ROUTES]
    window_q = {q: client.instant(f"histogram_quantile({q}, sum by (le, {by}) (increase({HTTP}_bucket{hsel()}[{window}])))",
                                  end, rk) for q in (0.5, 0.95, 0.99)}
    ranged = {q: q_range(f"histogram_quantile({q}, sum by (le, {by}) (rate({HTTP}_bucket{hsel()}[{r}])))", rk)
              for q in (0.5, 0.95, 0.99)}
    report["latency"] = [{
        "route": _route(m, rt), "t": times, "requests": round(counts[(m, rt)]),
        **{f"p{round(q * 100)}": _align(times, ranged[q].get((m, rt), {})) for q in ranged},
        "window": {f"p{round(q * 100)}": window_q[q].get((m, rt)) for q in window_q},
    } for m, rt in top]
    report["routes_total"] = len([k for k, n in counts.items() if n > 0])

    # -- errors and the error budget, per service ---------------------------------------------------
    total = f"sum by (job) (increase({HTTP}_count{hsel()}[{r}]))"
    failed = f"sum by (job) (increase({HTTP}_count{hsel(f'{STATUS}=~{FIVE_XX}')}[{r}]))"
    totals, fails = q_range(total, ("job",)), q_range(f"{failed} or 0 * {total}", ("job",))
    report["errors"] = []
    for key in sorted(totals):
        n = totals[key]
        e = fails.get(key, {})
        cum_n = cum_e = 0.0
        ratio, budget = [], []
        for t in times:
            if t in n:
                cum_n += n[t]
                cum_e += e.get(t, 0.0)
            ratio.append(round(e.get(t, 0.0) / n[t], 6) if n.get(t) else None)
            budget.append(round(1 - (cum_e / cum_n) / slo.http_error_rate, 6) if cum_n else None)
        report["errors"].append({"job": key[0], "t": times, "ratio": ratio, "budget": budget,
                                 "requests": round(cum_n), "errors": round(cum_e)})

    # -- periods (weeks from the window's start) ---------------------------------------------------
    shape_by = _shape_label(client, hsel, window, end)
    sk = tuple(shape_by.split(", "))
    periods = []
    week_start = start
    while week_start < end:
        week_end = min(week_start + WEEK, end)
        length = week_end - week_start
        if length < 86400 and periods:  # a trailing day-fraction is not a week to compare
            break
        w = dur(int(length))
        rc = client.instant(f"sum by ({by}) (increase({HTTP}_count{hsel()}[{w}]))", week_end, rk)
        p95 = client.instant(f"histogram_quantile(0.95, sum by (le, {by}) (increase({HTTP}_bucket{hsel()}[{w}])))",
                             week_end, rk)
        p99 = client.instant(f"histogram_quantile(0.99, sum by (le, {by}) (increase({HTTP}_bucket{hsel()}[{w}])))",
                             week_end, rk)
        qc = client.instant(f"sum by ({shape_by}) (increase({DB}_count{hsel()}[{w}]))", week_end, sk)
        qs = client.instant(f"sum by ({shape_by}) (increase({DB}_sum{hsel()}[{w}]))", week_end, sk)
        periods.append({
            "label": f"week {len(periods) + 1}", "start": week_start, "end": week_end,
            "routes": {_route(m, rt): {"count": round(n), "p95": p95.get((m, rt), 0.0), "p99": p99.get((m, rt), 0.0)}
                       for (m, rt), n in rc.items() if n > 0},
            "queries": {" ".join(k): {"count": round(n), "mean": qs.get(k, 0.0) / n} for k, n in qc.items() if n > 0},
        })
        week_start = week_end
    report["periods"] = periods
    report["regressions"] = model.regressions(periods, slo.regression)

    # -- slowest query shapes and their trend ------------------------------------------------------
    calls = client.instant(f"sum by ({shape_by}) (increase({DB}_count{hsel()}[{window}]))", end, sk)
    spent = client.instant(f"sum by ({shape_by}) (increase({DB}_sum{hsel()}[{window}]))", end, sk)
    means = q_range(f"sum by ({shape_by}) (rate({DB}_sum{hsel()}[{r}])) / sum by ({shape_by}) (rate({DB}_count{hsel()}[{r}]))",
                    sk)
    shapes = sorted((k for k in calls if calls[k] > 0), key=lambda k: -spent.get(k, 0.0))[:MAX_SHAPES]
    report["queries"] = [{"shape": " ".join(k), "calls": round(calls[k]), "total": spent.get(k, 0.0),
                          "mean": spent.get(k, 0.0) / calls[k], "t": times, "means": _align(times, means.get(k, {}))}
                         for k in shapes]

    # -- Core Web Vitals p75 per page ------------------------------------------------------------
    report["vitals"] = []
    for name, metric in VITALS.items():
        m = metric.prometheus
        p75 = client.instant(f"histogram_quantile(0.75, sum by (le, {ROUTE}, {DEVICE}) "
                             f"(increase({m}_bucket{hsel()}[{window}])))", end, (DEVICE, ROUTE))
        if not p75:
            continue
        trend = q_range(f"histogram_quantile(0.75, sum by (le, {ROUTE}) (rate({m}_bucket{hsel()}[{r}])))", (ROUTE,))
        good, poor = getattr(slo, name), getattr(slo, f"{name}_poor")
        pages = []
        for (device, page), value in sorted(p75.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            pages.append({"page": page, "device": device, "p75": value, "rating": slo.vital_rating(name, value),
                          "t": times, "values": _align(times, trend.get((page,), {}))})
        report["vitals"].append({"vital": name, "unit": model.VITAL_UNITS[name], "good": good, "poor": poor,
                                 "pages": pages})
    return report


def _route(method: str, route: str) -> str:
    return f"{method} {route or '(no route matched)'}"


def _shape_label(client: Client, hsel: Any, window: str, end: float) -> str:
    """Group statements by query summary when the metric carries it, else by operation and table."""
    labelled = f"last_over_time({DB}_count{hsel(f'{SHAPE}!={EMPTY}')}[{window}])"
    if client.instant(f"count(count by ({SHAPE}) ({labelled}))", end):
        return SHAPE
    return f"{OPERATION}, {TABLE}"
