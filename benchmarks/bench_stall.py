"""Collection at 2,000 requests/s with the default 60 s interval: its cost, and whether it stalls requests.

Each variant runs in its own process, set up as in ``bench_app.py`` (exporting OTLP to a local
sink, default 60 s metric interval, so no collection happens by itself):

1. a steady in-process load (the ASGI app called at a fixed rate, 1,000/s; vanilla may not
   sustain it on a shared 2-core machine) without a collection: the latency of each request from
   its scheduled start (so a stall also delays the requests queued behind it) -> p99.9; a run
   that falls more than ``MAX_LAG`` behind is cut short and reported as such;
2. 120,000 request durations (one interval's worth) recorded through each variant's own record
   path, over a dozen series (routes x status codes);
3. the same steady load while a collection runs on another thread, as the periodic reader's
   does (the load goes on until the collection has finished): the collection's CPU time
   (``time.thread_time``: collection and metric export) and the p99.9 again.

    python benchmarks/bench_stall.py [--rate 1000] [--seconds 4] [--values 120000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this checkout's otel_perf, whatever is installed
VARIANTS = ("bare", "vanilla", "otel-perf")
SCOPE = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
         "path": "/items/7", "raw_path": b"/items/7", "root_path": "", "query_string": b"",
         "headers": [(b"host", b"bench"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
         "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
RATE = 1000  # a stall shows only when requests keep coming: as close to 2,000/s as a shared machine sustains
MAX_LAG = 2.0  # seconds behind schedule: the load is not sustained, stop


def _recorder(variant: str):
    """``record(value, series_index)`` through the variant's own path, or None (bare)."""
    series = [(f"/r{i // 2}", 200 if i % 2 else 500) for i in range(12)]
    if variant == "otel-perf":
        from otel_perf._internal.integrations.asgi import middleware

        ins = middleware.ACTIVE
        attrs = [ins.series(("GET", "http"), status, route, None).attributes for route, status in series]
        return lambda value, i: ins.duration.record(value, attrs[i])
    if variant == "vanilla":
        from opentelemetry import metrics

        # the instrument the upstream ASGI middleware records into (stable semantic conventions)
        histogram = metrics.get_meter("opentelemetry.instrumentation.asgi").create_histogram(
            "http.server.request.duration", unit="s")
        attrs = [{"http.request.method": "GET", "url.scheme": "http", "http.route": route,
                  "http.response.status_code": status} for route, status in series]
        return lambda value, i: histogram.record(value, attrs[i])
    return None


def _steady(app, rate: int, seconds: float, during=None) -> dict:
    """Call ``app`` ``rate`` times a second; latency of each from its scheduled start. With
    ``during``, it is started on a thread a quarter in, and the load lasts until it returns."""
    done = threading.Event()

    def run_during() -> None:
        try:
            during()
        finally:
            done.set()

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    async def drive() -> list[float]:
        latencies, n = [], int(rate * seconds)
        start = time.perf_counter()
        i = 0
        while i < n or (during is not None and not done.is_set() and i < n + rate * 60):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if during is not None and i == n // 4:
                threading.Thread(target=run_during, daemon=True).start()
            await app(dict(SCOPE), receive, send)
            latencies.append(time.perf_counter() - due)
            if latencies[-1] > MAX_LAG:
                break
            i += 1
        return latencies

    latencies = sorted(asyncio.run(drive()))
    if during is not None:
        done.wait(120)
    return {"sustained": latencies[-1] <= MAX_LAG, "p50_ms": statistics.median(latencies) * 1e3,
            "p999_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.999))] * 1e3,
            "max_ms": latencies[-1] * 1e3}


def child(variant: str, rate: int, seconds: float, values: int) -> dict:
    os.environ["BENCH_VARIANT"] = variant
    from bench_app import app

    _steady(app, rate, 1.0)  # warm-up
    quiet = _steady(app, rate, seconds)
    record = _recorder(variant)
    result = {"p999_quiet_ms": quiet["p999_ms"], "p50_quiet_ms": quiet["p50_ms"], "sustained": quiet["sustained"]}
    if record is None:
        return result
    rng = random.Random(1)
    for i in range(values):
        record(rng.lognormvariate(-3.5, 1.0), i % 12)
    from opentelemetry import metrics

    provider = metrics.get_meter_provider()
    collection: dict[str, float] = {}

    def collect() -> None:  # what the periodic reader's thread does at each interval
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        if not provider.force_flush(timeout_millis=120_000):
            print("collection timed out", file=sys.stderr)
        collection.update(cpu_ms=(time.thread_time() - cpu0) * 1e3, wall_ms=(time.perf_counter() - wall0) * 1e3)

    during = _steady(app, rate, seconds, during=collect)
    result.update(p999_collect_ms=during["p999_ms"], p50_collect_ms=during["p50_ms"],
                  sustained=quiet["sustained"] and during["sustained"],
                  collect_cpu_ms=collection.get("cpu_ms", float("nan")),
                  collect_wall_ms=collection.get("wall_ms", float("nan")))
    return result


def measure(endpoint: str, rate: int = RATE, seconds: float = 4, values: int = 120_000) -> dict[str, dict]:
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_PERF_SUMMARY="false",
               OTEL_SERVICE_NAME="bench-stall")
    env.pop("OTEL_METRIC_EXPORT_INTERVAL", None)  # the default: 60 s
    out = {}
    for variant in VARIANTS:
        run = subprocess.run([sys.executable, __file__, "--child", variant, str(rate), str(seconds), str(values)],
                             env=env, capture_output=True, text=True, check=True)
        out[variant] = json.loads(run.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=RATE)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--values", type=int, default=120_000)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, rate, seconds, values = args.child
        print(json.dumps(child(variant, int(rate), float(seconds), int(values))))
        return
    from sink import running_sink

    with running_sink() as endpoint:
        result = measure(endpoint, args.rate, args.seconds, args.values)
    for variant, r in result.items():
        print(f"{variant:10s} " + "  ".join(f"{k} {v:.1f}" for k, v in r.items()))


if __name__ == "__main__":
    main()
