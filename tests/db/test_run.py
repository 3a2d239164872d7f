"""An unmodified program under ``otel-perf run``: psycopg imported after start-up is instrumented."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROGRAM = """
import sys
import psycopg, psycopg_pool
with psycopg_pool.ConnectionPool(sys.argv[1], min_size=1, max_size=1) as pool:
    with pool.connection() as conn:
        conn.execute("SELECT pg_sleep(0.11)")
        for i in range(3):
            conn.execute("SELECT %s::int", (i,))
"""


def test_otel_perf_run_records_queries_in_the_local_summary(postgres, tmp_path: Path):
    script = tmp_path / "app.py"
    script.write_text(PROGRAM)
    summary = tmp_path / "summary.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_PERF_SUMMARY="true", OTEL_PERF_SUMMARY_FILE=str(summary), OTEL_TRACES_EXPORTER="none",
               OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    otel_perf = Path(sys.executable).parent / "otel-perf"
    proc = subprocess.run([str(otel_perf), "run", sys.executable, str(script), postgres.dsn], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    queries = {q["shape"]: q for q in json.loads(summary.read_text())["queries"]}
    assert queries["SELECT pg_sleep(?)"]["slow"] == 1
    assert queries["SELECT ?::int"]["count"] == 3
