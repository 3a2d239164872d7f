"""Bottleneck finder tests: the example's seeded database (1,000 patients, 50,000 events)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psycopg
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

from patient_timeline import seed as seeding  # noqa: E402


@pytest.fixture(scope="session")
def timeline(postgres) -> str:
    """DSN of the test database with the ``timeline`` schema (seeded here unless already there)."""
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        present = conn.execute("SELECT to_regclass('timeline.events') IS NOT NULL").fetchone()[0]
    if not present:
        seeding.seed(postgres.dsn)
    return postgres.dsn


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy (no fixed sleeps: the machine is noisy)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(autouse=True)
def _uninstall_db():
    yield
    from otel_perf._internal.integrations import psycopg as db

    db.uninstall()
