"""pg_stat_statements deltas, across resets, from a real server with the extension preloaded."""

from __future__ import annotations

import logging

import psycopg
import pytest

from otel_perf._internal.catalogue import DB_STATEMENT_CALLS, DB_STATEMENT_MEAN, DB_STATEMENT_ROWS, DB_STATEMENT_TIME
from otel_perf._internal.integrations import psycopg as db
from otel_perf._internal.integrations.pg_stat_statements import StatStatements, StatStatementsUnavailable
from tests.fixtures.net import wait_for


def calls(t, text):
    return sum(p.value for p in t.points(DB_STATEMENT_CALLS.name) if p.attributes.get("db.query.text") == text)


def test_deltas_are_exported_and_survive_a_reset(telemetry, postgres, conn, table):
    t = telemetry()
    poller = StatStatements(t.meter_provider.get_meter("test"), postgres.dsn, top=1000)
    text = f"SELECT name FROM {table} WHERE id = ?"
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

    points = [p for p in t.points(DB_STATEMENT_TIME.name) if p.attributes.get("db.query.text") == text]
    assert points and points[0].value > 0
    (rows,) = [p for p in t.points(DB_STATEMENT_ROWS.name) if p.attributes.get("db.query.text") == text]
    assert rows.value == 0  # the table is empty: every call returned no row
    (mean,) = [p for p in t.points(DB_STATEMENT_MEAN.name) if p.attributes.get("db.query.text") == text]
    assert mean.value > 0
    assert points[0].attributes["db.query.summary"] == f"SELECT {table}"
    assert points[0].attributes["db.namespace"] == postgres.dbname


def test_per_statement_reset_is_a_new_start(telemetry, postgres, conn, table):
    t = telemetry()
    poller = StatStatements(t.meter_provider.get_meter("test"), postgres.dsn, top=1000)
    text = f"SELECT id FROM {table} WHERE name = ?"
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
    wait_for(lambda: calls(t, "SELECT ?") > 0, timeout=15, what="the background poller's first export")
    db.uninstall()

    caplog.set_level(logging.WARNING, logger="otel_perf")
    telemetry(db_stat_statements_dsn=no_pgss, db_stat_statements_interval=1)
    wait_for(lambda: "pg_stat_statements is not installed" in caplog.text, timeout=15, what="the warning")
