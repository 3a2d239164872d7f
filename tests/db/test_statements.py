"""One CLIENT span and one duration per statement, against a real PostgreSQL."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import SpanKind, StatusCode

from otel_perf import query_class
from otel_perf._internal.catalogue import DB_CLIENT_DURATION
from otel_perf._internal.config.settings import Settings
from otel_perf._internal.integrations import psycopg as db
from tests.db.conftest import db_spans
from tests.fixtures.otlp import InMemoryTelemetry


def one(spans, summary):
    found = [s for s in spans if s.attributes.get("db.query.summary") == summary]
    assert len(found) == 1, [s.attributes.get("db.query.summary") for s in spans]
    return found[0]


def test_sync_statement_span_has_stable_semconv_attributes(telemetry, conn, table, postgres):
    t = telemetry()
    conn.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "a"))
    assert conn.execute(f"SELECT name FROM {table} WHERE id = %s", (1,)).fetchone() == ("a",)
    span = one(db_spans(t), f"SELECT {table}")
    assert span.kind is SpanKind.CLIENT
    assert span.name == f"SELECT {table}"
    assert span.attributes["db.system.name"] == "postgresql"
    assert span.attributes["db.namespace"] == postgres.dbname
    assert span.attributes["db.operation.name"] == "SELECT"
    assert span.attributes["db.collection.name"] == table
    assert span.attributes["db.query.text"] == f"SELECT name FROM {table} WHERE id = ?"
    assert span.attributes["server.port"] == postgres.port
    assert "otel_perf.db.slow" not in span.attributes and not span.events
    assert span.end_time > span.start_time


def test_async_statements_and_async_copy(telemetry, postgres, table):
    t = telemetry()

    async def go():
        async with await psycopg.AsyncConnection.connect(postgres.dsn, autocommit=True) as aconn:
            async with aconn.cursor() as cur:
                await cur.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (1, "a"))
                await cur.executemany(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", [(2, "b"), (3, "c")])
                async with cur.copy(f"COPY {table} (id, name) FROM STDIN") as copy:
                    await copy.write_row((4, "d"))
                await cur.execute(f"SELECT count(*) FROM {table}")
                return await cur.fetchone()

    assert asyncio.run(go()) == (4,)
    spans = db_spans(t)
    summaries = [s.attributes["db.query.summary"] for s in spans]
    assert summaries == [f"INSERT {table}", f"INSERT {table}", f"COPY {table}", f"SELECT {table}"]
    assert spans[1].attributes["db.operation.batch.size"] == 2


def test_executemany_copy_stream_and_server_side_cursor(telemetry, conn, table):
    t = telemetry()
    cur = conn.cursor()
    cur.executemany(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", [(i, f"n{i}") for i in range(5)])
    with cur.copy(f"COPY {table} (id, name) FROM STDIN") as copy:
        for i in range(5, 10):
            copy.write_row((i, f"n{i}"))
    assert len(list(cur.stream(f"SELECT id FROM {table} WHERE id < %s", (3,)))) == 3
    with conn.transaction(), conn.cursor(name="big") as server_cursor:
        server_cursor.execute(f"SELECT id FROM {table} WHERE id >= %s ORDER BY id", (5,))
        assert [r[0] for r in server_cursor.fetchall()] == [5, 6, 7, 8, 9]
    spans = db_spans(t)
    batch = one(spans, f"INSERT {table}")
    assert batch.attributes["db.operation.batch.size"] == 5
    assert one(spans, f"COPY {table}").attributes["db.query.text"] == f"COPY {table} (id, name) FROM STDIN"
    selects = [s for s in spans if s.attributes.get("db.query.summary") == f"SELECT {table}"]
    texts = sorted(s.attributes["db.query.text"] for s in selects)
    assert texts == [f"SELECT id FROM {table} WHERE id < ?", f"SELECT id FROM {table} WHERE id >= ? ORDER BY id"]


def test_duration_histogram_has_slo_buckets_and_bounded_labels(telemetry, conn, table):
    t = telemetry()
    for i in range(3):
        conn.execute(f"SELECT * FROM {table} WHERE id = {i} AND name = 'literal{i}'")
    points = [p for p in t.points(DB_CLIENT_DURATION.name) if p.attributes.get("db.collection.name") == table]
    assert len(points) == 1  # one series per operation/collection, whatever the literals
    (point,) = points
    assert point.count == 3
    for boundary in (0.01, 0.05, 0.1, 0.5, 1.0):
        assert boundary in point.explicit_bounds
    assert set(point.attributes) == {"db.system.name", "db.namespace", "db.operation.name", "db.collection.name"}


def test_shape_label_is_opt_in(telemetry, conn, table):
    t = telemetry(db_shape_label=True)
    conn.execute(f"SELECT * FROM {table}")
    (point,) = [p for p in t.points(DB_CLIENT_DURATION.name) if p.attributes.get("db.collection.name") == table]
    assert point.attributes["db.query.summary"] == f"SELECT {table}"


def test_slow_statement_is_marked_and_counted_fast_one_is_not(telemetry, conn):
    t = telemetry(summary=True)
    conn.execute("SELECT pg_sleep(0.15)")
    conn.execute("SELECT 42")
    spans = db_spans(t)
    slow = next(s for s in spans if s.attributes.get("db.query.text") == "SELECT pg_sleep(?)")
    fast = next(s for s in spans if s.attributes.get("db.query.text") == "SELECT ?")
    assert slow.attributes["otel_perf.db.slow"] is True
    assert slow.attributes["otel_perf.db.slow_threshold"] == pytest.approx(0.1)
    (event,) = slow.events
    assert event.name == "otel_perf.db.slow_query"
    assert event.attributes["otel_perf.db.threshold"] == pytest.approx(0.1)
    assert event.attributes["otel_perf.db.duration"] >= 0.15
    assert "otel_perf.db.slow" not in fast.attributes and not fast.events
    queries = {q["shape"]: q for q in t.summary.as_dict()["queries"]}
    assert queries["SELECT pg_sleep(?)"]["slow"] == 1
    assert queries["SELECT ?"]["slow"] == 0


def test_per_class_threshold_by_context_manager_decorator_and_pattern(telemetry, conn):
    t = telemetry(slo={"query_classes": {"rls": {"threshold": 0.05, "pattern": r"current_setting\("}}})

    with query_class("rls"):
        conn.execute("SELECT pg_sleep(0.06)")

    @query_class("rls")
    def check():
        conn.execute("SELECT pg_sleep(0.061)")

    check()
    conn.execute("SELECT pg_sleep(0.062), current_setting('search_path')")  # by pattern
    conn.execute("SELECT pg_sleep(0.063)")  # no class: the default 100 ms applies
    with query_class("reports", threshold=0.01):
        conn.execute("SELECT pg_sleep(0.02)")

    slow = [s for s in db_spans(t) if s.attributes.get("otel_perf.db.slow")]
    assert [s.attributes["otel_perf.db.slow_threshold"] for s in slow] == pytest.approx([0.05, 0.05, 0.05, 0.01])
    assert [s.attributes.get("otel_perf.db.query_class") for s in slow] == ["rls", "rls", "rls", "reports"]
    assert "otel_perf.db.slow" not in db_spans(t)[3].attributes
    # The class is a (bounded) label on the duration metric too, for the per-class slow-query alert.
    classes = {p.attributes.get("otel_perf.db.query_class"): p.count for p in t.points("db.client.operation.duration")}
    assert classes == {"rls": 3, None: 1, "reports": 1}


def test_async_decorator_keeps_the_class(telemetry, postgres):
    t = telemetry()

    @query_class("rls", threshold=0.01)
    async def check(aconn):
        await aconn.execute("SELECT pg_sleep(0.02)")

    async def go():
        async with await psycopg.AsyncConnection.connect(postgres.dsn, autocommit=True) as aconn:
            await check(aconn)
            await aconn.execute("SELECT pg_sleep(0.021)")

    asyncio.run(go())
    first, second = db_spans(t)
    assert first.attributes["otel_perf.db.query_class"] == "rls" and first.attributes["otel_perf.db.slow"]
    assert "otel_perf.db.slow" not in second.attributes


def test_failing_statement_sets_error_type_and_reraises_unchanged(telemetry, conn):
    t = telemetry()
    with pytest.raises(psycopg.errors.UndefinedTable) as info:
        conn.execute("SELECT * FROM no_such_table WHERE id = 1")
    assert "no_such_table" in str(info.value)  # the application sees psycopg's own exception
    (span,) = db_spans(t)
    assert span.attributes["error.type"] == "42P01"
    assert span.attributes["db.response.status_code"] == "42P01"
    assert span.status.status_code is StatusCode.ERROR
    (point,) = [p for p in t.points(DB_CLIENT_DURATION.name) if "error.type" in p.attributes]
    assert point.attributes["error.type"] == "42P01"
    assert conn.execute("SELECT 1").fetchone() == (1,)  # the connection is still usable


def test_slow_statement_survives_head_sampling_fast_one_does_not(postgres):
    settings = Settings.resolve({}, environ={})
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    t = InMemoryTelemetry(settings, provider, MeterProvider(metric_readers=[InMemoryMetricReader()]), local=False)
    db.install(t)
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("SELECT 1")
        conn.execute("SELECT pg_sleep(0.12)")
    (span,) = exporter.get_finished_spans()
    assert span.attributes["db.query.text"] == "SELECT pg_sleep(?)"
    assert span.context.trace_flags.sampled


def test_statements_inherit_the_current_trace(telemetry, conn):
    t = telemetry()
    tracer = t.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("parent") as parent:
        conn.execute("SELECT 1")
    (span,) = db_spans(t)
    assert span.parent.span_id == parent.get_span_context().span_id
    assert span.context.trace_id == parent.get_span_context().trace_id


def test_sqlcommenter_appends_traceparent_when_enabled(telemetry, conn):
    t = telemetry(db_sqlcommenter=True)
    (seen,) = conn.execute("SELECT current_query()").fetchone()
    (span,) = db_spans(t)
    ctx = span.context
    assert f"traceparent='00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}'" in seen
    assert span.attributes["db.query.text"] == "SELECT current_query()"  # the comment is not in the shape


def test_sqlcommenter_is_off_by_default(telemetry, conn):
    telemetry()
    (seen,) = conn.execute("SELECT current_query()").fetchone()
    assert seen == "SELECT current_query()"


def test_suppressed_instrumentation_records_nothing(telemetry, conn):
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    t = telemetry()
    with suppress_instrumentation():
        conn.execute("SELECT 1")
    assert db_spans(t) == []


def test_uninstall_restores_psycopg(telemetry, conn):
    t = telemetry()
    db.uninstall()
    conn.execute("SELECT 1")
    assert db_spans(t) == []
    assert not hasattr(psycopg.Cursor.execute, "_otel_perf")


def test_client_and_raw_cursors_are_covered(telemetry, postgres):
    t = telemetry()
    with psycopg.connect(postgres.dsn, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        conn.execute("SELECT %s + %s", (1, 2))
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        psycopg.RawCursor(conn).execute("SELECT $1::int * $2::int", (2, 3))
    texts = [s.attributes["db.query.text"] for s in db_spans(t)]
    assert texts == ["SELECT ? + ?", "SELECT ?::int * ?::int"]


class BrokenSummary:
    def query(self, *args):
        raise RuntimeError("summary exploded")


def test_a_telemetry_failure_never_reaches_the_program(telemetry, conn, caplog):
    t = telemetry()
    db.install(InMemoryTelemetry(t.settings, t.tracer_provider, t.meter_provider, local=False, summary=BrokenSummary()))
    assert conn.execute("SELECT 7").fetchone() == (7,)
    assert conn.execute("SELECT 8").fetchone() == (8,)
    assert caplog.text.count("could not record a database statement") == 1  # said once, not per query


def test_spans_encode_to_otlp(telemetry, conn):
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    t = telemetry()
    conn.execute("SELECT pg_sleep(0.11)")
    with pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("SELECT * FROM missing_table")
    request = encode_spans(db_spans(t))
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert {ss.scope.name for rs in request.resource_spans for ss in rs.scope_spans} == {"otel_perf.db"}
    slow, failed = spans
    assert slow.kind == slow.SPAN_KIND_CLIENT and slow.events[0].name == "otel_perf.db.slow_query"
    assert {a.key: a.value.string_value for a in failed.attributes}["error.type"] == "42P01"
    assert failed.status.code == failed.status.STATUS_CODE_ERROR
