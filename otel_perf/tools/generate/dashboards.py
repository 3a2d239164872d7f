"""The five provisioned Grafana dashboards, built with grafana-foundation-sdk from the SLA spec.

Threshold lines come from the spec, metric and label names from ``otel_perf._internal.catalogue``. Every panel
has a title, a description and a unit; latency panels ask for exemplars (trace ids -> Tempo). Panel
ids and grid positions are assigned here, two panels per row, so uids and ids stay stable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig, StackingConfig
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode, StackingMode
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos, Threshold, ThresholdsMode

from otel_perf._internal import catalogue
from otel_perf._internal.catalogue import label
from otel_perf._internal.config.sla import SLO
from otel_perf.tools.generate.rules import (
    BURN_WINDOWS,
    CORE_VITALS,
    DEVICE,
    QUERY_CLASS,
    ROUTE,
    STATUS,
    VITALS,
    errors_ratio,
    le,
    slow_ratio,
    window_name,
)

PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")
FOLDER = "otel-perf"
UID_PREFIX = "otel-perf-"  # every generated dashboard uid; `generate` recognises its own files by it
HTTP = catalogue.HTTP_SERVER_DURATION.prometheus
DB = catalogue.DB_CLIENT_DURATION.prometheus
RATE = "$__rate_interval"
SVC = 'job=~"$service"'
INST = f'{SVC}, instance=~"$instance"'
HTTP_SEL = f'{INST}, {ROUTE}=~"$route"'
OPERATION, COLLECTION, SUMMARY = label("db.operation.name"), label("db.collection.name"), label("db.query.summary")
POOL, POOL_STATE = label("db.client.connection.pool.name"), label("db.client.connection.state")
RATING = label("browser.web_vital.rating")
KINDS = ("spans", "metric_points", "log_records")


@dataclass(frozen=True)
class Q:
    """One PromQL target: expression, legend, and whether it is an instant (table) query."""

    expr: str
    legend: str = ""
    instant: bool = False


class Board:
    """Panels laid out two per row, ids assigned in order; rows start a new line."""

    def __init__(self, uid: str, title: str, description: str, tags: list[str]):
        self.builder = (
            gd.Dashboard(title).uid(uid).description(description).tags(["otel-perf", *tags])
            .refresh("30s").time("now-3h", "now").timezone("browser").editable().tooltip(1)
        )
        for name, lbl, query in (
            ("service", "Service", "label_values(target_info, job)"),
            ("instance", "Instance", 'label_values(target_info{job=~"$service"}, instance)'),
            ("route", "Route", f'label_values({HTTP}_count{{job=~"$service"}}, {ROUTE})'),
        ):
            self.builder.with_variable(
                gd.QueryVariable(name).label(lbl).datasource(PROMETHEUS).query(query)
                .multi(True).include_all(True).all_value(".*").refresh(2).sort(1)
            )
        self.next_id, self.x, self.y = 1, 0, 0

    def row(self, title: str) -> None:
        self.y += 8 if self.x else 0
        self.x = 0
        self.builder.with_row(gd.Row(title).id(self._id()).grid_pos(GridPos(h=1, w=24, x=0, y=self.y)))
        self.y += 1

    def add(self, panel: Any, width: int = 12) -> None:
        if self.x + width > 24:
            self.x, self.y = 0, self.y + 8
        panel.id(self._id()).grid_pos(GridPos(h=8, w=width, x=self.x, y=self.y)).datasource(PROMETHEUS)
        self.builder.with_panel(panel)
        self.x += width

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def json(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.builder.build(), cls=JSONEncoder))


def _targets(panel: Any, queries: list[Q], exemplar: bool = False) -> Any:
    for i, q in enumerate(queries):
        target = prometheus.Dataquery().expr(q.expr).legend_format(q.legend or "__auto").ref_id(chr(65 + i))
        if q.instant:
            target = target.instant().format("table")
        if exemplar:
            target = target.exemplar(True)
        panel.with_target(target)
    return panel


def _steps(*limits: float, good_above: bool = False) -> gd.ThresholdsConfig:
    """Green below the first limit, then orange/red (reversed when higher is better)."""
    colors = ["red", "orange", "green"] if good_above else ["green", "orange", "red"]
    steps = [Threshold(value=None, color=colors[0])]
    steps += [Threshold(value=v, color=colors[-1] if i == len(limits) - 1 else colors[1])
              for i, v in enumerate(limits)]
    return gd.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)


def graph(title: str, description: str, unit: str, queries: list[Q], *limits: float,
          exemplar: bool = False, good_above: bool = False, stack: bool = False) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).description(description).unit(unit).line_width(1).fill_opacity(10)
    if limits:  # SLA threshold drawn as a line
        panel.thresholds(_steps(*limits, good_above=good_above)).thresholds_style(
            GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.LINE)
        )
    if stack:  # shares that add up to 100 %
        panel.fill_opacity(60).stacking(StackingConfig().mode(StackingMode.NORMAL))
    return _targets(panel, queries, exemplar)


def single(title: str, description: str, unit: str, queries: list[Q], *limits: float,
           good_above: bool = False) -> stat.Panel:
    panel = stat.Panel().title(title).description(description).unit(unit)
    if limits:
        panel.thresholds(_steps(*limits, good_above=good_above))
    return _targets(panel, queries)


def grid(title: str, description: str, unit: str, queries: list[Q], *limits: float) -> table.Panel:
    panel = table.Panel().title(title).description(description).unit(unit)
    if limits:
        panel.thresholds(_steps(*limits))
    return _targets(panel, queries)


def _q(q: float, metric: str, by: str, sel: str, window: str = RATE) -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{sel}}}[{window}])))"


# -- the dashboards ------------------------------------------------------------------------------


def service(slo: SLO) -> dict[str, Any]:
    ms = f"{slo.http_latency * 1000:g} ms"
    target = round(slo.http_latency_target * 100, 3)  # the quantile the latency SLA is about (95: p95)
    b = Board("otel-perf-service", "Service overview (RED)",
              f"Requests, errors and latency per route against the SLA (p{target:g} < {ms}, errors < "
              f"{slo.http_error_rate:.1%}).", ["red", "sla"])
    count = f"{HTTP}_count"
    total = f"sum by ({ROUTE}) (rate({count}{{{HTTP_SEL}}}[{RATE}]))"
    b.row("Traffic and errors")
    b.add(graph("Requests/s per route", "Request rate per route template (http.route).", "reqps",
                [Q(total, "{{" + ROUTE + "}}")]))
    b.add(graph("Error % per route", f"Share of 5xx responses; the SLA line is {slo.http_error_rate:.1%}.",
                "percentunit",
                [Q(f'sum by ({ROUTE}) (rate({count}{{{HTTP_SEL}, {STATUS}=~"5.."}}[{RATE}])) / {total}',
                   "{{" + ROUTE + "}}")], slo.http_error_rate))
    b.add(graph("Requests/s against last week",
                f"Total request rate now and one week earlier; an alert fires below {1 - slo.throughput_drop:.0%}.",
                "reqps", [Q(f"sum(rate({count}{{{HTTP_SEL}}}[{RATE}]))", "now"),
                          Q(f"sum(rate({count}{{{HTTP_SEL}}}[{RATE}] offset 1w))", "last week")]))
    b.add(graph("Requests by status code", "Request rate per HTTP status code.", "reqps",
                [Q(f"sum by ({STATUS}) (rate({count}{{{HTTP_SEL}}}[{RATE}]))", "{{" + STATUS + "}}")]))
    b.row("Latency")
    b.add(graph(f"p{target:g} per route (SLA {ms})",
                f"{target:g}th percentile request duration per route, exact at the SLA boundary (a bucket edge). "
                "Exemplar dots open the trace in Tempo.", "s",
                [Q(_q(slo.http_latency_target, HTTP, ROUTE, HTTP_SEL), "{{" + ROUTE + "}}")], slo.http_latency,
                exemplar=True))
    b.add(graph("p50 / p95 / p99", "Latency percentiles over all selected routes; exemplars link to traces.", "s",
                [Q(_q(q, HTTP, "job", HTTP_SEL), f"p{round(q * 100)} {{{{job}}}}") for q in (0.5, 0.95, 0.99)],
                slo.http_latency, exemplar=True))
    b.add(graph(f"Share of requests <= {ms}",
                f"Requests answered within {ms}; the SLO wants at least {slo.http_latency_target:.0%}.",
                "percentunit",
                [Q(f"sum by ({ROUTE}) (rate({HTTP}_bucket{{{HTTP_SEL}, {le(slo.http_latency)}}}[{RATE}])) / {total}",
                   "{{" + ROUTE + "}}")], slo.http_latency_target, good_above=True))
    b.add(grid("Top slow routes", "The ten routes with the highest p95 over the selected time range.", "s",
               [Q(f"topk(10, {_q(0.95, HTTP, 'job, ' + ROUTE, HTTP_SEL, '$__range')})", instant=True)],
               slo.http_latency))
    b.row("SLO: error budget and burn rate (30 days)")
    budget = {"errors": slo.http_error_rate, "latency": 1 - slo.http_latency_target}
    names = {"errors": "Error", "latency": "Latency"}
    bad30 = {
        "errors": f'sum by (job) (increase({count}{{{SVC}, {STATUS}=~"5.."}}[30d]))',
        "latency": f"(sum by (job) (increase({count}{{{SVC}}}[30d])) - "
                   f"sum by (job) (increase({HTTP}_bucket{{{SVC}, {le(slo.http_latency)}}}[30d])))",
    }
    for kind, ratio in (("errors", errors_ratio), ("latency", slow_ratio)):
        b.add(single(f"{names[kind]} budget remaining (30d)",
                     f"Share of the 30-day {kind} budget ({budget[kind]:.1%} of requests) not yet spent.",
                     "percentunit",
                     [Q(f"1 - ({bad30[kind]} / sum by (job) (increase({count}{{{SVC}}}[30d]))) / {budget[kind]:g}",
                        "{{job}}")], 0, 0.25, good_above=True), 6)
        windows = sorted({long for _, _, long, _ in BURN_WINDOWS} | {short for _, _, _, short in BURN_WINDOWS})
        b.add(graph(f"{names[kind]} burn rate",
                    "How many times faster than allowed the budget burns, per window (1 = exactly on budget). "
                    "Pages at 14.4x (1h & 5m) and 6x (6h & 30m); tickets at 3x and 1x.", "none",
                    [Q(f"{ratio(w)}{{{SVC}}} / {budget[kind]:g}", f"{window_name(w)} {{{{job}}}}") for w in windows],
                    6, 14.4), 18)
    return b.json()


def database(slo: SLO) -> dict[str, Any]:
    b = Board("otel-perf-database", "Database",
              f"Statements from otel_perf.db and pg_stat_statements (slow > {slo.db_slow * 1000:g} ms, "
              f"mean < {slo.db_mean * 1000:g} ms).", ["database", "sla"])
    sel = INST
    op = f"{OPERATION}, {COLLECTION}"
    b.row("Statements")
    b.add(graph(f"Operation p95 by table (slow > {slo.db_slow * 1000:g} ms)",
                "95th percentile statement duration per operation and table; exemplars open slow statements' traces.",
                "s", [Q(_q(0.95, DB, op, sel), "{{" + OPERATION + "}} {{" + COLLECTION + "}}")],
                slo.db_slow, exemplar=True))
    b.add(graph(f"Mean statement duration (SLA {slo.db_mean * 1000:g} ms)", "Mean duration of all statements.",
                "s", [Q(f"sum by (job) (rate({DB}_sum{{{sel}}}[{RATE}])) / sum by (job) (rate({DB}_count{{{sel}}}[{RATE}]))",
                        "{{job}}")], slo.db_mean))
    b.add(graph("Statements/s by operation", "Statement rate per operation and table.", "ops",
                [Q(f"sum by ({op}) (rate({DB}_count{{{sel}}}[{RATE}]))",
                   "{{" + OPERATION + "}} {{" + COLLECTION + "}}")]))
    by = f"{op}, {SUMMARY}"
    b.add(graph(f"Slow queries/s by shape (> {slo.db_slow * 1000:g} ms)",
                "Statements slower than the slow threshold, per statement shape (exact: the threshold is a bucket edge).",
                "ops", [Q(f"sum by ({by}) (rate({DB}_count{{{sel}}}[{RATE}])) - "
                          f"sum by ({by}) (rate({DB}_bucket{{{sel}, {le(slo.db_slow)}}}[{RATE}]))",
                          "{{" + SUMMARY + "}} {{" + OPERATION + "}} {{" + COLLECTION + "}}")]))
    if slo.query_classes:
        b.add(graph("Slow statements/s per query class",
                    "Statements of a named class (e.g. row-level-security checks) slower than their own threshold.",
                    "ops", [Q(f'sum(rate({DB}_count{{{sel}, {QUERY_CLASS}="{c.name}"}}[{RATE}])) - '
                              f'sum(rate({DB}_bucket{{{sel}, {QUERY_CLASS}="{c.name}", {le(c.threshold)}}}[{RATE}]))',
                              f"{c.name} (> {c.threshold * 1000:g} ms)") for c in slo.query_classes]))
    n1 = catalogue.DB_N_PLUS_ONE.prometheus
    b.add(graph(f"N+1 events by route (>= {slo.n_plus_one} same-shape statements)",
                "Requests that ran one statement shape N or more times, per route.", "reqps",
                [Q(f"sum by ({ROUTE}) (rate({n1}{{{sel}}}[{RATE}]))", "{{" + ROUTE + "}}")]))
    b.row("Connection pool")
    b.add(graph("Pool usage", "Connections in use and idle against the pool size.", "short",
                [Q(f"sum by ({POOL}, {POOL_STATE}) ({catalogue.DB_CONNECTION_COUNT.prometheus}{{{sel}}})",
                   "{{" + POOL + "}} {{" + POOL_STATE + "}}"),
                 Q(f"sum by ({POOL}) ({catalogue.DB_CONNECTION_MAX.prometheus}{{{sel}}})", "{{" + POOL + "}} max"),
                 Q(f"sum by ({POOL}) ({catalogue.DB_CONNECTION_PENDING.prometheus}{{{sel}}})",
                   "{{" + POOL + "}} waiting")]))
    wait = catalogue.DB_CONNECTION_WAIT.prometheus
    b.add(graph("Pool wait time p95", "Time to get a connection from the pool (95th percentile), and timeouts.",
                "s", [Q(_q(0.95, wait, POOL, sel), "{{" + POOL + "}} p95"),
                      Q(f"sum by ({POOL}) (rate({catalogue.DB_CONNECTION_TIMEOUTS.prometheus}{{{sel}}}[{RATE}]))",
                        "{{" + POOL + "}} timeouts/s")], exemplar=True))
    b.row("pg_stat_statements")
    total = catalogue.DB_STATEMENT_TIME.prometheus
    calls = catalogue.DB_STATEMENT_CALLS.prometheus
    b.add(grid("Top statements by total time", "Statements that used the most database time in the range.", "s",
               [Q(f"topk(10, sum by ({SUMMARY}) (increase({total}{{{SVC}}}[$__range])))", instant=True)]))
    b.add(grid(f"Top statements by mean time (SLA {slo.db_mean * 1000:g} ms)",
               "Mean execution time per statement over the range (total time / calls).", "s",
               [Q(f"topk(10, sum by ({SUMMARY}) (increase({total}{{{SVC}}}[$__range])) / "
                  f"sum by ({SUMMARY}) (increase({calls}{{{SVC}}}[$__range])))", instant=True)], slo.db_mean))
    b.add(graph("Mean time per statement (latest poll)", "pg_stat_statements mean execution time between polls.",
                "s", [Q(f"max by ({SUMMARY}) ({catalogue.DB_STATEMENT_MEAN.prometheus}{{{SVC}}})",
                        "{{" + SUMMARY + "}}")], slo.db_mean), 24)
    return b.json()


def web_vitals(slo: SLO) -> dict[str, Any]:
    b = Board("otel-perf-web-vitals", "Web Vitals",
              "Core Web Vitals from real browsers (RUM beacon), p75 per page and device class.", ["rum", "sla"])
    sel = f'{SVC}, {ROUTE}=~"$route"'
    for name in VITALS:
        metric = getattr(catalogue, f"WEB_VITAL_{name.upper()}").prometheus
        good, poor = getattr(slo, name), getattr(slo, f"{name}_poor")
        unit = "none" if name == "cls" else "s"
        core = "Core Web Vital" if name in CORE_VITALS else "diagnostic vital"
        b.row(name.upper())
        b.add(graph(f"{name.upper()} p75 per page and device",
                    f"{core}: 75th percentile per page route and device class; good <= {good:g}, poor > {poor:g}. "
                    "Exemplars link to the page's backend trace.", unit,
                    [Q(_q(0.75, metric, f"{ROUTE}, {DEVICE}", sel), "{{" + ROUTE + "}} {{" + DEVICE + "}}")],
                    good, poor, exemplar=True), 16)
        b.add(graph(f"{name.upper()} rating distribution",
                    "Share of page views rated good / needs-improvement / poor.", "percentunit",
                    [Q(f"sum by ({RATING}) (rate({metric}_count{{{sel}}}[{RATE}])) / ignoring({RATING}) "
                       f"group_left sum(rate({metric}_count{{{sel}}}[{RATE}]))", "{{" + RATING + "}}")],
                    stack=True), 8)
    return b.json()


def runtime(slo: SLO) -> dict[str, Any]:
    b = Board("otel-perf-runtime", "Runtime", "CPU, memory, garbage collection and threads per instance.",
              ["runtime", "sla"])
    inst = "job, instance"
    cpu = catalogue.PROCESS_CPU_TIME.prometheus
    b.row("Process")
    b.add(graph(f"CPU % of limit (SLA {slo.cpu:.0%})", "CPU time per second divided by the CPU limit (cgroup or cores).",
                "percentunit",
                [Q(f"sum by ({inst}) (rate({cpu}{{{INST}}}[{RATE}])) / on({inst}) "
                   f"max by ({inst}) ({catalogue.PROCESS_CPU_LIMIT.prometheus}{{{INST}}})", "{{instance}}")], slo.cpu))
    b.add(graph(f"Memory % of limit (SLA {slo.memory:.0%})", "Resident memory divided by the memory limit.",
                "percentunit",
                [Q(f"sum by ({inst}) ({catalogue.PROCESS_MEMORY_USAGE.prometheus}{{{INST}}}) / on({inst}) "
                   f"max by ({inst}) ({catalogue.PROCESS_MEMORY_LIMIT.prometheus}{{{INST}}})", "{{instance}}")],
                slo.memory))
    b.add(graph("CPU cores used", "CPU seconds per second by state (user/system).", "none",
                [Q(f"sum by (instance, type) (rate({cpu}{{{INST}}}[{RATE}]))", "{{instance}} {{type}}")]))
    b.add(graph("Resident memory", "Resident memory per instance.", "bytes",
                [Q(f"sum by (instance) ({catalogue.PROCESS_MEMORY_USAGE.prometheus}{{{INST}}})", "{{instance}}")]))
    gen = label("cpython.gc.generation")
    b.add(graph("GC collections/s", "CPython garbage collections per generation.", "ops",
                [Q(f"sum by (instance, {gen}) (rate({catalogue.CPYTHON_GC_COLLECTIONS.prometheus}{{{INST}}}[{RATE}]))",
                   "{{instance}} gen {{" + gen + "}}")]))
    b.add(graph("Threads", "Threads per instance.", "short",
                [Q(f"sum by (instance) ({catalogue.PROCESS_THREAD_COUNT.prometheus}{{{INST}}})", "{{instance}}")]))
    return b.json()


def pipeline(slo: SLO) -> dict[str, Any]:
    b = Board("otel-perf-pipeline", "Telemetry pipeline",
              "The Collector's own metrics and the SDK's drop counters: is telemetry arriving complete?",
              ["pipeline"])
    b.row("Collector")

    def per_kind(metric: str, by: str) -> list[Q]:
        return [Q(f"sum by ({by}) (rate(otelcol_{metric}_{kind}_total[{RATE}]))", f"{{{{{by}}}}} {kind}")
                for kind in KINDS]

    b.add(graph("Accepted items/s", "Spans, metric points and log records the receivers accepted.", "short",
                per_kind("receiver_accepted", "receiver")))
    b.add(graph("Refused items/s", "Items refused by receivers (memory_limiter back-pressure); should be 0.",
                "short", per_kind("receiver_refused", "receiver"), 0.001))
    b.add(graph("Sent items/s", "Items the exporters delivered to the backends.", "short",
                per_kind("exporter_sent", "exporter")))
    b.add(graph("Failed items/s", "Items the exporters failed to send; should be 0.", "short",
                per_kind("exporter_send_failed", "exporter"), 0.001))
    b.add(graph("Exporter queue usage", "Sending queue size over capacity; data is dropped when it is full.",
                "percentunit", [Q("max by (exporter) (otelcol_exporter_queue_size) / "
                                  "max by (exporter) (otelcol_exporter_queue_capacity)", "{{exporter}}")], 0.8))
    b.add(graph("Targets up", "Scrape health of the pipeline's components (1 = up).", "none",
                [Q("up", "{{job}} {{instance}}")]))
    b.row("SDK (per service instance)")
    processed, exported = catalogue.SDK_SPANS_PROCESSED.prometheus, catalogue.SDK_SPANS_EXPORTED.prometheus
    b.add(graph("SDK span drops/s", "Spans dropped before export, by reason (queue_full: the batch queue overflowed).",
                "short", [Q(f'sum by (instance, error_type) (rate({processed}{{{INST}, error_type!=""}}[{RATE}]))',
                            "{{instance}} {{error_type}}")], 0.001))
    b.add(graph("SDK spans exported/s", "Spans exported per result (error_type set when the export failed).",
                "short", [Q(f"sum by (instance, error_type) (rate({exported}{{{INST}}}[{RATE}]))",
                            "{{instance}} {{error_type}}")]))
    b.add(graph("SDK export failures/s", "Failed export calls by signal.", "short",
                [Q(f"sum by (instance, signal) (rate({catalogue.EXPORT_FAILURES.prometheus}{{{INST}}}[{RATE}]))",
                   "{{instance}} {{signal}}")], 0.001))
    b.add(graph("RUM beacons rejected/s", "Browser beacons (or values in them) the RUM endpoint refused, by reason.",
                "short", [Q(f"sum by (reason) (rate({catalogue.RUM_REJECTED.prometheus}{{{INST}}}[{RATE}]))",
                            "{{reason}}")]))
    b.add(graph("Reporting instances per service", "Instances whose telemetry (target_info) is present.", "short",
                [Q(f"count by (job) (target_info{{{SVC}}})", "{{job}}")]))
    return b.json()


DASHBOARDS = {
    "service": service,
    "database": database,
    "web-vitals": web_vitals,
    "runtime": runtime,
    "pipeline": pipeline,
}


def render(slo: SLO) -> dict[str, dict[str, Any]]:
    """``{file stem: dashboard JSON model}``."""
    return {name: build(slo) for name, build in DASHBOARDS.items()}


def queries(model: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (panel title, PromQL) of a dashboard model, template variables included."""
    return [(p["title"], t["expr"]) for p in model["panels"] for t in p.get("targets", []) if t.get("expr")]
