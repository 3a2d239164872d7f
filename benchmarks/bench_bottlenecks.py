"""What the bottleneck finder costs: each feature off and on, side by side in one run.

1. Profiler, requests that are not slow: CPU µs per request of the HTTP benchmark app
   (``bench_app``, otel-perf variant, OTLP to a local sink) with ``OTEL_PERF_PROFILE`` false/true,
   each in its own process, rounds interleaved.
2. Profiler, slow requests: samples taken during a request spinning in Python for 1 s, and the
   cost of one sample (a 30-frame stack): their product is the share of a slow request's time
   the sampler takes (comparing the work done off and on is drowned by noise on a shared machine).
3. Plan capture: client CPU µs per *slow* statement (every statement counts as slow here) with
   ``OTEL_PERF_DB_PLANS`` false/true, on a 50,000-row table without the index its filter needs
   (so the shape has a finding and every slow span carries it), and the wall time of one plan
   capture on the planner thread (once per shape per ``db_plan_interval``).

Usage: ``python benchmarks/bench_bottlenecks.py [--requests 20000] [--queries 3000] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]


def _child(argv: list[str], **env: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *argv], env={**os.environ, **env}, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- 2. slow requests ----------------------------------------------------------------------------

def slow_request(profile: bool) -> dict:
    """Spin for 1 s inside an instrumented request; count the iterations done."""
    import otel_perf

    otel_perf.configure(service_name="bench-profile", traces_exporter="none", metrics_exporter="none",
                        logs_exporter="none", summary="false", profile=profile, slo={"http_latency": 0.1})
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    done = {}

    async def spin(request):
        n, deadline = 0, time.perf_counter() + 1.0
        while time.perf_counter() < deadline:
            n += 1
        done["n"] = n
        return JSONResponse({})

    app = Starlette(routes=[Route("/spin", spin)])
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/spin", "raw_path": b"/spin", "root_path": "", "query_string": b"", "headers": [],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    runs = []
    for _ in range(3):
        asyncio.run(app(dict(scope), receive, send))
        runs.append(done["n"])
    from otel_perf._internal.integrations.asgi import middleware

    profiler = middleware.ACTIVE.profiler
    return {"iterations": statistics.median(runs), "samples": profiler.samples_taken if profiler else 0}


def request_path_cost() -> dict:
    """µs the request path pays per feature when nothing is slow: the profiler's begin + end of a
    request, and a statement's plan bookkeeping (the findings lookup and, once a shape was planned
    within the interval, the rate-limited submit)."""
    from otel_perf._internal.integrations.psycopg.plans import PlanCapture
    from otel_perf._internal.profiler import Profiler
    from otel_perf._internal.query_shapes import shape_of

    class Request:  # what the middleware hands over: on_end callbacks
        def __init__(self) -> None:
            self.on_end: list = []

    profiler = Profiler(3600.0, 0.005)  # never due: the sampler thread sleeps
    n = 200_000

    async def requests() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            request = Request()
            profiler.begin(request, t0)
            for callback in request.on_end:
                callback(request)
        return time.perf_counter() - t0

    async def baseline() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            request = Request()
            for callback in request.on_end:
                callback(request)
        return time.perf_counter() - t0

    with_profiler = asyncio.run(requests())
    without = asyncio.run(baseline())
    profiler.stop()

    capture = PlanCapture(3600.0)
    shape = shape_of("SELECT id FROM events WHERE author_id = %s", True)
    capture.last[shape.key] = time.monotonic()  # planned recently: submit returns at the rate check
    t0 = time.perf_counter()
    for _ in range(n):
        capture.events.get(shape.key, ())
        capture.submit(shape, "", True, None)
    plans = time.perf_counter() - t0
    return {"profiler_us": (with_profiler - without) / n * 1e6, "plans_us": plans / n * 1e6}


def sample_cost() -> float:
    """µs per sample of a request whose handler is 30 frames deep (a realistic framework stack)."""
    import threading

    from otel_perf._internal.profiler import Profiler, Watch

    stop = threading.Event()
    ready = threading.Event()

    def deep(n: int) -> None:
        if n:
            return deep(n - 1)
        ready.set()
        while not stop.is_set():
            pass

    worker = threading.Thread(target=deep, args=(30,))
    worker.start()
    ready.wait()
    profiler = Profiler(0.2, 0.005)
    watch = Watch(0.0, worker.ident, None, None)
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        profiler._sample(watch, sys._current_frames())
    cost = (time.perf_counter() - t0) / n * 1e6
    stop.set()
    worker.join()
    return cost


# -- 3. plans ----------------------------------------------------------------------------------------

QUERY = "SELECT count(*) FROM bench_events WHERE author_id = %s"


def slow_statements(dsn: str, plans: bool, n: int) -> dict:
    import otel_perf

    otel_perf.configure(service_name="bench-plans", traces_exporter="otlp", metrics_exporter="none",
                        logs_exporter="none", summary="false", db_plans=plans, slo={"db_slow": 0.000001})
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(QUERY, (1,)).fetchall()
        if plans:  # let the planner thread find the missing index: from now on every span carries it
            from otel_perf._internal.integrations.psycopg import patches

            deadline = time.monotonic() + 20
            while not patches.ACTIVE.plans.findings and time.monotonic() < deadline:
                time.sleep(0.05)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(n):
            conn.execute(QUERY, (i % 100,)).fetchall()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"cpu_us": cpu / n * 1e6, "wall_us": wall / n * 1e6}


def plan_time(dsn: str) -> float:
    from otel_perf._internal.integrations.psycopg.plans import Job, PlanCapture

    capture = PlanCapture(600)
    job = Job("k", "shape", QUERY, True, dsn, None)
    capture.plan(job)  # connect once
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        capture.plan(job)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "http":
            from bench_http import in_process

            print(json.dumps(in_process(int(rest[0]))))
        elif kind == "slow":
            print(json.dumps(slow_request(rest[0] == "on")))
        elif kind == "path":
            print(json.dumps(request_path_cost()))
        elif kind == "sample":
            print(json.dumps({"us": sample_cost()}))
        elif kind == "db":
            print(json.dumps(slow_statements(rest[0], rest[1] == "on", int(rest[2]))))
        elif kind == "plan":
            print(json.dumps({"ms": plan_time(rest[0])}))
        return

    from examples.throwaway_postgres import start_postgres

    port_sink = _free_port()
    sink = subprocess.Popen([sys.executable, str(HERE / "sink.py"), str(port_sink)])
    endpoint = f"http://127.0.0.1:{port_sink}"
    pg = start_postgres()
    try:
        time.sleep(0.5)
        print(f"1. profiler, requests under the threshold: CPU µs/request, {args.requests} requests, "
              f"{args.rounds} rounds interleaved")
        http: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(args.rounds):
            for state in ("off", "on"):
                row = _child(["--child", "http", str(args.requests)], BENCH_VARIANT="otel-perf",
                             OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_PERF_PROFILE=str(state == "on").lower())
                http[state].append(row["cpu_us"])
        off, on = statistics.median(http["off"]), statistics.median(http["on"])
        print(f"   profiler off {off:6.1f} µs   on {on:6.1f} µs   added {on - off:+5.1f} µs")
        path = _child(["--child", "path"])
        print(f"   request path alone: profiler begin + end {path['profiler_us']:.2f} µs per request; "
              f"plans lookup + rate-limited submit {path['plans_us']:.2f} µs per slow statement")

        print(f"2. profiler, a slow request (median of {args.rounds} runs)")
        samples = statistics.median(_child(["--child", "slow", "on"])["samples"] for _ in range(args.rounds))
        cost = statistics.median(_child(["--child", "sample"])["us"] for _ in range(args.rounds))
        print(f"   {samples:.0f} samples in the 1 s request x {cost:.1f} µs per sample = "
              f"{samples * cost / 1e6:.2%} of its time")

        import psycopg

        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_events AS SELECT g AS id, g % 100 AS author_id, md5(g::text) AS summary"
                         " FROM generate_series(1, 50000) g")
            conn.execute("ANALYZE bench_events")
        print(f"3. plans, every statement slow: client µs/statement, {args.queries} statements, {args.rounds} rounds")
        db: dict[str, list[dict]] = {"off": [], "on": []}
        for _ in range(args.rounds):
            for state in ("off", "on"):
                db[state].append(_child(["--child", "db", pg.dsn, state, str(args.queries)],
                                        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint))
        for key in ("cpu_us", "wall_us"):
            off, on = (statistics.median(r[key] for r in db[s]) for s in ("off", "on"))
            print(f"   {key[:-3]:4s} plans off {off:7.1f} µs   on {on:7.1f} µs   added {on - off:+6.1f} µs")
        print(f"   one plan capture on the planner thread: {_child(['--child', 'plan', pg.dsn])['ms']:.1f} ms "
              "(once per shape per db_plan_interval)")
    finally:
        pg.stop()
        sink.terminate()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
