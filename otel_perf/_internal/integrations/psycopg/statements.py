"""One CLIENT span and one duration per psycopg statement; slow marking; N+1 counting.

The hot path is short on purpose (the per-query overhead is a headline figure):
- the span is created *after* the statement, with explicit start/end times, so every attribute
  (including "slow") is known when the sampler runs; it is built finished, in one step
  (``SpanEmitter``, ``sdk/finished_spans``), and never attached as the current context; an
  ordinary execution's span comes from its statement's template, whose OTLP encoding the
  exporter prepares once;
- the statement's shape, attribute dicts and span template are cached per connection and
  statement string;
- ``db.client.operation.duration`` is pre-aggregated per series (``sdk/deferred``) and handed to
  the SDK at collection; only slow statements are recorded at once, in their span's context, so
  their exemplar points at the trace.
Nothing here raises into the application: a failure is logged once and the statement's own
result or exception is returned unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.trace import Event
from opentelemetry.trace import NonRecordingSpan, SpanKind, Status, StatusCode

from otel_perf._internal import VERSION, catalogue
from otel_perf._internal.query_classes import CURRENT as _CLASS
from otel_perf._internal.query_shapes import Shape, shape_of
from otel_perf._internal.sdk.deferred import DeferredHistogram
from otel_perf._internal.sdk.finished_spans import FinishedSpans, SpanTemplate, current_context

log = logging.getLogger("otel_perf")

SLOW = "otel_perf.db.slow"
SLOW_THRESHOLD = "otel_perf.db.slow_threshold"
QUERY_CLASS = "otel_perf.db.query_class"
SLOW_EVENT = "otel_perf.db.slow_query"
N_PLUS_ONE_EVENT = "otel_perf.db.n_plus_one"
STATEMENTS_PER_CONNECTION = 2048  # cache bound in entries, and in bytes of statement text:
STATEMENT_BYTES_PER_CONNECTION = 1 << 20  # inlined literals make every statement string new
SHAPES_PER_REQUEST = 1000  # N+1 bookkeeping bound
_UNSET = Status(StatusCode.UNSET)


class SpanEmitter:
    """Emit a finished CLIENT span in one step: sample, build, hand to the span processors.

    The SDK's ``start_span`` + ``end`` builds a mutable span, validates every attribute, then
    copies it into a ReadableSpan for the processors: several times the cost of the rest of a
    query's telemetry. Our spans are born finished, so ``FinishedSpans`` (``sdk/finished_spans``)
    builds the ReadableSpan directly from the SDK Tracer's public parts (sampler, resource, id
    generator, processor, span limits); a statement's shared parts are one ``SpanTemplate``
    whose OTLP encoding is prepared once. Differences, documented: processors' ``on_start`` is
    not called (there is no live span to enrich). A non-SDK tracer gets the regular API.
    """

    def __init__(self, tracer: Any, version: str):
        self.tracer = tracer
        self.spans = FinishedSpans(tracer, SpanKind.CLIENT)
        self.fast = self.spans.fast
        self.emit_template = self.spans.emit  # the hot path, without a call of its own

    def template(self, name: str, attrs: dict) -> SpanTemplate:
        """The shared parts of a statement's ordinary spans (``emit_template``)."""
        return self.spans.template(name, attrs)

    def emit_template(self, template: SpanTemplate, start: int, end: int) -> Any:  # replaced in __init__
        """Record an ordinary span (not slow, no error): the hot path."""
        return self.spans.emit(template, start, end)

    def emit(self, name: str, attrs: dict, start: int, end: int, slow: bool, threshold: float,
             duration: float, error: BaseException | None, extra: tuple = ()) -> Any:
        """Record the span; returns something usable as exemplar context (or None if not sampled).
        ``extra``: more (name, attributes) events of a slow span (its shape's plan findings)."""
        status = _UNSET if error is None else Status(StatusCode.ERROR, attrs["error.type"])
        events = (Event(SLOW_EVENT, _slow_event(threshold, duration), end),) if slow else ()
        if extra:
            events += tuple(Event(n, a, end) for n, a in extra)
        # a slow statement is kept whatever the head sampler would say (see docs/database.md)
        context = self.spans.emit_span(name, attrs, start, end, events, status, force_sample=slow)
        return None if context is None else NonRecordingSpan(context)


class Statement:
    """A statement on one database: its shape and prebuilt attribute dicts (shared, never mutated)."""

    __slots__ = ("shape", "span_attrs", "metric_attrs", "threshold", "text_for_class", "class_attrs", "error_attrs",
                 "template")

    def __init__(self, shape: Shape, span_attrs: dict, metric_attrs: dict, threshold: float, template: Any = None):
        self.shape = shape
        self.span_attrs = span_attrs
        self.metric_attrs = metric_attrs
        self.threshold = threshold
        self.template = template  # the span of an ordinary execution (SpanEmitter.template)
        self.text_for_class = shape.text or shape.summary
        self.class_attrs: dict[str, dict] = {}  # metric attributes inside query_class(name), built once
        self.error_attrs: dict[tuple[int, str], dict] = {}  # ... of failed statements, per error type

    def failed_attrs(self, metric_attrs: dict, error_type: str) -> dict:
        key = (id(metric_attrs), error_type)  # metric_attrs: this statement's own, kept alive by it
        attrs = self.error_attrs.get(key)
        if attrs is None:
            if len(self.error_attrs) >= 64:  # error types come from SQLSTATEs and exception classes
                self.error_attrs.clear()
            attrs = self.error_attrs[key] = {**metric_attrs, "error.type": error_type}
        return attrs

    def metric_attrs_in(self, query_class: str) -> dict:
        attrs = self.class_attrs.get(query_class)
        if attrs is None:
            attrs = self.class_attrs[query_class] = {**self.metric_attrs, QUERY_CLASS: query_class}
        return attrs


class ConnectionInfo:
    """What one connection contributes to every span, plus its statement cache."""

    __slots__ = ("namespace", "host", "port", "plain", "with_params", "cached_bytes")

    def __init__(self, connection: Any):
        info = connection.info
        self.namespace = info.dbname
        host = info.host
        self.host = None if host.startswith("/") else host  # a unix socket directory is no address
        self.port = info.port
        self.plain: dict[str, Statement] = {}
        self.with_params: dict[str, Statement] = {}
        self.cached_bytes = 0


class Recorder:
    """Per-Telemetry state of the database instrumentation."""

    def __init__(self, telemetry: Any, request_var: Any = None):
        settings = telemetry.settings
        self.slo = settings.slo
        self.summary = telemetry.summary
        self.shape_label = settings.db_shape_label
        self.commenter = settings.db_sqlcommenter
        self.request_var = request_var
        self.tracer = telemetry.tracer_provider.get_tracer("otel_perf.db", VERSION)
        self.spans = SpanEmitter(self.tracer, VERSION)
        meter = telemetry.meter_provider.get_meter("otel_perf.db", VERSION)
        self.duration = DeferredHistogram(meter, catalogue.DB_CLIENT_DURATION, self.slo.db_buckets)
        m = catalogue.DB_N_PLUS_ONE
        self.n_plus_one = meter.create_counter(m.name, unit=m.unit, description=m.description)
        self.warned = False
        self.plans = None  # plans of slow shapes (off the request path; see plans.py)
        if settings.db_plans:
            from otel_perf._internal.integrations.psycopg.plans import PlanCapture

            self.plans = PlanCapture(settings.db_plan_interval, settings.db_plan_dsn,
                                     getattr(self.summary, "plan_findings", None))

    # -- the hot path -------------------------------------------------------------------------

    def statement(self, cursor: Any, query: Any, has_params: bool) -> Statement:
        conn = cursor.connection
        info = getattr(conn, "_otel_perf", None)
        if info is None:
            info = ConnectionInfo(conn)
            try:
                conn._otel_perf = info
            except AttributeError:  # a connection class with __slots__: no cache, still correct
                pass
        cache = info.with_params if has_params else info.plain
        key = query if isinstance(query, str) else _as_text(query, conn)
        stmt = cache.get(key)
        if stmt is None:
            if len(cache) >= STATEMENTS_PER_CONNECTION or info.cached_bytes >= STATEMENT_BYTES_PER_CONNECTION:
                info.plain.clear()
                info.with_params.clear()
                info.cached_bytes = 0
            stmt = cache[key] = self._build(shape_of(key, has_params), info)
            info.cached_bytes += len(key) + 200
        return stmt

    def record(self, cursor: Any, query: Any, has_params: bool, start: int, end: int,
               error: BaseException | None, span: Any = None, batch: int | None = None) -> None:
        try:
            stmt = self.statement(cursor, query, has_params)
            duration = (end - start) / 1e9
            threshold = stmt.threshold
            query_class = _CLASS.get()
            if (query_class is None and error is None and span is None and batch is None and duration <= threshold
                    and stmt.template is not None):
                # the common case: an ordinary statement, its span prepared, its series known
                self.spans.emit_template(stmt.template, start, end)
                self.duration.record(duration, stmt.metric_attrs)
                self._tally(stmt, duration, threshold)
                return
            if query_class is not None:
                threshold = query_class.threshold or self.slo.slow_threshold(stmt.text_for_class, query_class.name)
            slow = duration > threshold
            findings = self.plans.events.get(stmt.shape.key, ()) if slow and self.plans is not None else ()
            attrs = stmt.span_attrs
            if slow or error is not None or batch is not None or query_class is not None:
                attrs = dict(attrs)
                if slow:
                    attrs[SLOW] = True
                    attrs[SLOW_THRESHOLD] = threshold
                if query_class is not None:
                    attrs[QUERY_CLASS] = query_class.name
                if batch is not None:
                    attrs["db.operation.batch.size"] = batch
                if error is not None:
                    attrs.update(_error_attributes(error))
            if span is None:
                exemplar = self.spans.emit(stmt.shape.summary, attrs, start, end, slow, threshold, duration, error,
                                           findings)
            else:  # sqlcommenter mode: the span had to exist before the statement
                span.update_name(stmt.shape.summary)
                span.set_attributes(attrs)
                if slow:
                    span.add_event(SLOW_EVENT, _slow_event(threshold, duration), end)
                    for event in findings:
                        span.add_event(*event, end)
                if error is not None:
                    span.set_status(Status(StatusCode.ERROR, attrs["error.type"]))
                span.end(end_time=end)
                exemplar = span

            metric_attrs = stmt.metric_attrs if query_class is None else stmt.metric_attrs_in(query_class.name)
            if error is not None:  # one shared dict per series: the histogram groups values by it
                metric_attrs = stmt.failed_attrs(metric_attrs, attrs["error.type"])
            context = trace.set_span_in_context(exemplar) if slow and exemplar is not None else None
            self.duration.record(duration, metric_attrs, context)
            self._tally(stmt, duration, threshold)
            if slow and error is None and self.plans is not None:
                self.plans.submit(stmt.shape, query, has_params, cursor)
        except Exception:
            self.warn("could not record a database statement")
            if span is not None:
                span.end(end_time=end)  # never leave a span open (ending twice is a no-op)

    def start_span(self, start: int) -> Any:
        """sqlcommenter mode: a span before the statement, named and filled in by ``record``."""
        return self.tracer.start_span("db", None, SpanKind.CLIENT, start_time=start)

    # -- N+1 ----------------------------------------------------------------------------------

    def _tally(self, stmt: Statement, duration: float, threshold: float) -> None:
        """The statement in its request's N+1 bookkeeping and in the local summary."""
        if self.request_var is not None:
            request = self.request_var.get()
            if request is not None:
                self._count(request, stmt)
        if self.summary is not None:
            self.summary.query(stmt.shape.key, duration, threshold)

    def _count(self, request: Any, stmt: Statement) -> None:
        counts = request.db
        if counts is None:
            counts = request.db = {}
            request.on_end.append(self._report_n_plus_one)
        entry = counts.get(stmt.shape.key)
        if entry is not None:
            entry[0] += 1
        elif len(counts) < SHAPES_PER_REQUEST:
            counts[stmt.shape.key] = [1, stmt.shape]

    def _report_n_plus_one(self, request: Any) -> None:
        limit = self.slo.n_plus_one
        for key, (count, shape) in (request.db or {}).items():
            if count < limit:
                continue
            event = {"db.query.summary": shape.summary, "otel_perf.db.count": count}
            if shape.text:
                event["db.query.text"] = shape.text
            request.span.add_event(N_PLUS_ONE_EVENT, event)
            attrs = {"http.route": request.route} if request.route else {}
            if self.shape_label:
                attrs["db.query.summary"] = shape.summary
            self.n_plus_one.add(1, attrs)
            if self.summary is not None:
                self.summary.n_plus_one(request.route, key, count)

    # -- helpers ------------------------------------------------------------------------------

    def _build(self, shape: Shape, info: ConnectionInfo) -> Statement:
        metric = {"db.system.name": "postgresql", "db.namespace": info.namespace}
        if shape.operation:
            metric["db.operation.name"] = shape.operation
        if shape.collection:
            metric["db.collection.name"] = shape.collection
        if self.shape_label:
            metric["db.query.summary"] = shape.summary
        pattern_class = self.slo.query_class(shape.text or shape.summary)
        if pattern_class is not None:  # a bounded label: one value per configured class
            metric[QUERY_CLASS] = pattern_class.name
        span = {**metric, "db.query.summary": shape.summary}
        if shape.text:
            span["db.query.text"] = shape.text
        if info.host:
            span["server.address"] = info.host
            span["server.port"] = info.port
        threshold = pattern_class.threshold if pattern_class is not None else self.slo.db_slow
        return Statement(shape, span, metric, threshold, self.spans.template(shape.summary, span))

    def warn(self, what: str) -> None:
        if not self.warned:
            self.warned = True
            log.warning("otel-perf: %s; the query ran without telemetry", what, exc_info=True)


def _slow_event(threshold: float, duration: float) -> dict[str, float]:
    return {"otel_perf.db.threshold": threshold, "otel_perf.db.duration": duration}


def _error_attributes(error: BaseException) -> dict[str, str]:
    """error.type from the SQLSTATE when there is one; never the message (it can quote values)."""
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate:
        return {"error.type": sqlstate, "db.response.status_code": sqlstate}
    cls = type(error)
    return {"error.type": f"{cls.__module__}.{cls.__qualname__}"}


def _as_text(query: Any, conn: Any) -> str:
    if isinstance(query, bytes):
        return query.decode("utf-8", "replace")
    as_string = getattr(query, "as_string", None)  # psycopg.sql.Composable
    return as_string(conn) if as_string is not None else str(query)


def suppressed() -> bool:
    return bool(current_context().get(_SUPPRESS_INSTRUMENTATION_KEY))
