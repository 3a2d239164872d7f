"""The findings logic on plan fragments (no database): which columns an index would serve."""

from __future__ import annotations

from otel_perf._internal.plan_findings import Table, findings, indexable_columns

COLUMNS = frozenset({"id", "author_id", "kind", "occurred_at", "summary", "patient_id"})


def test_equality_columns_first_then_one_range_column():
    condition = "((e.occurred_at > $3) AND (e.author_id = $1) AND (e.patient_id = $2) AND (e.id < $4))"
    assert indexable_columns(condition, "e", COLUMNS) == ["author_id", "patient_id", "occurred_at"]


def test_functions_casts_patterns_and_other_tables_are_not_indexable():
    condition = ("((lower(e.summary) = $1) AND ((e.kind)::integer = $2) AND (e.summary ~~ $3)"
                 " AND (p.id = $4) AND (e.nonexistent = $5))")
    assert indexable_columns(condition, "e", COLUMNS) == []


def scan(filter_: str, rows: float) -> dict:
    return {"Plan": {"Node Type": "Seq Scan", "Relation Name": "events", "Schema": "s", "Alias": "events",
                     "Plan Rows": rows, "Plan Width": 20, "Filter": filter_}}


def test_small_tables_unselective_filters_and_existing_indexes_give_no_index_advice():
    big = Table(50_000, COLUMNS, frozenset())
    assert findings(scan("(events.author_id = $1)", 500), lambda s, n: big, 4 << 20)[0].columns == ("author_id",)
    small = Table(500, COLUMNS, frozenset())
    assert findings(scan("(events.author_id = $1)", 5), lambda s, n: small, 4 << 20) == []
    assert findings(scan("(events.author_id = $1)", 20_000), lambda s, n: big, 4 << 20) == []
    indexed = Table(50_000, COLUMNS, frozenset({"author_id"}))
    assert findings(scan("(events.author_id = $1)", 500), lambda s, n: indexed, 4 << 20) == []


def test_row_estimate_needs_a_large_gap_and_ignores_limits():
    big = Table(50_000, COLUMNS, frozenset({"author_id"}))
    plan = scan("(events.author_id = $1)", 500)
    assert [f.kind for f in findings(plan, lambda s, n: big, 4 << 20, returned_rows=600)] == []
    assert [f.kind for f in findings(plan, lambda s, n: big, 4 << 20, returned_rows=9_000)] == ["row_estimate"]
    limited = {"Plan": {"Node Type": "Limit", "Plan Rows": 10, "Plans": [plan["Plan"]]}}
    assert findings(limited, lambda s, n: big, 4 << 20, returned_rows=9_000) == []
