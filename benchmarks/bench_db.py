"""Per-query cost of database telemetry: bare psycopg vs vanilla PsycopgInstrumentor vs otel-perf.

``SELECT 1`` over one autocommit connection to a throwaway PostgreSQL on 127.0.0.1, N times per
variant, each variant in its own process (the OpenTelemetry globals are per process), rounds
interleaved so drift hits every variant alike. Telemetry exports over OTLP/HTTP to a local sink:
- ``vanilla``: SDK + BatchSpanProcessor + PeriodicExportingMetricReader with OTLP/HTTP exporters
  and ``PsycopgInstrumentor().instrument()`` (what auto-instrumentation sets up);
- ``otel-perf``: ``otel_perf.configure()`` to the same endpoint.

Two figures per query: wall time (what the program waits) and CPU time of the whole process (the
headline: exporter threads included, metrics collected every second, and both providers flushed
inside the measured window, so work moved off the query path or deferred to collection counts).
Usage: ``python benchmarks/bench_db.py [--queries 10000] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
VARIANTS = ("bare", "vanilla", "otel-perf")


def child(variant: str, dsn: str, n: int) -> dict:
    """Runs inside a child process: time N ``SELECT 1`` after instrumenting as ``variant``."""
    if variant == "otel-perf":
        import otel_perf

        otel_perf.configure(service_name="bench-db")
    elif variant == "vanilla":
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
        from vanilla import install_sdk

        install_sdk("bench-db")
        PsycopgInstrumentor().instrument()
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.cursor()
        for _ in range(min(n, 2000)):  # warm-up: caches, prepared statement
            cur.execute("SELECT 1")
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            cur.execute("SELECT 1")
            cur.fetchone()
        wall = time.perf_counter() - wall0
        _flush()  # whatever was queued or deferred is exported inside the window
        cpu = time.process_time() - cpu0
    return {"wall_us": wall / n * 1e6, "cpu_us": cpu / n * 1e6}


def _flush() -> None:
    from opentelemetry import metrics, trace

    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            flush()


def run_child(variant: str, dsn: str, n: int, endpoint: str) -> dict:
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_METRIC_EXPORT_INTERVAL="1000",
               OTEL_PERF_SUMMARY="false")
    out = subprocess.run([sys.executable, __file__, "--child", variant, dsn, str(n)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(endpoint: str, queries: int, rounds: int) -> dict[str, dict[str, float]]:
    """Median wall and CPU µs per query, per variant (rounds interleaved)."""
    from examples.throwaway_postgres import start_postgres

    with start_postgres() as pg:
        results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
        for _ in range(rounds):
            for v in VARIANTS:
                results[v].append(run_child(v, pg.dsn, queries, endpoint))
    return {v: {k: statistics.median(r[k] for r in results[v]) for k in ("wall_us", "cpu_us")} for v in VARIANTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, dsn, n = args.child
        print(json.dumps(child(variant, dsn, int(n))))
        return
    from sink import running_sink

    with running_sink() as endpoint:
        rows = measure(endpoint, args.queries, args.rounds)
    print(f"SELECT 1 over one connection, {args.queries} queries x {args.rounds} rounds (medians)")
    print(f"  {'variant':10s} {'wall µs/query':>14s} {'added':>8s} {'CPU µs/query':>13s} {'added':>8s}")
    for v in VARIANTS:
        r, b = rows[v], rows["bare"]
        print(f"  {v:10s} {r['wall_us']:14.1f} {r['wall_us'] - b['wall_us']:+8.1f} "
              f"{r['cpu_us']:13.1f} {r['cpu_us'] - b['cpu_us']:+8.1f}")
    for k, label in (("wall_us", "wall"), ("cpu_us", "CPU")):
        vanilla = rows["vanilla"][k] - rows["bare"][k]
        ours = rows["otel-perf"][k] - rows["bare"][k]
        print(f"  {label}: otel-perf adds {ours / vanilla:.2f}x of what vanilla adds (target <= 0.25)")


if __name__ == "__main__":
    main()
