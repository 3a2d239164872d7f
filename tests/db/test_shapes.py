"""Query shapes: sanitized, stable text and bounded summaries (PostgreSQL's parser, no server)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from otel_perf._internal.query_shapes import MAX_SUMMARY, shape_of


def test_literals_and_parameters_become_placeholders():
    shape = shape_of("SELECT * FROM patients p WHERE p.name = 'Alice' AND p.age > 42 AND p.ssn = %s", True)
    assert shape.text == "SELECT * FROM patients p WHERE p.name = ? AND p.age > ? AND p.ssn = ?"
    assert shape.summary == "SELECT patients"
    assert shape.operation == "SELECT"
    assert shape.collection == "patients"


def test_in_lists_array_and_values_rows_collapse_to_one_text():
    a = shape_of("SELECT id FROM t WHERE id IN (1, 2, 3) AND x = ANY(ARRAY[1,2])")
    b = shape_of("SELECT id FROM t WHERE id IN (4,5,6,7,8,9) AND x = ANY(ARRAY[7])")
    assert a.text == b.text == "SELECT id FROM t WHERE id IN (?) AND x = ANY(ARRAY[?])"
    rows = shape_of("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')")
    one = shape_of("INSERT INTO t (a,b) VALUES (%s,%s)", True)
    assert rows.text == one.text == "INSERT INTO t (a, b) VALUES (?, ?)"


def test_named_placeholders_and_escaped_percent():
    shape = shape_of("SELECT * FROM t WHERE a = %(x)s AND b = %(x)s AND c LIKE 'a%%'", True)
    assert shape.text == "SELECT * FROM t WHERE a = ? AND b = ? AND c LIKE ?"


def test_percent_is_literal_without_parameters():
    assert shape_of("SELECT 'x' LIKE '%s'").text == "SELECT ? LIKE ?"


def test_comments_are_dropped():
    shape = shape_of("SELECT 1 /* user=alice token=abc */ FROM t -- password=hunter2")
    assert "alice" not in shape.text and "hunter2" not in shape.text


def test_summary_names_operation_and_tables_in_order():
    assert shape_of("SELECT * FROM a JOIN b ON a.id = b.id").summary == "SELECT a b"
    assert shape_of("INSERT INTO s SELECT * FROM o").summary == "INSERT s o"
    assert shape_of("WITH x AS (SELECT 1 FROM a) UPDATE b SET c = 1 FROM x").summary == "UPDATE b a"
    assert shape_of("DELETE FROM t WHERE id = 1").collection == "t"
    assert shape_of("SELECT pg_sleep(0.1)").summary == "SELECT"
    assert shape_of("CREATE TABLE q (a int)").summary == "CREATE TABLE q"
    assert shape_of("BEGIN").summary == "BEGIN"


def test_server_side_cursor_is_described_by_its_query():
    shape = shape_of("DECLARE c CURSOR FOR SELECT * FROM d WHERE a = 1")
    assert (shape.summary, shape.operation) == ("SELECT d", "SELECT")


def test_unparseable_statement_keeps_its_summary_only():
    shape = shape_of("SELEC name FROM users WHERE password = 'hunter2'")
    assert shape.text is None and shape.summary == "UNKNOWN"
    shape = shape_of("SELECT 'hunter2' FROM (( broken")
    assert shape.text is None and shape.summary == "SELECT" and shape.key == "SELECT"


def test_utility_statement_secrets_are_scrubbed():
    shape = shape_of("ALTER ROLE app PASSWORD 'hunter2'")
    assert shape.text is not None and "hunter2" not in shape.text


def test_long_statements_are_not_cached_but_still_sanitized():
    values = ", ".join(f"({i}, 'secret{i}')" for i in range(2000))
    shape = shape_of(f"INSERT INTO t (a, b) VALUES {values}")
    assert shape.text == "INSERT INTO t (a, b) VALUES (?, ?)"


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_arbitrary_input_never_raises_and_stays_bounded(query):
    secret = "Zq9secretZq9"
    shape = shape_of(f"SELECT '{secret}', {query}")
    assert len(shape.summary) <= MAX_SUMMARY
    assert secret not in shape.summary
    assert shape.text is None or secret not in shape.text
