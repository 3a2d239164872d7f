"""The patient timeline example, seeded once per session into the shared test PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCENARIO = EXAMPLES / "patient_timeline" / "locustfile.py"
sys.path.insert(0, str(EXAMPLES))

from patient_timeline import seed as seeding  # noqa: E402


@pytest.fixture(scope="session")
def timeline_dsn(postgres) -> str:
    """DSN of the test database with the ``timeline`` schema seeded (1,000 patients, 50,000 events)."""
    seeding.seed(postgres.dsn)
    return postgres.dsn


def run_example(dsn: str, summary: Path, drive, **environ: str) -> dict:
    """Serve the example under ``otel-perf run`` (local mode), ``drive(url)``, stop it with SIGINT and
    return the summary JSON it wrote at exit (plus its stderr under ``"stderr"``)."""
    import json
    import signal

    from tests.fixtures.procs import serve

    server = serve("patient_timeline.app:app", extra=("--app-dir", str(EXAMPLES), "--no-access-log"),
                   DATABASE_URL=dsn, OTEL_PERF_SUMMARY_FILE=str(summary), OTEL_SERVICE_NAME="patient-timeline",
                   **environ)
    try:
        drive(server.url)
    finally:
        clean = server.stop(signal.SIGINT)
    assert clean, f"the example did not exit cleanly:\n{server.stderr}"
    return {**json.loads(summary.read_text()), "stderr": server.stderr}
