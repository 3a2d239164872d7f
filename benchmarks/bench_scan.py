"""Memory growth under hostile traffic: a 404 scan of long random paths.

Each variant (no instrumentation, vanilla OpenTelemetry, otel-perf; see bench_app.py) runs the
same Starlette app under uvicorn, exporting to a local OTLP sink with short span and metric
intervals (so export and collection work is included). After a warm-up of normal requests its RSS
is read; then a scanner sends requests to never-seen, unmatched paths of random length (up to
``--max-path`` bytes) over a few keep-alive connections; after a pause for the exporters to drain,
RSS is read again. Growth = after - before, per variant, in one run.

    python benchmarks/bench_scan.py [--requests 20000] [--max-path 4000]

Target (the issue that asked for it): otel-perf within 2x of vanilla's growth, never over +20 MB.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import string
import subprocess
import sys
import threading
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


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_until_up(port: int, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/items/1")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def drive(port: int, paths: list[str], connections: int = 4) -> int:
    """Send GET ``paths`` over ``connections`` keep-alive connections; returns responses seen."""
    done = [0] * connections

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for path in paths[index::connections]:
            try:
                conn.request("GET", path)
                conn.getresponse().read()
                done[index] += 1
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done)


def scan_paths(n: int, max_len: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "-._~"
    return ["/" + "".join(rng.choices(alphabet, k=rng.randint(max_len // 4, max_len))) for _ in range(n)]


def measure(variant: str, endpoint: str, requests: int, max_path: int) -> dict:
    port = free_port()
    env = {**os.environ, "BENCH_VARIANT": variant, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
           "OTEL_METRIC_EXPORT_INTERVAL": "1000", "OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_PERF_SUMMARY": "false",
           "PYTHONPATH": str(HERE)}
    server = subprocess.Popen(
        [str(BIN / "uvicorn"), "bench_app:app", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_until_up(port)
        drive(port, [f"/items/{i}" for i in range(2000)])  # warm-up: every code path, every cache
        time.sleep(2.5)
        before = rss_mb(server.pid)
        answered = drive(port, scan_paths(requests, max_path))
        time.sleep(2.5)  # let span batches and a metric collection go out
        after = rss_mb(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    return {"variant": variant, "before": before, "after": after, "growth": after - before, "answered": answered}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--max-path", type=int, default=4000, help="longest path in bytes")
    args = parser.parse_args()
    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, str(HERE / "sink.py"), str(sink_port)])
    try:
        results = [measure(v, f"http://127.0.0.1:{sink_port}", args.requests, args.max_path) for v in VARIANTS]
    finally:
        sink.terminate()
    print(f"404 scan: {args.requests:,} unmatched paths of {args.max_path // 4}-{args.max_path} bytes")
    print(f"{'variant':<10} {'RSS before MB':>14} {'after MB':>9} {'growth MB':>10}")
    for r in results:
        print(f"{r['variant']:<10} {r['before']:>14.1f} {r['after']:>9.1f} {r['growth']:>+10.1f}")
    vanilla = next(r["growth"] for r in results if r["variant"] == "vanilla")
    ours = next(r["growth"] for r in results if r["variant"] == "otel-perf")
    verdict = ours <= 20 and ours <= max(2 * vanilla, 2.0)
    print(f"otel-perf growth {ours:+.1f} MB vs vanilla {vanilla:+.1f} MB: "
          f"{'within target' if verdict else 'OVER target'} (2x vanilla, at most +20 MB)")


if __name__ == "__main__":
    main()
