"""Plans of slow statements on real PostgreSQL 15, over the example's 50,000 events.

Every statement counts as slow here (``db_slow`` of a microsecond): what is tested is what happens
once a shape is slow, not how long a query takes on a busy machine.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from otel_perf._internal.integrations.psycopg import patches
from otel_perf._internal.integrations.psycopg.plans import FINDING_EVENT
from tests.bottlenecks.conftest import wait_for
from tests.db.conftest import db_spans

ALL_SLOW = {"db_slow": 0.000001}
BY_AUTHOR = "SELECT id, kind, occurred_at FROM events WHERE author_id = %s AND kind <> 'TOPSECRET-42'"
CORRELATED = "SELECT id FROM events WHERE kind = %s AND summary LIKE %s"
WIDE_SORT = ("SELECT e.id, e.summary, p.family_name, p.given_name, c.name FROM events e"
             " JOIN patients p ON p.id = e.patient_id JOIN clinicians c ON c.id = e.author_id ORDER BY c.name, e.summary")


@pytest.fixture
def app_conn(timeline):
    """The application's connection: unqualified names, resolved through its own search_path."""
    with psycopg.connect(timeline, autocommit=True) as conn:
        conn.execute("SET search_path = timeline")
        yield conn


def findings_for(shape_start: str) -> list[dict]:
    plans = patches.ACTIVE.plans

    def ready():
        for key, found in list(plans.findings.items()):
            if key.startswith(shape_start):
                return [f.as_dict() for f in found] or None
        return None

    return wait_for(ready, what=f"plan findings for {shape_start!r}")


def test_missing_index_is_found_with_its_columns_and_the_advice_works(telemetry, app_conn, timeline):
    t = telemetry(summary=True, slo=ALL_SLOW)
    app_conn.execute(BY_AUTHOR, (23,)).fetchall()
    found = findings_for("SELECT id, kind, occurred_at FROM events WHERE author_id")
    scan = [f for f in found if f["kind"] == "seq_scan"]
    assert len(scan) == 1, found
    assert scan[0]["relation"] == "timeline.events"
    assert scan[0]["columns"] == ["author_id"]  # kind <> ? cannot use a b-tree: not suggested
    assert scan[0]["suggestion"] == "CREATE INDEX ON timeline.events (author_id);"

    # The advice is actionable: with that index the planner stops scanning the whole table.
    with psycopg.connect(timeline) as check:  # a transaction rolled back: the shared database stays as seeded
        check.execute("SET search_path = timeline")
        before = json.dumps(check.execute("EXPLAIN (FORMAT JSON) " + BY_AUTHOR, (23,)).fetchone()[0])
        check.execute(scan[0]["suggestion"])
        after = json.dumps(check.execute("EXPLAIN (FORMAT JSON) " + BY_AUTHOR, (23,)).fetchone()[0])
        check.rollback()
    assert '"Seq Scan"' in before and '"Seq Scan"' not in after and "events_author_id_idx" in after

    # The next slow run of the shape carries the findings on its span; the summary lists them.
    app_conn.execute(BY_AUTHOR, (24,)).fetchall()
    spans = [s for s in db_spans(t) if "author_id" in s.attributes.get("db.query.text", "")]
    events = [e for e in spans[-1].events if e.name == FINDING_EVENT]
    assert [e.attributes["otel_perf.plan.kind"] for e in events] == ["seq_scan"]
    assert events[0].attributes["otel_perf.plan.suggestion"] == scan[0]["suggestion"]
    summary = t.summary.as_dict()
    assert any(f["kind"] == "seq_scan" for e in summary["plan_findings"] for f in e["findings"])

    # No literal of the statement anywhere: not in findings, span events or the summary.
    everything = json.dumps(summary) + repr([(e.name, dict(e.attributes)) for s in db_spans(t) for e in s.events])
    assert "TOPSECRET" not in everything


def test_estimate_far_from_the_returned_rows(telemetry, app_conn):
    telemetry(slo=ALL_SLOW)
    rows = app_conn.execute(CORRELATED, ("visit", "visit%")).fetchall()
    found = findings_for("SELECT id FROM events WHERE kind")
    estimate = [f for f in found if f["kind"] == "row_estimate"]
    assert len(estimate) == 1, found
    assert f"returned {len(rows):,}" in estimate[0]["message"]
    assert estimate[0]["suggestion"].startswith("ANALYZE timeline.events")
    # kind = ? keeps a seventh of the table: no index is suggested for it
    assert not [f for f in found if f["suggestion"] and "CREATE INDEX" in f["suggestion"]]
    assert "visit" not in json.dumps(found)


def test_sort_spilling_to_disk(telemetry, app_conn, timeline):
    telemetry(slo=ALL_SLOW)
    app_conn.execute(WIDE_SORT).fetchall()
    found = findings_for("SELECT e.id, e.summary")
    spill = [f for f in found if f["kind"] == "spill"]
    assert len(spill) == 1 and "sort" in spill[0]["message"], found
    # Ground truth: the same statement, executed, sorts on disk; with the suggested work_mem in memory.
    setting = spill[0]["suggestion"].split(";")[0].split(" for ")[0]
    with psycopg.connect(timeline) as check:
        check.execute("SET search_path = timeline")
        plan = "\n".join(r[0] for r in check.execute("EXPLAIN ANALYZE " + WIDE_SORT))
        check.execute(setting)
        fixed = "\n".join(r[0] for r in check.execute("EXPLAIN ANALYZE " + WIDE_SORT))
        check.rollback()
    assert "external merge" in plan
    assert "external merge" not in fixed


def test_planned_on_its_own_read_only_connection_once_per_interval(telemetry, app_conn):
    telemetry(slo=ALL_SLOW, db_plan_interval=3600)
    plans = patches.ACTIVE.plans
    with app_conn.transaction():  # inside the application's transaction: ours is a separate session
        app_conn.execute(BY_AUTHOR, (5,)).fetchall()
        findings_for("SELECT id, kind, occurred_at FROM events WHERE author_id")
        ours = plans._connections[next(iter(plans._connections))]
        assert ours.info.backend_pid != app_conn.info.backend_pid
        assert app_conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    assert ours.execute("SHOW statement_timeout").fetchone()[0] == "2s"
    assert ours.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
    # an INSERT is planned, never executed
    count = app_conn.execute("SELECT count(*) FROM clinicians").fetchone()[0]
    app_conn.execute("INSERT INTO clinicians (id, provider_id, name, role) VALUES (%s, 1, 'x', 'nurse')",
                     (10_000 + count,))
    wait_for(lambda: any(k.startswith("INSERT INTO clinicians") for k in plans.findings), what="the INSERT's plan")
    app_conn.execute("DELETE FROM clinicians WHERE id >= 10000")
    key = next(k for k in plans.last if k.startswith("SELECT id, kind, occurred_at FROM events WHERE author_id"))
    submitted = plans.last[key]
    for author in range(6, 12):  # same shape again: not planned again within the interval
        app_conn.execute(BY_AUTHOR, (author,)).fetchall()
    assert plans.last[key] == submitted and plans.queue.qsize() == 0


def test_switched_off_with_one_setting(telemetry, app_conn):
    t = telemetry(slo=ALL_SLOW, db_plans=False)
    app_conn.execute(BY_AUTHOR, (7,)).fetchall()
    assert patches.ACTIVE.plans is None
    assert not [e for s in db_spans(t) for e in s.events if e.name == FINDING_EVENT]


def test_an_unreachable_planner_never_reaches_the_application(telemetry, app_conn):
    telemetry(slo=ALL_SLOW, db_plan_dsn="postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    plans = patches.ACTIVE.plans
    assert app_conn.execute(BY_AUTHOR, (8,)).fetchall()  # the statement's own result, unchanged
    wait_for(lambda: plans.failed >= 1, what="the planner to give up")
    assert app_conn.execute("SELECT 1").fetchone() == (1,)


def test_one_planner_connection_plans_many_shapes(telemetry, timeline):
    telemetry(slo=ALL_SLOW)
    plans = patches.ACTIVE.plans
    from otel_perf._internal.integrations.psycopg.plans import Job

    for i in range(8):  # more than psycopg's prepare threshold: our connection must stay usable
        job = Job(f"k{i}", "shape", f"SELECT id FROM timeline.events WHERE author_id = %s AND kind <> '{i}'", True,
                  timeline, None)
        assert [f.kind for f in plans.plan(job)] == ["seq_scan"]
    assert not plans._connections[timeline].closed
