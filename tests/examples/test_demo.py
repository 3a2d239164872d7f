"""``make run``: examples/demo.py from nothing to the SLA summary (its own throwaway PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.fixtures.procs import env

from .conftest import EXAMPLES


def test_demo_runs_the_example_and_prints_the_summary(postgres, tmp_path):
    # `postgres` only proves the server binaries are there (fails with the install hint if not);
    # the demo starts its own server because DATABASE_URL is unset.
    environ = env()
    environ.pop("DATABASE_URL", None)
    summary = tmp_path / "summary.json"
    proc = subprocess.run([sys.executable, str(EXAMPLES / "demo.py"), "--duration", "3", "--users", "4",
                           "--summary-json", str(summary)], env=environ, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "starting a throwaway PostgreSQL" in out and "seeded 1000 patients and 50000 events" in out
    assert "otel-perf load: http://127.0.0.1:" in out  # the client-side table
    assert "otel-perf summary: patient-timeline" in out and "SLOW" in out and "N+1 suspect" in out
    data = json.loads(summary.read_text())
    assert {r["route"] for r in data["routes"]} >= {"/api/patients/{patient_id}/timeline", "/api/reports/activity"}
    assert "Traceback" not in out
