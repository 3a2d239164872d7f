"""Per-request cost of HTTP telemetry: bare vs vanilla OpenTelemetry vs otel-perf.

Two measurements, each variant in its own process (the OpenTelemetry globals are per process):

1. in-process: the ASGI app is called directly N times; CPU time of the whole process (request
   path + exporter threads) per request, minus bare = what telemetry adds.
2. under uvicorn (httptools, uvloop, one worker pinned to CPU 0) with wrk on CPU 1: requests/s
   and the server's RSS afterwards.

Plus start-up: ``otel-perf run python -c pass`` against ``python -c pass``.
Usage: ``python benchmarks/bench_http.py [--requests 20000] [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
VARIANTS = ("bare", "vanilla", "otel-perf")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_process(n: int) -> dict:
    """Runs inside a child process: drive the app N times, return CPU µs per request."""
    sys.path.insert(0, str(HERE))
    from bench_app import app

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/items/7", "raw_path": b"/items/7", "root_path": "", "query_string": b"",
             "headers": [(b"host", b"bench"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    async def drive(count: int) -> None:
        for _ in range(count):
            await app(dict(scope), receive, send)

    asyncio.run(drive(min(n, 2000)))  # warm-up: caches, lazy middleware stack
    cpu0, wall0 = time.process_time(), time.perf_counter()
    asyncio.run(drive(n))
    time.sleep(0.5)  # let the exporter threads ship what was queued (counted in CPU time)
    cpu = time.process_time() - cpu0
    return {"cpu_us": cpu / n * 1e6, "wall_us": (time.perf_counter() - wall0 - 0.5) / n * 1e6}


def run_child(variant: str, n: int, endpoint: str) -> dict:
    env = dict(os.environ, BENCH_VARIANT=variant, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    out = subprocess.run([sys.executable, __file__, "--child", str(n)], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


def under_uvicorn(variant: str, seconds: int, endpoint: str) -> dict:
    port = free_port()
    env = dict(os.environ, BENCH_VARIANT=variant, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    server = subprocess.Popen(
        ["taskset", "-c", "0", str(BIN / "uvicorn"), "bench_app:app", "--port", str(port), "--log-level", "warning",
         "--http", "httptools", "--loop", "uvloop", "--no-access-log"],
        cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/items/7"
    try:
        for _ in range(100):
            if subprocess.run(["curl", "-sf", url], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c16", "-d2s", url], capture_output=True)  # warm-up
        out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c16", f"-d{seconds}s", url], capture_output=True,
                             text=True).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        return {"rps": rps, "rss_mb": rss_kb(server.pid) / 1024}
    finally:
        server.terminate()
        server.wait(10)


def startup(repeat: int = 7) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}

    def best(argv: list[str]) -> float:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run(argv, env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    return {"python -c pass": best([sys.executable, "-c", "pass"]),
            "otel-perf run python -c pass": best([str(BIN / "otel-perf"), "run", sys.executable, "-c", "pass"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(in_process(args.child)))
        return

    port = free_port()
    sink = subprocess.Popen([sys.executable, str(HERE / "sink.py"), str(port)])
    endpoint = f"http://127.0.0.1:{port}"
    try:
        time.sleep(0.5)
        print(f"in-process, {args.requests} requests per variant (CPU time per request incl. export threads)")
        rows = {v: run_child(v, args.requests, endpoint) for v in VARIANTS}
        for v in VARIANTS:
            added = rows[v]["cpu_us"] - rows["bare"]["cpu_us"]
            print(f"  {v:10s} {rows[v]['cpu_us']:8.1f} µs CPU  (+{added:6.1f} µs)")
        ratio = (rows["otel-perf"]["cpu_us"] - rows["bare"]["cpu_us"]) / (rows["vanilla"]["cpu_us"] - rows["bare"]["cpu_us"])
        print(f"  otel-perf adds {ratio:.2f}x of what vanilla adds (target <= 0.20)")
        if shutil.which("wrk") and shutil.which("taskset"):
            print(f"\nuvicorn (httptools, uvloop) on CPU 0, wrk -t1 -c16 -d{args.seconds}s on CPU 1")
            loaded = {v: under_uvicorn(v, args.seconds, endpoint) for v in VARIANTS}
            for v in VARIANTS:
                per_req = 1e6 / loaded[v]["rps"] - 1e6 / loaded["bare"]["rps"]
                print(f"  {v:10s} {loaded[v]['rps']:9.0f} req/s  (+{per_req:6.0f} µs/request)  "
                      f"RSS {loaded[v]['rss_mb']:.0f} MB")
        else:
            print("\n(wrk/taskset missing: apt-get install wrk util-linux for the load figures)")
        s = startup()
        print("\nstart-up (median of 7): " + ", ".join(f"{k}: {v:.2f} s" for k, v in s.items()))
    finally:
        sink.terminate()


if __name__ == "__main__":
    main()
