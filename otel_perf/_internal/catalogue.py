"""The metrics otel_perf emits, with the names Prometheus stores them under.

One table that the instrumentation, the generated alert rules and dashboards and the tests all
read, so a renamed metric cannot silently break a dashboard. Names follow the OpenTelemetry
semantic conventions where one exists; our own live under ``otel_perf.``.

Prometheus names follow the OTel -> Prometheus translation (dots to underscores, unit suffix,
``_total`` on counters), which the Python Prometheus exporter and Prometheus 3's OTLP receiver
(``UnderscoreEscapingWithSuffixes``) share for every unit used here. Gauges with unit ``1`` are
avoided on purpose: the two translate them differently (``_ratio`` suffix or none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    kind: str  # counter | updowncounter | histogram | gauge
    description: str

    @property
    def prometheus(self) -> str:
        """The Prometheus metric family name (histograms add _bucket/_sum/_count)."""
        name = re.sub(r"[^a-zA-Z0-9_:]", "_", self.name)
        unit = _PROM_UNITS.get(self.unit, "") if not self.unit.startswith("{") else ""
        if unit and not name.endswith("_" + unit):
            name += "_" + unit
        if self.kind == "counter" and not name.endswith("_total"):
            name += "_total"
        return name


_PROM_UNITS = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": ""}


def label(attribute: str) -> str:
    """The Prometheus label name of an attribute key (``http.route`` -> ``http_route``)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", attribute)


# -- HTTP server (stable semantic conventions) ---------------------------------------------------
HTTP_SERVER_DURATION = Metric(
    "http.server.request.duration", "s", "histogram", "Duration of HTTP server requests."
)
HTTP_SERVER_ACTIVE = Metric(
    "http.server.active_requests", "{request}", "updowncounter", "Number of active HTTP server requests."
)

# -- process / runtime (semantic conventions; emitted by opentelemetry-instrumentation-system-metrics)
PROCESS_CPU_TIME = Metric("process.cpu.time", "s", "counter", "Total CPU seconds broken down by state.")
PROCESS_MEMORY_USAGE = Metric("process.memory.usage", "By", "updowncounter", "Resident memory in use.")
PROCESS_THREAD_COUNT = Metric("process.thread.count", "{thread}", "updowncounter", "Process threads.")
CPYTHON_GC_COLLECTIONS = Metric(
    "cpython.gc.collections", "{collection}", "counter", "Garbage collections per generation."
)
# The limits the CPU/memory SLA is judged against (cgroup limits, else the machine's).
PROCESS_CPU_LIMIT = Metric("otel_perf.process.cpu.limit", "{cpu}", "updowncounter", "CPU cores available.")
PROCESS_MEMORY_LIMIT = Metric("otel_perf.process.memory.limit", "By", "updowncounter", "Memory limit.")

# -- the telemetry pipeline's own health, counted per batch or per drop (never per span) ----------
SDK_SPANS_EXPORTED = Metric(
    "otel.sdk.exporter.span.exported", "{span}", "counter", "Spans exported; failed ones carry error.type."
)
SDK_SPANS_PROCESSED = Metric(
    "otel.sdk.processor.span.processed", "{span}", "counter", "Spans dropped before export, by error.type."
)
EXPORT_FAILURES = Metric(
    "otel_perf.exporter.failures", "{export}", "counter", "Failed export calls by signal (traces/metrics/logs)."
)

# -- database client (stable/development DB semantic conventions; otel_perf.db) --------------------
DB_CLIENT_DURATION = Metric(
    "db.client.operation.duration", "s", "histogram", "Duration of database client operations."
)
DB_CONNECTION_COUNT = Metric(
    "db.client.connection.count", "{connection}", "updowncounter", "Pool connections by state (idle/used)."
)
DB_CONNECTION_MAX = Metric("db.client.connection.max", "{connection}", "updowncounter", "Pool size limit.")
DB_CONNECTION_PENDING = Metric(
    "db.client.connection.pending_requests", "{request}", "updowncounter", "Requests waiting for a connection."
)
DB_CONNECTION_WAIT = Metric(
    "db.client.connection.wait_time", "s", "histogram", "Time to obtain a connection from the pool."
)
DB_CONNECTION_TIMEOUTS = Metric(
    "db.client.connection.timeouts", "{timeout}", "counter", "Pool checkouts that timed out."
)
DB_N_PLUS_ONE = Metric(
    "otel_perf.db.n_plus_one", "{request}", "counter", "Requests that ran one query shape N+ times (N+1)."
)
# pg_stat_statements, per normalized statement (deltas between polls, so resets never go negative)
DB_STATEMENT_CALLS = Metric("otel_perf.db.statement.calls", "{call}", "counter", "pg_stat_statements calls.")
DB_STATEMENT_TIME = Metric(
    "otel_perf.db.statement.exec_time", "s", "counter", "pg_stat_statements total execution time."
)
DB_STATEMENT_MEAN = Metric(
    "otel_perf.db.statement.mean_exec_time", "s", "gauge", "Mean execution time since the previous poll."
)
DB_STATEMENT_ROWS = Metric("otel_perf.db.statement.rows", "{row}", "counter", "pg_stat_statements rows.")

# -- browser Core Web Vitals, ingested from the RUM beacon (otel_perf.rum) ---------------------------
WEB_VITAL_LCP = Metric("browser.web_vital.lcp", "s", "histogram", "Largest Contentful Paint of page loads.")
WEB_VITAL_INP = Metric("browser.web_vital.inp", "s", "histogram", "Interaction to Next Paint of page views.")
WEB_VITAL_CLS = Metric("browser.web_vital.cls", "1", "histogram", "Cumulative Layout Shift of page views.")
WEB_VITAL_FCP = Metric("browser.web_vital.fcp", "s", "histogram", "First Contentful Paint of page loads.")
WEB_VITAL_TTFB = Metric("browser.web_vital.ttfb", "s", "histogram", "Time to First Byte of page loads.")
RUM_REJECTED = Metric(
    "otel_perf.rum.rejected", "{rejection}", "counter", "RUM beacons (or values in them) rejected, by reason."
)

ALL: tuple[Metric, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Metric))
