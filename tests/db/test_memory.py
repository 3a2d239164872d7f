"""Statements with inlined literals (a new string per call) do not grow the process without bound."""

from __future__ import annotations

import gc
import random
import string
import tracemalloc


def test_statement_caches_are_bounded_in_bytes(telemetry, conn, table):
    t = telemetry(summary=True)
    cur = conn.cursor()
    rng = random.Random(5)
    cur.execute(f"SELECT id FROM {table} WHERE name = 'warm-up'")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(2000):  # ~6 MB of statement text, every string new
        literal = "".join(rng.choices(string.ascii_letters, k=3000))
        cur.execute(f"SELECT id FROM {table} WHERE name = '{literal}'")
    t.span_exporter.clear()  # the test's in-memory exporter keeps every span: not ours
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    # Everything still allocated (the statement strings are the test's, held by whoever caches them).
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert grown < 3_000_000, f"otel-perf holds {grown / 1e6:.1f} MB more after 2,000 new statements"


def test_failed_statements_share_one_series(telemetry, conn, table):
    import psycopg
    import pytest

    from otel_perf._internal.integrations.psycopg import patches

    t = telemetry()
    cur = conn.cursor()
    for i in range(100):
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            cur.execute(f"SELECT id FROM {table} WHERE id = %s::int", (f"x{i}",))
    assert len(patches.ACTIVE.duration.series) == 1  # one pre-aggregated series, not one per failure
    (point,) = [p for p in t.points("db.client.operation.duration") if p.attributes.get("error.type") == "22P02"]
    assert point.count == 100
