"""pg_stat_statements deltas, across resets, from a real server with the extension preloaded; one
exporting poller per database (advisory lock, failover); bounded labels."""

from __future__ import annotations

import logging

import psycopg
import pytest

from otel_perf._internal.catalogue import DB_STATEMENT_CALLS, DB_STATEMENT_MEAN, DB_STATEMENT_ROWS, DB_STATEMENT_TIME
from otel_perf._internal.integrations import psycopg as db
from otel_perf._internal.integrations.pg_stat_statements import QUERY_ID, StatStatements, StatStatementsUnavailable
from tests.fixtures.net import wait_for


def calls(t, summary):
    return sum(p.value for p in t.points(DB_STATEMENT_CALLS.name) if p.attributes.get("db.query.summary") == summary)


def test_deltas_are_exported_and_survive_a_reset(telemetry, postgres, conn, table):
    t = telemetry()
    poller = StatStatements(t.meter_provider.get_meter("test"), postgres.dsn, top=1000)
    text = f"SELECT {table}"
    conn.execute("SELECT pg_stat_statements_reset()")
    for i in range(5):
        conn.execute(f"SELECT name FROM {table} WHERE id = %s", (i,))
    poller.poll()
    assert calls(t, text) == 5

    for i in range(3):
        conn.execute(f"SELECT name FROM {table} WHERE id = {i}")  # literals: same normalized statement
    poller.poll()
    assert calls(t, text) == 8  # 5 + a delta of 3, not 5 + 8

    poller.poll()
    assert calls(t, text) == 8  # nothing new, nothing added

    conn.execute("SELECT pg_stat_statements_reset()")
    for i in range(2):
        conn.execute(f"SELECT name FROM {table} WHERE id = %s", (i,))
    poller.poll()
    assert calls(t, text) == 10  # the reset is seen: +2, never negative, never 8 again

    points = [p for p in t.points(DB_STATEMENT_TIME.name) if p.attributes.get("db.query.summary") == text]
    assert points and points[0].value > 0
    rows = [p for p in t.points(DB_STATEMENT_ROWS.name) if p.attributes.get("db.query.summary") == text]
    assert rows and all(r.value == 0 for r in rows)  # the table is empty: every call returned no row
    means = [p for p in t.points(DB_STATEMENT_MEAN.name) if p.attributes.get("db.query.summary") == text]
    assert means and all(m.value > 0 for m in means)  # one per queryid (a literal and a parameter differ)
    assert points[0].attributes["db.namespace"] == postgres.dbname


def test_per_statement_reset_is_a_new_start(telemetry, postgres, conn, table):
    t = telemetry()
    poller = StatStatements(t.meter_provider.get_meter("test"), postgres.dsn, top=1000)
    text = f"SELECT {table}"
    for _ in range(4):
        conn.execute(f"SELECT id FROM {table} WHERE name = %s", ("a",))
    poller.poll()
    before = calls(t, text)
    (queryid,) = conn.execute(
        "SELECT queryid FROM pg_stat_statements WHERE query LIKE %s", (f"SELECT id FROM {table} WHERE name = %",)
    ).fetchone()
    conn.execute("SELECT pg_stat_statements_reset(0, 0, %s)", (queryid,))
    conn.execute(f"SELECT id FROM {table} WHERE name = %s", ("b",))
    poller.poll()
    assert calls(t, text) == before + 1


@pytest.fixture(scope="module")
def no_pgss(postgres):
    """The DSN of a database without the extension."""
    with psycopg.connect(postgres.dsn_for("postgres"), autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = 'no_pgss'").fetchone():
            admin.execute("CREATE DATABASE no_pgss")
    return postgres.dsn_for("no_pgss")


def test_missing_extension_is_reported_clearly(no_pgss, telemetry):
    t = telemetry()
    poller = StatStatements(t.meter_provider.get_meter("test"), no_pgss)
    with pytest.raises(StatStatementsUnavailable, match="CREATE EXTENSION pg_stat_statements"):
        poller.poll()


def test_setting_starts_the_poller_and_warns_when_unavailable(telemetry, postgres, no_pgss, caplog):
    t = telemetry(db_stat_statements_dsn=postgres.dsn, db_stat_statements_interval=1)
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("SELECT 'poller-check'")
    wait_for(lambda: calls(t, "SELECT") > 0, timeout=15, what="the background poller's first export")
    db.uninstall()

    caplog.set_level(logging.WARNING, logger="otel_perf")
    telemetry(db_stat_statements_dsn=no_pgss, db_stat_statements_interval=1)
    wait_for(lambda: "pg_stat_statements is not installed" in caplog.text, timeout=15, what="the warning")


def test_labels_are_bounded(telemetry, postgres, conn, table):
    t = telemetry()
    poller = StatStatements(t.meter_provider.get_meter("test"), postgres.dsn, top=1000)
    conn.execute(f"SELECT name FROM {table} WHERE name = %s OR secret = %s", ("x" * 3000, "y"))
    poller.poll()
    (point,) = [p for p in t.points(DB_STATEMENT_CALLS.name) if p.attributes["db.query.summary"] == f"SELECT {table}"]
    assert set(point.attributes) == {"db.system.name", "db.namespace", "db.query.summary", QUERY_ID}
    (text,) = conn.execute("SELECT query FROM pg_stat_statements WHERE queryid = %s",
                           (int(point.attributes[QUERY_ID]),)).fetchone()  # the text is one lookup away
    assert text.startswith(f"SELECT name FROM {table}")


def _meter():
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    return MeterProvider(metric_readers=[reader]).get_meter("test"), reader


def _total(reader, summary):
    data = reader.get_metrics_data()
    return sum(p.value for rm in (data.resource_metrics if data else ()) for sm in rm.scope_metrics
               for m in sm.metrics if m.name == DB_STATEMENT_CALLS.name for p in m.data.data_points
               if p.attributes["db.query.summary"] == summary)


def test_one_poller_per_database_exports_and_another_takes_over(postgres, conn, table):
    """Three workers poll one database: the totals are the real call count, not three times it,
    and when the exporting worker dies another one takes over without counting anything twice."""
    summary = f"SELECT {table}"
    workers = [(StatStatements(meter, postgres.dsn, top=1000), reader) for meter, reader in (_meter() for _ in range(3))]
    try:
        for i in range(6):
            conn.execute(f"SELECT name FROM {table} WHERE id = %s", (i,))
        read = [poller.poll() for poller, _ in workers]
        assert [p.holder for p, _ in workers] == [True, False, False] and read[1:] == [0, 0]
        assert [_total(r, summary) for _, r in workers] == [6, 0, 0]

        (holder, _), (second, second_reader), (third, third_reader) = workers
        holder.stop()  # the exporting worker dies: its session and lock go with it
        for i in range(4):
            conn.execute(f"SELECT name FROM {table} WHERE id = %s", (i,))
        second.poll()  # takes over: this read is its starting point, the 6 are not exported again
        third.poll()
        assert second.holder and not third.holder
        for i in range(3):
            conn.execute(f"SELECT name FROM {table} WHERE id = %s", (i,))
        second.poll()
        third.poll()
        assert _total(second_reader, summary) == 3 and _total(third_reader, summary) == 0
        held = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted").fetchone()[0]
        assert held == 1
    finally:
        for poller, _ in workers:
            poller.stop()
