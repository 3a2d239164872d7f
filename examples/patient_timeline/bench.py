"""Time the example's key statements as the app runs them (role timeline_app, RLS on), client-side.

    python -m patient_timeline.bench --dsn postgresql://... [--runs 200]

Seeds nothing: run ``python -m patient_timeline.seed`` first. Prints p50/p95/max per statement for
the patient with the longest timeline (the worst case for the timeline page).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import psycopg

TIMELINE = ("SELECT id, kind, occurred_at, summary, author_id FROM events WHERE patient_id = %s"
            " ORDER BY occurred_at DESC, id DESC LIMIT 50")
RLS_CHECK = ("SELECT EXISTS (SELECT 1 FROM patients WHERE id = %s"
             " AND provider_id = NULLIF(current_setting('app.provider_id', true), '')::int) AS ok")
SEARCH = ("SELECT id, mrn, family_name, given_name, birth_date FROM patients"
          " WHERE lower(family_name) LIKE %s ORDER BY family_name, id LIMIT 20")


def busiest_patient(conn: psycopg.Connection) -> tuple[int, int, int]:
    """(patient id, its provider, its event count) of the longest timeline."""
    return conn.execute(
        "SELECT p.id, p.provider_id, count(*) FROM timeline.events e JOIN timeline.patients p ON p.id = e.patient_id"
        " GROUP BY p.id, p.provider_id ORDER BY count(*) DESC, p.id LIMIT 1").fetchone()


def measure(dsn: str, runs: int = 200) -> dict[str, dict[str, float]]:
    """Seconds per statement (p50, p95, max) over ``runs`` executions after a warm-up, RLS applied."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        patient, provider, events = busiest_patient(conn)
        conn.execute("SET search_path = timeline")
        conn.execute("SET ROLE timeline_app")
        statements: dict[str, Callable[[], object]] = {
            "timeline (first page, 50 events)": lambda: conn.execute(TIMELINE, (patient,)).fetchall(),
            "rls check": lambda: conn.execute(RLS_CHECK, (patient,)).fetchone(),
            "search (prefix)": lambda: conn.execute(SEARCH, ("mi%",)).fetchall(),
        }
        out = {}
        with conn.transaction():
            conn.execute("SELECT set_config('app.provider_id', %s, true)", (str(provider),))
            for name, run in statements.items():
                for _ in range(10):  # warm up: plan cache, buffers
                    run()
                times = []
                for _ in range(runs):
                    started = time.perf_counter()
                    run()
                    times.append(time.perf_counter() - started)
                times.sort()
                out[name] = {"p50": statistics.median(times), "p95": times[int(0.95 * len(times)) - 1],
                             "max": times[-1], "events": events}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    for name, r in measure(args.dsn, args.runs).items():
        print(f"{name:36s} p50 {r['p50'] * 1000:6.2f} ms  p95 {r['p95'] * 1000:6.2f} ms  max {r['max'] * 1000:6.2f} ms"
              f"  (patient with {r['events']} events)")


if __name__ == "__main__":
    main()
