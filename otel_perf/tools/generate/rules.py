"""Every alert of the SLA spec as one table of PromQL, rendered as Prometheus rules and Grafana rules.

``alerts(slo, timing)`` is the table: each ``Alert`` holds the measured value as PromQL (traffic
guards already applied), the threshold it is compared with, severity, pending period, the texts and
the runbook. ``prometheus_rules`` and ``grafana_rules`` render the same table, so the two alerting
backends can never disagree about a threshold. ``Timing`` shrinks every window and pending period for
the end-to-end test (same code path, other numbers); the defaults are the production values.

Metric and label names come from ``otel_perf._internal.catalogue`` only. All PromQL runs on Prometheus 2.42.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from otel_perf._internal import catalogue
from otel_perf._internal.catalogue import label
from otel_perf._internal.config.sla import SLO

HTTP = catalogue.HTTP_SERVER_DURATION.prometheus
DB = catalogue.DB_CLIENT_DURATION.prometheus
ROUTE = label("http.route")
STATUS = label("http.response.status_code")
DEVICE = label("browser.device.class")
QUERY_CLASS = label("otel_perf.db.query_class")  # set by otel_perf.db on statements of a named class
COLLECTOR_JOB = "otel-collector"  # the scrape job of the Collector's own metrics (collector/prometheus)
VITALS = ("lcp", "inp", "cls", "fcp", "ttfb")
CORE_VITALS = ("lcp", "inp", "cls")

MINUTE, HOUR, DAY = 60, 3600, 86400
# SRE workbook multi-window multi-burn-rate table: (severity, burn factor, long window, short window).
BURN_WINDOWS = (
    ("critical", 14.4, HOUR, 5 * MINUTE),
    ("critical", 6.0, 6 * HOUR, 30 * MINUTE),
    ("warning", 3.0, DAY, 2 * HOUR),
    ("warning", 1.0, 3 * DAY, 6 * HOUR),
)
RECORDED_WINDOWS = tuple(sorted({w for _, _, long, short in BURN_WINDOWS for w in (long, short)}))
ESCALATE_AFTER = 6 * HOUR  # a warning firing this long becomes a page

# Where the runbook links point (`otel-perf generate --runbook-url` for your fork or wiki).
RUNBOOK_BASE = "https://github.com/otel-perf/otel-perf/blob/main/docs/runbooks"


@dataclass(frozen=True)
class Timing:
    """Windows, pending periods and traffic guards; tests shrink ``scale`` to run in seconds."""

    scale: float = 1.0
    min_requests: int = 20  # fewer requests (statements, page views) in a window: no verdict
    min_events: int = 5  # N+1 requests in 15 minutes before it is a pattern, not a one-off
    evaluation: int = MINUTE  # rule group interval

    def d(self, seconds: float) -> str:
        """A Prometheus duration for ``seconds`` (scaled), e.g. ``1h12m``; at least 1s."""
        left = max(1, round(seconds * self.scale))
        out = ""
        for unit, size in (("d", DAY), ("h", HOUR), ("m", MINUTE), ("s", 1)):
            if left >= size:
                out += f"{left // size}{unit}"
                left %= size
        return out

    def seconds(self, seconds: float) -> int:
        return max(1, round(seconds * self.scale))


@dataclass(frozen=True)
class Alert:
    name: str
    group: str  # rule group and file: slo, api, database, web-vitals, runtime, pipeline
    severity: str  # critical (page) | warning (ticket) | info
    expr: str  # PromQL: the measured value of every series being judged (guards applied)
    threshold: float | None  # fires when expr <op> threshold; None: expr is already the condition
    for_: int  # pending period, seconds (unscaled)
    summary: str
    description: str  # Go template; {{ $value }} is the measured value
    dashboard: str  # uid of the dashboard to open
    checks: tuple[str, ...]  # runbook: what to check, in order
    recovery: float | None = None  # hysteresis: once firing, resolves only below this
    no_data: str = "OK"  # Grafana no-data state: absence of series means healthy unless said otherwise
    op: str = ">"  # fires when expr <op> threshold
    labels: dict[str, str] = field(default_factory=dict)

    def condition(self) -> str:
        return self.expr if self.threshold is None else f"({self.expr})\n  {self.op} {_num(self.threshold)}"


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str


# -- PromQL helpers ------------------------------------------------------------------------------


def _num(x: float) -> str:
    return f"{x:.6g}"


def le(x: float) -> str:
    """The ``le`` matcher of a bucket boundary (exporters print 1 as "1" or "1.0")."""
    return f'le=~"{int(x)}(\\\\.0)?"' if float(x).is_integer() else f'le="{x!r}"'


def rate(metric: str, window: str, by: str, selector: str = "", offset: str = "") -> str:
    off = f" offset {offset}" if offset else ""
    return f"sum by ({by}) (rate({metric}{_sel(selector)}[{window}]{off}))"


def _sel(selector: str) -> str:
    return f"{{{selector}}}" if selector else ""


def window_name(seconds: int) -> str:
    return Timing().d(seconds)


def requests_rate(w: int) -> str:
    return f"job:otel_perf_http_requests:rate{window_name(w)}"


def errors_ratio(w: int) -> str:
    return f"job:otel_perf_http_errors:ratio_rate{window_name(w)}"


def slow_ratio(w: int) -> str:
    return f"job:otel_perf_http_slow:ratio_rate{window_name(w)}"


def recording_rules(slo: SLO, t: Timing) -> list[Recording]:
    """Per-service request rate, 5xx ratio and share slower than the SLA, for every burn window."""
    out = []
    for w in RECORDED_WINDOWS:
        total = rate(f"{HTTP}_count", t.d(w), "job")
        errors = rate(f"{HTTP}_count", t.d(w), "job", f'{STATUS}=~"5.."')
        fast = rate(f"{HTTP}_bucket", t.d(w), "job", le(slo.http_latency))
        out += [
            Recording(requests_rate(w), total),
            Recording(errors_ratio(w), f"{errors} / {total}"),
            Recording(slow_ratio(w), f"1 - {fast} / {total}"),
        ]
    return out


def _burn(ratio, budget: float, severity: str, t: Timing) -> str:
    """The SRE-workbook condition: both windows of a pair burn faster than the factor; enough traffic."""
    pairs = []
    for sev, factor, long, short in BURN_WINDOWS:
        if sev != severity:
            continue
        limit = _num(factor * budget)
        guard = f"{requests_rate(long)} * {t.seconds(long)} >= {t.min_requests}"
        pairs.append(f"({ratio(long)} > {limit} and {ratio(short)} > {limit} and {guard})")
    return "\n  or\n".join(pairs)


def _p(q: float, metric: str, window: str, by: str, selector: str = "", offset: str = "") -> str:
    return f"histogram_quantile({q}, {rate(metric + '_bucket', window, by + ', le', selector, offset)})"


def _enough(metric: str, window: str, by: str, t: Timing, selector: str = "", offset: str = "") -> str:
    """At least ``min_requests`` observations of a histogram in the window (the low-traffic guard)."""
    off = f" offset {offset}" if offset else ""
    return f"sum by ({by}) (increase({metric}_count{_sel(selector)}[{window}]{off})) >= {t.min_requests}"


# -- the table -----------------------------------------------------------------------------------


def alerts(slo: SLO, t: Timing | None = None) -> list[Alert]:
    t = t or Timing()
    w5, w15, h1, week = t.d(5 * MINUTE), t.d(15 * MINUTE), t.d(HOUR), t.d(7 * DAY)
    ms = int(round(slo.http_latency * 1000))
    err_budget, lat_budget = slo.http_error_rate, 1 - slo.http_latency_target
    worse = 1 + slo.regression
    pq = f"p{round(slo.http_latency_target * 100, 3):g}"  # the quantile the latency SLA is about
    route_by = f"job, {ROUTE}"
    out = [
        # -- SLOs: multi-window multi-burn-rate ------------------------------------------------
        Alert(
            "ApiErrorBudgetBurnFast", "slo", "critical", _burn(errors_ratio, err_budget, "critical", t), None,
            2 * MINUTE,
            "{{ $labels.job }} is burning its error budget fast",
            f"5xx ratio {{{{ $value | humanizePercentage }}}} over the short window; the SLO allows "
            f"{slo.http_error_rate:.2%} (page: 14.4x over 1h and 5m, or 6x over 6h and 30m).",
            "otel-perf-service",
            ("Open the Service overview dashboard: which route's error % rose, and since when.",
             "Open an exemplar or search Tempo for status=error spans of that route: the failing call.",
             "Check recent deploys and the Database dashboard (failing queries surface as 5xx)."),
        ),
        Alert(
            "ApiErrorBudgetBurnSlow", "slo", "warning", _burn(errors_ratio, err_budget, "warning", t), None,
            HOUR,
            "{{ $labels.job }} is steadily burning its error budget",
            f"5xx ratio {{{{ $value | humanizePercentage }}}} over the short window; the SLO allows "
            f"{slo.http_error_rate:.2%} (ticket: 3x over 1d and 2h, or 1x over 3d and 6h).",
            "otel-perf-service",
            ("Service overview: error-budget remaining and burn-rate panels; which routes fail.",
             "Tempo: error spans of those routes; group by exception type.",
             "Fix before the budget is spent; the page alert fires if the rate grows."),
        ),
        Alert(
            "ApiLatencyBudgetBurnFast", "slo", "critical", _burn(slow_ratio, lat_budget, "critical", t), None,
            2 * MINUTE,
            f"{{{{ $labels.job }}}} is burning its latency budget fast (requests > {ms} ms)",
            f"{{{{ $value | humanizePercentage }}}} of requests took longer than {ms} ms over the short window; "
            f"the SLO allows {lat_budget:.0%} (page: 14.4x over 1h and 5m, or 6x over 6h and 30m).",
            "otel-perf-service",
            ("Service overview: p95 per route and the top slow routes table: which route is slow.",
             "Click an exemplar on the latency panel: the slow trace in Tempo shows where time goes.",
             "Database dashboard: slow queries/s and pool wait time; Runtime dashboard: CPU saturation."),
        ),
        Alert(
            "ApiLatencyBudgetBurnSlow", "slo", "warning", _burn(slow_ratio, lat_budget, "warning", t), None,
            HOUR,
            f"{{{{ $labels.job }}}} is steadily burning its latency budget (requests > {ms} ms)",
            f"{{{{ $value | humanizePercentage }}}} of requests took longer than {ms} ms over the short window; "
            f"the SLO allows {lat_budget:.0%} (ticket: 3x over 1d and 2h, or 1x over 3d and 6h).",
            "otel-perf-service",
            ("Service overview: share of requests <= SLA and p95 per route over the last days.",
             "Database dashboard: query p95 and pg_stat_statements mean time trends.",
             "Compare with last week (regression alerts) and recent deploys."),
        ),
        # -- API thresholds ----------------------------------------------------------------------
        Alert(
            "ApiRouteLatencyHigh", "api", "warning",
            f"{_p(slo.http_latency_target, HTTP, w5, route_by)}\n  and on(job, {ROUTE}) {_enough(HTTP, w5, route_by, t)}",
            slo.http_latency, 5 * MINUTE,
            f"{pq} of {{{{ $labels.job }}}} {{{{ $labels.{ROUTE} }}}} is over {ms} ms",
            f"{pq} latency {{{{ $value | humanizeDuration }}}} over 5m (SLA: {pq} < {ms} ms).",
            "otel-perf-service",
            ("Service overview, filtered to the route: p50/p95/p99 with the SLA line; exemplars link to Tempo.",
             "In the slow trace: database spans marked otel_perf.db.slow, N+1 events, external calls.",
             "Runtime dashboard for the instance: CPU and GC pauses."),
            recovery=slo.http_latency * 0.9,
        ),
        Alert(
            "ApiThroughputDrop", "api", "warning",
            f"{rate(HTTP + '_count', h1, 'job')}\n  / {rate(HTTP + '_count', h1, 'job', offset=week)}"
            f"\n  and on(job) {_enough(HTTP, h1, 'job', t, offset=week)}",
            1 - slo.throughput_drop, 15 * MINUTE,
            "{{ $labels.job }} serves far fewer requests than a week ago",
            f"Requests/s is {{{{ $value | humanizePercentage }}}} of the same hour last week "
            f"(alert below {1 - slo.throughput_drop:.0%}).",
            "otel-perf-service",
            ("Service overview: requests/s per route against last week; which routes lost traffic.",
             "Check upstream (load balancer, clients, DNS) and whether errors rose at the same time.",
             "Telemetry pipeline dashboard: a telemetry gap looks like a traffic drop."),
            op="<",
        ),
        Alert(
            "ApiRouteLatencyRegression", "api", "warning",
            f"{_p(0.95, HTTP, h1, route_by)}\n  / {_p(0.95, HTTP, h1, route_by, offset=week)}"
            f"\n  and on(job, {ROUTE}) {_enough(HTTP, h1, route_by, t)}"
            f"\n  and on(job, {ROUTE}) {_enough(HTTP, h1, route_by, t, offset=week)}",
            worse, 30 * MINUTE,
            f"p95 of {{{{ $labels.job }}}} {{{{ $labels.{ROUTE} }}}} regressed against last week",
            f"p95 over the last hour is {{{{ $value | humanize }}}}x the same hour last week "
            f"(alert above {worse:g}x).",
            "otel-perf-service",
            ("Service overview: p95 of the route now and a week ago; find the deploy that changed it.",
             "Compare a slow trace now with one from last week in Tempo (new spans, more queries).",
             "Run `otel-perf baseline` against the recorded baseline file to confirm."),
        ),
    ]
    # -- database ------------------------------------------------------------------------------
    db_by = "job, " + label("db.operation.name") + ", " + label("db.collection.name")
    db_slow = f"{rate(DB + '_count', w5, db_by)}\n  - {rate(DB + '_bucket', w5, db_by, le(slo.db_slow))}"
    out += [
        Alert(
            "DbSlowQueries", "database", "warning",
            f"({db_slow})\n  / {rate(DB + '_count', w5, db_by)}\n  and on({db_by}) {_enough(DB, w5, db_by, t)}",
            lat_budget, 10 * MINUTE,
            "Slow {{ $labels.db_operation_name }} {{ $labels.db_collection_name }} queries in {{ $labels.job }}",
            f"{{{{ $value | humanizePercentage }}}} of these statements took longer than "
            f"{slo.db_slow * 1000:g} ms over 5m (alert above {lat_budget:.0%}).",
            "otel-perf-database",
            ("Database dashboard: slow queries/s by shape and pg_stat_statements top statements by mean time.",
             "Open a slow span (exemplar, or Tempo: otel_perf.db.slow=true): statement summary and duration.",
             "EXPLAIN (ANALYZE, BUFFERS) the statement; check missing indexes and lock waits (pg_stat_activity)."),
            recovery=lat_budget * 0.8,
        ),
    ]
    for qc in slo.query_classes:
        sel = f'{QUERY_CLASS}="{qc.name}"'
        slow = (f"{rate(DB + '_count', w5, 'job', sel)}\n  - "
                f"{rate(DB + '_bucket', w5, 'job', sel + ', ' + le(qc.threshold))}")
        out.append(Alert(
            f"DbQueryClassSlow_{qc.name}", "database", "warning",
            f"({slow})\n  / {rate(DB + '_count', w5, 'job', sel)}\n  and on(job) {_enough(DB, w5, 'job', t, sel)}",
            lat_budget, 10 * MINUTE,
            f"Slow {qc.name} statements in {{{{ $labels.job }}}}",
            f"{{{{ $value | humanizePercentage }}}} of {qc.name} statements took longer than their class "
            f"threshold {qc.threshold * 1000:g} ms over 5m (alert above {lat_budget:.0%}).",
            "otel-perf-database",
            (f"Database dashboard, query class {qc.name}: these statements run on most requests, so a few ms "
             "each adds up.",
             "Check the policy functions they call (current_setting, pg_has_role) and the indexes they need.",
             "Tempo: spans with otel_perf.db.query_class and otel_perf.db.slow=true."),
            recovery=lat_budget * 0.8,
        ))
    db_mean = f"{rate(DB + '_sum', w5, 'job')}\n  / {rate(DB + '_count', w5, 'job')}"
    db_mean_h = f"{rate(DB + '_sum', h1, 'job')} / {rate(DB + '_count', h1, 'job')}"
    db_mean_week = f"({rate(DB + '_sum', h1, 'job', offset=week)} / {rate(DB + '_count', h1, 'job', offset=week)})"
    out += [
        Alert(
            "DbMeanLatencyHigh", "database", "warning",
            f"{db_mean}\n  and on(job) {_enough(DB, w5, 'job', t)}",
            slo.db_mean, 10 * MINUTE,
            "Database statements of {{ $labels.job }} are slow on average",
            f"Mean statement duration {{{{ $value | humanizeDuration }}}} over 5m "
            f"(SLA: mean < {slo.db_mean * 1000:g} ms).",
            "otel-perf-database",
            ("Database dashboard: operation p95 by table and pg_stat_statements by total time.",
             "Pool usage and wait time: is time spent waiting for a connection?",
             "Check PostgreSQL itself: CPU, I/O, autovacuum, locks."),
            recovery=slo.db_mean * 0.9,
        ),
        Alert(
            "DbMeanLatencyRegression", "database", "warning",
            f"({db_mean_h})\n  / {db_mean_week}\n  and on(job) {_enough(DB, h1, 'job', t)}"
            f"\n  and on(job) {_enough(DB, h1, 'job', t, offset=week)}",
            worse, 30 * MINUTE,
            "Database statements of {{ $labels.job }} regressed against last week",
            f"Mean statement duration over the last hour is {{{{ $value | humanize }}}}x the same hour last week "
            f"(alert above {worse:g}x).",
            "otel-perf-database",
            ("Database dashboard: pg_stat_statements top statements by mean time; which one changed.",
             "Check migrations and data growth since last week; EXPLAIN the changed statement.",),
        ),
        Alert(
            "DbNPlusOneQueries", "database", "info",
            f"sum by (job, {ROUTE}) (increase({catalogue.DB_N_PLUS_ONE.prometheus}[{w15}]))",
            t.min_events - 0.5, 15 * MINUTE,
            f"N+1 queries on {{{{ $labels.job }}}} {{{{ $labels.{ROUTE} }}}}",
            f"{{{{ $value | humanize }}}} requests in 15m ran one statement shape {slo.n_plus_one} or more times "
            f"(alert from {t.min_events}).",
            "otel-perf-database",
            ("Database dashboard: N+1 events by route.",
             "Open a trace of the route: the server span's otel_perf.db.n_plus_one event names the statement.",
             "Batch the lookups (JOIN, IN (...), prefetch) in the code that loops."),
        ),
    ]

    # -- Core Web Vitals (p75 per page and device class) ------------------------------------------
    vital_by = f"job, {ROUTE}, {DEVICE}"
    for name in VITALS:
        metric = getattr(catalogue, f"WEB_VITAL_{name.upper()}")
        good, poor = getattr(slo, name), getattr(slo, f"{name}_poor")
        value = (f"{_p(0.75, metric.prometheus, w15, vital_by)}\n  and on({vital_by}) "
                 f"{_enough(metric.prometheus, w15, vital_by, t)}")
        fmt = "humanize" if name == "cls" else "humanizeDuration"
        shown = (lambda v: f"{v:g}") if name == "cls" else (lambda v: f"{v * 1000:g} ms")
        levels = [("warning", good, "good")] + ([("critical", poor, "poor")] if name in CORE_VITALS else [])
        for severity, limit, what in levels:
            suffix = "Poor" if what == "poor" else "High"
            out.append(Alert(
                f"WebVital{name.upper()}{suffix}", "web-vitals", severity, value, limit, 15 * MINUTE,
                f"{name.upper()} p75 of {{{{ $labels.{ROUTE} }}}} ({{{{ $labels.{DEVICE} }}}}) is above {what}",
                f"p75 {name.upper()} {{{{ $value | {fmt} }}}} over 15m; good <= {shown(good)}, "
                f"poor > {shown(poor)}.",
                "otel-perf-web-vitals",
                (f"Web Vitals dashboard: {name.upper()} p75 per page and device class; rating distribution.",
                 "Click an exemplar: the page's backend trace (TTFB is often the server's latency).",
                 _VITAL_HINTS[name]),
                recovery=limit * 0.9,
            ))

    # -- process ---------------------------------------------------------------------------------
    inst = "job, instance"
    cpu = (f"{rate(catalogue.PROCESS_CPU_TIME.prometheus, w5, inst)}\n  / on({inst}) "
           f"max by ({inst}) ({catalogue.PROCESS_CPU_LIMIT.prometheus})")
    mem = (f"sum by ({inst}) ({catalogue.PROCESS_MEMORY_USAGE.prometheus})\n  / on({inst}) "
           f"max by ({inst}) ({catalogue.PROCESS_MEMORY_LIMIT.prometheus})")
    out += [
        Alert(
            "ProcessCpuHigh", "runtime", "warning", cpu, slo.cpu, 10 * MINUTE,
            "{{ $labels.job }} {{ $labels.instance }} uses most of its CPU limit",
            f"CPU {{{{ $value | humanizePercentage }}}} of the limit over 5m (SLA: < {slo.cpu:.0%}).",
            "otel-perf-runtime",
            ("Runtime dashboard: CPU per instance, GC collections, threads.",
             "Service overview: did requests/s rise (scale out) or did per-request cost rise (profile it)?"),
            recovery=slo.cpu * 0.9,
        ),
        Alert(
            "ProcessMemoryHigh", "runtime", "warning", mem, slo.memory, 10 * MINUTE,
            "{{ $labels.job }} {{ $labels.instance }} uses most of its memory limit",
            f"Resident memory {{{{ $value | humanizePercentage }}}} of the limit (SLA: < {slo.memory:.0%}).",
            "otel-perf-runtime",
            ("Runtime dashboard: memory per instance over days (a steady climb is a leak).",
             "GC collections per generation; large caches or unbounded queues in the app.",
             "Restarting buys time; a heap snapshot (tracemalloc) finds the cause."),
            recovery=slo.memory * 0.9,
        ),
    ]

    # -- telemetry pipeline ----------------------------------------------------------------------
    def per_kind(metric: str, by: str) -> str:
        # One rate() per metric name: rate() over a {__name__=~...} selector drops the names, and the
        # spans/points/records series of one component then collide ("same labelset" error).
        return "\n  or ".join(f"sum by (job, instance, {by}) (rate(otelcol_{metric}_{kind}_total[{w5}]))"
                               for kind in ("spans", "metric_points", "log_records"))

    sdk_drops = (f"sum by ({inst}) (rate({catalogue.SDK_SPANS_PROCESSED.prometheus}{{error_type!=\"\"}}[{w5}]))"
                 f"\n  or sum by ({inst}) (rate({catalogue.SDK_SPANS_EXPORTED.prometheus}{{error_type!=\"\"}}[{w5}]))"
                 f"\n  or sum by ({inst}) (rate({catalogue.EXPORT_FAILURES.prometheus}[{w5}]))")
    out += [
        Alert(
            "CollectorRefusingTelemetry", "pipeline", "warning",
            per_kind("receiver_refused", "receiver"),
            0, 5 * MINUTE,
            "The Collector refuses telemetry on {{ $labels.receiver }}",
            "{{ $value | humanize }} items/s refused over 5m (usually memory_limiter back-pressure).",
            "otel-perf-pipeline",
            ("Telemetry pipeline dashboard: accepted vs refused per receiver; queue usage.",
             "Collector memory: raise its limit or add gateway replicas; check for a burst of cardinality."),
        ),
        Alert(
            "CollectorExportFailing", "pipeline", "critical",
            per_kind("exporter_send_failed", "exporter"),
            0, 5 * MINUTE,
            "The Collector fails to send telemetry through {{ $labels.exporter }}",
            "{{ $value | humanize }} items/s failed to send over 5m: the backend is down or rejects data.",
            "otel-perf-pipeline",
            ("Telemetry pipeline dashboard: sent vs failed per exporter; queue usage (data is buffered until full).",
             "Check the backend (Prometheus / Tempo) health and the Collector log for the error."),
        ),
        Alert(
            "CollectorQueueFilling", "pipeline", "warning",
            "max by (job, instance, exporter) (otelcol_exporter_queue_size)\n  / max by (job, instance, exporter) "
            "(otelcol_exporter_queue_capacity)",
            0.8, 5 * MINUTE,
            "The Collector's {{ $labels.exporter }} queue is almost full",
            "Queue at {{ $value | humanizePercentage }} of capacity; when full, new data is dropped.",
            "otel-perf-pipeline",
            ("Telemetry pipeline dashboard: queue usage and send failures of the exporter.",
             "A slow or failing backend fills the queue: check it first, then the exporter's num_consumers."),
            recovery=0.7,
        ),
        Alert(
            "SdkTelemetryDropped", "pipeline", "warning", sdk_drops, 0, 5 * MINUTE,
            "{{ $labels.job }} {{ $labels.instance }} drops or fails to export telemetry",
            "{{ $value | humanize }} spans or exports/s dropped or failed in the SDK over 5m.",
            "otel-perf-pipeline",
            ("Telemetry pipeline dashboard: SDK drops by reason (queue_full: raise OTEL_BSP_MAX_QUEUE_SIZE or "
             "sample; export_failed: the Collector is unreachable).",
             "Check the Collector is up and reachable from the service."),
        ),
        Alert(
            "TelemetryAbsent", "pipeline", "critical",
            f"max by (job) (max_over_time(target_info[{h1}]))\n  unless max by (job) (target_info)",
            None, 10 * MINUTE,
            "No telemetry from {{ $labels.job }}",
            "{{ $labels.job }} sent telemetry during the last hour but nothing now (service down, or its "
            "exporter cannot reach the Collector).",
            "otel-perf-pipeline",
            ("Is the service running? Check its instances and logs.",
             "Telemetry pipeline dashboard: Collector accepted per receiver, SDK export failures.",
             "If the service is gone on purpose, this resolves after an hour."),
        ),
        Alert(
            "CollectorDown", "pipeline", "critical", f'up{{job=~"{COLLECTOR_JOB}.*"}}', 1, 5 * MINUTE,
            "The Collector {{ $labels.instance }} is down",
            "Prometheus cannot scrape the Collector's own metrics (up = {{ $value }}): telemetry from every "
            "service may be lost.",
            "otel-perf-pipeline",
            ("Check the Collector container/pod status and its log (config errors stop it at start).",
             "`otel-perf validate collector/` checks the config against the pinned Collector version."),
            op="<",
        ),
        Alert(
            "WarningUnresolved", "escalation", "critical",
            'max by (escalated, job, service) (label_replace(ALERTS{alertstate="firing", severity="warning"}, '
            '"escalated", "$1", "alertname", "(.*)"))', None, ESCALATE_AFTER,
            "{{ $labels.escalated }} on {{ $labels.service }} has been firing for hours",
            f"A warning unresolved for {ESCALATE_AFTER // HOUR}h is escalated to a page.",
            "otel-perf-service",
            ("Open the runbook of the original alert (label `escalated`) and follow it.",
             "If it is expected (maintenance), silence it with an end time."),
            labels={"service": "{{ $labels.service }}"},
        ),
    ]
    return out


_VITAL_HINTS = {
    "lcp": "Largest element late: image size/priority (fetchpriority), render-blocking CSS/JS, slow TTFB.",
    "inp": "Long tasks on the main thread after clicks: split handlers, defer work, check third-party scripts.",
    "cls": "Content moving: reserve space for images/ads/embeds (width/height, aspect-ratio), font swaps.",
    "fcp": "Render-blocking resources and server response time (TTFB) delay the first paint.",
    "ttfb": "Server time: the Service overview p95 of the page's route, redirects, and the CDN/cache hit rate.",
}



# -- rendering -----------------------------------------------------------------------------------

GROUPS = ("slo", "api", "database", "web-vitals", "runtime", "pipeline", "escalation")
GRAFANA_FOLDER = "otel-perf"


def _labels(a: Alert) -> dict[str, str]:
    return {"severity": a.severity, "service": "{{ $labels.job }}", **a.labels}


def prometheus_rules(slo: SLO, t: Timing | None = None, runbooks: str = RUNBOOK_BASE) -> dict[str, dict]:
    """``{group: rule file document}``; the ``slo`` file also holds the recording rules."""
    t = t or Timing()
    table = alerts(slo, t)
    files: dict[str, dict] = {}
    for group in GROUPS:
        rules = []
        for a in (a for a in table if a.group == group):
            rule = {"alert": a.name, "expr": a.condition(), "for": t.d(a.for_)}
            if a.recovery is not None:  # Prometheus' hysteresis: stay firing through short dips
                rule["keep_firing_for"] = t.d(5 * MINUTE)
            rule["labels"] = _labels(a)
            rule["annotations"] = {
                "summary": a.summary,
                "description": a.description,
                "runbook_url": f"{runbooks.rstrip('/')}/{a.name}.md",
                "dashboard": f"/d/{a.dashboard}",
            }
            rules.append(rule)
        groups = [{"name": f"otel-perf-{group}", "interval": t.d(t.evaluation), "rules": rules}]
        if group == "slo":
            recorded = [{"record": r.record, "expr": r.expr} for r in recording_rules(slo, t)]
            groups.insert(0, {"name": "otel-perf-slo-recording", "interval": t.d(t.evaluation), "rules": recorded})
        files[group] = {"groups": groups}
    return files


def grafana_uid(name: str) -> str:
    return "otel-perf-" + name.lower().replace("_", "-")


def grafana_rules(slo: SLO, t: Timing | None = None, runbooks: str = RUNBOOK_BASE) -> dict:
    """Grafana-managed alert rules (file provisioning, apiVersion 1) from the same table.

    Query A is the measured value, B reduces it to the last value, C compares it with the threshold
    (and a recovery threshold where one is set: Grafana's hysteresis). Labels are interpolated from
    the environment by Grafana's provisioning, so their ``$`` is escaped as ``$$``.
    """
    t = t or Timing()
    groups = []
    for group in GROUPS:
        rules = []
        for a in (a for a in alerts(slo, t) if a.group == group):
            threshold = 0.0 if a.threshold is None else a.threshold
            condition: dict = {"evaluator": {"type": "lt" if a.op == "<" else "gt", "params": [threshold]}}
            if a.recovery is not None:
                condition["unloadEvaluator"] = {"type": "lt", "params": [a.recovery]}
            rules.append({
                "uid": grafana_uid(a.name),
                "title": a.name,
                "condition": "C",
                "data": [
                    _grafana_query("A", {"expr": a.condition() if a.threshold is None else a.expr,
                                         "instant": True, "range": False}),
                    _grafana_expression("B", {"type": "reduce", "expression": "A", "reducer": "last",
                                              "settings": {"mode": "dropNN"}}),
                    _grafana_expression("C", {"type": "threshold", "expression": "B", "conditions": [condition]}),
                ],
                "noDataState": a.no_data,
                "execErrState": "Error",
                "for": t.d(a.for_),
                "annotations": {
                    "summary": a.summary,
                    "description": a.description.replace("$value ", "$values.B.Value "),
                    "runbook_url": f"{runbooks.rstrip('/')}/{a.name}.md",
                    "__dashboardUid__": a.dashboard,
                },
                "labels": {k: v.replace("$", "$$") for k, v in _labels(a).items()},
                "isPaused": False,
            })
        groups.append({"orgId": 1, "name": f"otel-perf-{group}", "folder": GRAFANA_FOLDER,
                       "interval": t.d(t.evaluation), "rules": rules})
    return {"apiVersion": 1, "groups": groups}


def _grafana_query(ref: str, model: dict) -> dict:
    return {
        "refId": ref,
        "relativeTimeRange": {"from": 600, "to": 0},
        "datasourceUid": "prometheus",
        "model": {"refId": ref, "datasource": {"type": "prometheus", "uid": "prometheus"}, **model},
    }


def _grafana_expression(ref: str, model: dict) -> dict:
    return {
        "refId": ref,
        "datasourceUid": "__expr__",
        "model": {"refId": ref, "datasource": {"type": "__expr__", "uid": "__expr__"}, **model},
    }
