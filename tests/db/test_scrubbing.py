"""No SQL literal and no parameter value reaches any exported span, metric or the local summary."""

from __future__ import annotations

import json

import psycopg
import pytest

from otel_perf._internal.integrations.pg_stat_statements import StatStatements

LITERAL = "lit-7f3a-hunter2"
PARAM = "param-9c1e-s3cr3t"


def everything(t) -> str:
    spans = "\n".join(s.to_json() for s in t.spans())
    data = t.reader.get_metrics_data()
    metrics = data.to_json() if data else ""
    summary = json.dumps(t.summary.as_dict()) if t.summary else ""
    return "\n".join((spans, metrics, summary))


def test_secrets_appear_nowhere(telemetry, conn, table, postgres):
    t = telemetry(summary=True, db_shape_label=True)
    meter = t.meter_provider.get_meter("test")
    poller = StatStatements(meter, postgres.dsn, top=1000)
    poller.poll()
    cur = conn.cursor()
    cur.execute(f"INSERT INTO {table} (id, name, secret) VALUES (1, 'x', '{LITERAL}')")
    cur.execute(f"INSERT INTO {table} (id, name, secret) VALUES (%s, %s, %s)", (2, "y", PARAM))
    cur.execute(f"SELECT * FROM {table} WHERE secret IN ('{LITERAL}', %s)", (PARAM,))
    cur.executemany(f"UPDATE {table} SET name = %s WHERE secret = %s", [(PARAM, PARAM), ("z", LITERAL)])
    cur.execute(f"SELECT pg_sleep(0.11), '{LITERAL}'")  # slow: attributes and event
    with cur.copy(f"COPY {table} (id, secret) FROM STDIN") as copy:
        copy.write_row((3, PARAM))
    # Failing statements whose error messages quote the values.
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        cur.execute(f"SELECT '{LITERAL}'::int")
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        cur.execute("SELECT %s::int", (PARAM,))
    with pytest.raises(psycopg.errors.SyntaxError):
        cur.execute(f"SELEC '{LITERAL}' FROM {table}")  # unparseable: summary only
    conn.execute(f"ALTER ROLE {postgres.user} PASSWORD '{LITERAL}'")  # kept verbatim by pg_stat_statements
    conn.execute(f"ALTER ROLE {postgres.user} PASSWORD NULL")
    assert poller.poll() > 0
    raw = conn.execute("SELECT string_agg(query, ' ') FROM pg_stat_statements").fetchone()[0]
    assert LITERAL in raw  # PostgreSQL kept the utility statement verbatim: our sanitizer must not

    exported = everything(t)
    assert f"SELECT * FROM {table} WHERE secret IN (?)" in exported  # the shapes are there...
    assert "otel_perf.db.statement.calls" in exported
    assert LITERAL not in exported  # ...the values are not
    assert PARAM not in exported
