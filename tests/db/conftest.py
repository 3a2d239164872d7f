"""Database tests: a real PostgreSQL (``postgres`` fixture), the real SDK with in-memory exporters."""

from __future__ import annotations

import itertools

import psycopg
import pytest

from otel_perf._internal.integrations import psycopg as db

_names = itertools.count()


@pytest.fixture(autouse=True)
def _uninstall_db():
    yield
    db.uninstall()


@pytest.fixture
def conn(postgres):
    with psycopg.connect(postgres.dsn, autocommit=True) as c:
        yield c


@pytest.fixture
def table(postgres):
    """A fresh table name per test (tests share one database)."""
    name = f"t_{next(_names)}"
    with psycopg.connect(postgres.dsn, autocommit=True) as c:
        c.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, name text, secret text)")
    return name


def db_spans(t):
    return [s for s in t.spans() if s.instrumentation_scope.name == "otel_perf.db"]
