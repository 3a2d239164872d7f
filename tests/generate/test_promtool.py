"""``promtool test rules`` for every generated alert: fires under violating series, stays silent under
healthy series and under too little traffic (or, where traffic means nothing, without the input).

The scenarios are built from the SLA spec (bucket edges, thresholds), so a changed spec keeps them
meaningful; a test fails when an alert of the table has no scenario here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from otel_perf._internal import catalogue
from otel_perf._internal.config.sla import DEFAULT as SLO
from otel_perf.tools.generate import PROMETHEUS_DIRS, render, rules
from tests.fixtures.binaries import require

ROOT = Path(__file__).resolve().parents[2]
HTTP = catalogue.HTTP_SERVER_DURATION.prometheus
DB = catalogue.DB_CLIENT_DURATION.prometheus
WEEK_MIN = 7 * 24 * 60
API = {"job": "shop/api", "instance": "i-1"}


def ramp(*parts: tuple[float, int]) -> str:
    """promtool values for a counter growing by ``inc`` per step for ``steps`` steps, phase after phase."""
    out, value = ["0"], 0.0
    for inc, steps in parts:
        out.append(f"{value + inc:.10g}+{inc:.10g}x{steps - 1}")
        value += inc * steps
    return " ".join(out)


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    body = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{body}}}", "values": values}


def hist(name: str, labels: dict[str, str], *phases: tuple[int, dict[float, float], float]) -> list[dict]:
    """A classic histogram: each phase is (steps, {le: increment per step}, sum increment per step).

    The increments are cumulative per ``le`` like the exposition format; ``inf`` is the count.
    """
    edges = sorted({le for _, incs, _ in phases for le in incs})
    out = []
    for le in edges:
        text = "+Inf" if le == float("inf") else repr(float(le))
        out.append(series(f"{name}_bucket", {**labels, "le": text}, ramp(*((incs[le], n) for n, incs, _ in phases))))
    out.append(series(f"{name}_count", labels, ramp(*((incs[float("inf")], n) for n, incs, _ in phases))))
    out.append(series(f"{name}_sum", labels, ramp(*((s, n) for n, _, s in phases))))
    return out


INF = float("inf")


def http(steps: int, per_step: float, fast: float, errors: float = 0.0, route: str = "/orders",
         phases: list[tuple[int, float, float, float]] | None = None) -> list[dict]:
    """Requests on one route: ``fast`` of them <= the SLA, the rest under 2.5x it; ``errors`` of them 5xx."""
    lat = SLO.http_latency
    phases = phases or [(steps, per_step, fast, errors)]
    ok = [(n, {lat: f - e, 2.5 * lat: p - e, INF: p - e}, (p - e) * lat) for n, p, f, e in phases]
    bad = [(n, {lat: e, 2.5 * lat: e, INF: e}, e * lat / 2) for n, p, f, e in phases]
    labels = {**API, catalogue.label("http.route"): route}
    return (hist(HTTP, {**labels, catalogue.label("http.response.status_code"): "200"}, *ok)
            + hist(HTTP, {**labels, catalogue.label("http.response.status_code"): "500"}, *bad))


def db(steps: int, per_step: float, under_slow: float, mean: float, extra: dict[str, str] | None = None,
       phases: list[tuple[int, float, float, float]] | None = None, edge: float | None = None) -> list[dict]:
    """Statements: ``under_slow`` of ``per_step`` finish within ``edge`` (default: the slow threshold)."""
    edge = edge or SLO.db_slow
    phases = phases or [(steps, per_step, under_slow, mean)]
    labels = {**API, "db_operation_name": "SELECT", "db_collection_name": "orders", **(extra or {})}
    return hist(DB, labels, *((n, {edge: u, 10.0: p, INF: p}, p * m) for n, p, u, m in phases))


def vital(name: str, per_step: float, under_good: float, under_poor: float) -> list[dict]:
    metric = getattr(catalogue, f"WEB_VITAL_{name.upper()}").prometheus
    good, poor = getattr(SLO, name), getattr(SLO, f"{name}_poor")
    labels = {"job": "shop/web", "instance": "i-1", "http_route": "/cart", "browser_device_class": "mobile"}
    incs = {good: under_good, poor: under_poor, 2 * poor: per_step, INF: per_step}
    return hist(metric, labels, (40, incs, per_step * good))


def gauge(name: str, labels: dict[str, str], value: float, steps: int = 40) -> dict:
    return series(name, labels, f"{value:.10g}x{steps}")


def cpu(cores_used: float) -> list[dict]:
    return [series(catalogue.PROCESS_CPU_TIME.prometheus, {**API, "type": "user"}, ramp((cores_used * 60, 40))),
            gauge(catalogue.PROCESS_CPU_LIMIT.prometheus, API, 1)]


def memory(used: float) -> list[dict]:
    return [gauge(catalogue.PROCESS_MEMORY_USAGE.prometheus, API, used),
            gauge(catalogue.PROCESS_MEMORY_LIMIT.prometheus, API, 1000)]


COLLECTOR = {"job": "otel-collector", "instance": "collector-0"}


def collector(name: str, key: str, per_step: float) -> list[dict]:
    return [series(f"otelcol_{name}_spans_total", {**COLLECTOR, key: "otlp"}, ramp((per_step, 30)))]


def queue(size: float) -> list[dict]:
    labels = {**COLLECTOR, "exporter": "otlp_grpc/tempo"}
    return [gauge("otelcol_exporter_queue_size", labels, size), gauge("otelcol_exporter_queue_capacity", labels, 1000)]


def warning_alert(hours: int) -> list[dict]:
    labels = {"alertname": "DbMeanLatencyHigh", "alertstate": "firing", "severity": "warning", "job": "shop/api",
              "service": "shop/api"}
    return [series("ALERTS", labels, f"1x{hours * 6}")]


STEP = 20  # minutes per sample in the week-long scenarios
LATE = 8  # steps after the week: 2h40m of the new behaviour
N_WEEK = WEEK_MIN // STEP + LATE
LAT = SLO.http_latency
# alert -> (interval, eval time, violating, healthy, too little traffic / no input)
SCENARIOS: dict[str, tuple[str, str, list, list, list]] = {
    "ApiErrorBudgetBurnFast": ("1m", "70m", http(75, 100, 100, errors=5), http(75, 100, 100, errors=0.02),
                               http(75, 0.2, 0.2, errors=0.1)),
    "ApiErrorBudgetBurnSlow": ("5m", "26h", http(320, 500, 500, errors=5), http(320, 500, 500, errors=0.2),
                               http(320, 0.05, 0.05, errors=0.025)),
    "ApiLatencyBudgetBurnFast": ("1m", "70m", http(75, 100, 10), http(75, 100, 99), http(75, 0.2, 0)),
    "ApiLatencyBudgetBurnSlow": ("5m", "26h", http(320, 500, 400), http(320, 500, 495), http(320, 0.05, 0)),
    "ApiRouteLatencyHigh": ("1m", "20m", http(30, 100, 80), http(30, 100, 99), http(30, 2, 0)),
    "ApiThroughputDrop": (f"{STEP}m", f"{(N_WEEK - 1) * STEP}m",
                          http(0, 0, 0, phases=[(WEEK_MIN // STEP, 1000, 1000, 0), (LATE, 200, 200, 0)]),
                          http(N_WEEK, 1000, 1000),
                          http(0, 0, 0, phases=[(WEEK_MIN // STEP, 1, 1, 0), (LATE, 0.1, 0.1, 0)])),
    "ApiRouteLatencyRegression": (f"{STEP}m", f"{(N_WEEK - 1) * STEP}m",
                                  http(0, 0, 0, phases=[(WEEK_MIN // STEP, 1000, 990, 0), (LATE, 1000, 700, 0)]),
                                  http(N_WEEK, 1000, 990),
                                  http(0, 0, 0, phases=[(WEEK_MIN // STEP, 1, 1, 0), (LATE, 1, 0.7, 0)])),
    "DbSlowQueries": ("1m", "25m", db(30, 100, 80, 0.05), db(30, 100, 99, 0.01), db(30, 1, 0, 0.3)),
    "DbMeanLatencyHigh": ("1m", "25m", db(30, 100, 100, 0.08), db(30, 100, 100, 0.01), db(30, 1, 1, 0.3)),
    "DbMeanLatencyRegression": (f"{STEP}m", f"{(N_WEEK - 1) * STEP}m",
                                db(0, 0, 0, 0, phases=[(WEEK_MIN // STEP, 1000, 1000, 0.02), (LATE, 1000, 1000, 0.04)]),
                                db(N_WEEK, 1000, 1000, 0.02),
                                db(0, 0, 0, 0, phases=[(WEEK_MIN // STEP, 0.1, 0.1, 0.02), (LATE, 0.1, 0.1, 0.04)])),
    "DbNPlusOneQueries": ("1m", "25m",
                          [series(catalogue.DB_N_PLUS_ONE.prometheus, {**API, "http_route": "/orders"}, ramp((1, 30)))],
                          [series(catalogue.DB_N_PLUS_ONE.prometheus, {**API, "http_route": "/orders"}, "0x30")],
                          [series(catalogue.DB_N_PLUS_ONE.prometheus, {**API, "http_route": "/orders"},
                                  ramp((0.1, 30)))]),
    "ProcessCpuHigh": ("1m", "30m", cpu(0.9), cpu(0.3), cpu(0.9)[:1]),
    "ProcessMemoryHigh": ("1m", "30m", memory(900), memory(500), memory(900)[:1]),
    "CollectorRefusingTelemetry": ("1m", "20m", collector("receiver_refused", "receiver", 10),
                                   collector("receiver_refused", "receiver", 0), []),
    "CollectorExportFailing": ("1m", "20m", collector("exporter_send_failed", "exporter", 10),
                               collector("exporter_send_failed", "exporter", 0), []),
    "CollectorQueueFilling": ("1m", "20m", queue(900), queue(100), []),
    "SdkTelemetryDropped": ("1m", "20m",
                            [series(catalogue.SDK_SPANS_PROCESSED.prometheus, {**API, "error_type": "queue_full"},
                                    ramp((10, 30)))],
                            [series(catalogue.SDK_SPANS_PROCESSED.prometheus, {**API, "error_type": "queue_full"},
                                    "0x30")], []),
    "TelemetryAbsent": ("1m", "50m", [gauge("target_info", API, 1, 20)], [gauge("target_info", API, 1, 60)], []),
    "CollectorDown": ("1m", "20m", [gauge("up", COLLECTOR, 0, 30)], [gauge("up", COLLECTOR, 1, 30)], []),
    "WarningUnresolved": ("10m", "7h", warning_alert(8), warning_alert(2), []),
}
for qc in SLO.query_classes:
    cls = {catalogue.label("otel_perf.db.query_class"): qc.name}
    SCENARIOS[f"DbQueryClassSlow_{qc.name}"] = (
        "1m", "25m", db(30, 100, 50, 0.05, cls, edge=qc.threshold), db(30, 100, 99, 0.01, cls, edge=qc.threshold),
        db(30, 1, 0, 0.3, cls, edge=qc.threshold))
for name in rules.VITALS:
    # p75 between good and poor ("High"), above poor ("Poor"), all good; and a trickle of page views
    SCENARIOS[f"WebVital{name.upper()}High"] = ("1m", "35m", vital(name, 10, 5, 10), vital(name, 10, 10, 10),
                                                vital(name, 0.2, 0, 0))
    SCENARIOS[f"WebVital{name.upper()}Poor"] = ("1m", "35m", vital(name, 10, 1, 2), vital(name, 10, 5, 10),
                                                vital(name, 0.2, 0, 0))


def firing(name: str, at: str, expected: bool) -> dict:
    return {"expr": f'count(ALERTS{{alertname="{name}", alertstate="firing"}})', "eval_time": at,
            "exp_samples": [{"labels": "{}", "value": 1}] if expected else []}


def test_every_alert_has_a_scenario():
    names = {a.name for a in rules.alerts(SLO)}
    poor_less = {f"WebVital{n.upper()}Poor" for n in rules.VITALS if n not in rules.CORE_VITALS}
    assert names == set(SCENARIOS) - poor_less


@pytest.mark.parametrize("name", sorted(a.name for a in rules.alerts(SLO)))
def test_alert_fires_only_when_violated(name, tmp_path):
    promtool = require("promtool", "prometheus")
    interval, at, violating, healthy, quiet = SCENARIOS[name]
    # All rule files together, as Prometheus loads them (rules can interfere, e.g. through ALERTS).
    # promtool evaluates every rule at every step: the step is the scenario's sample interval.
    rule_files = []
    for rel, text in render(SLO, collector=False).items():
        if rel.startswith(PROMETHEUS_DIRS):
            (tmp_path / Path(rel).name).write_text(text)
            rule_files.append(Path(rel).name)
    tests = [{"interval": interval, "input_series": violating, "promql_expr_test": [firing(name, at, True)]},
             {"interval": interval, "input_series": healthy, "promql_expr_test": [firing(name, at, False)]},
             {"interval": interval, "input_series": quiet, "promql_expr_test": [firing(name, at, False)]}]
    (tmp_path / "test.yml").write_text(yaml.safe_dump({"rule_files": rule_files, "evaluation_interval": interval,
                                                       "tests": tests}))
    run = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
