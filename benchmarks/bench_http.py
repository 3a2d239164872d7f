"""Per-request cost of HTTP telemetry under real servers: bare vs vanilla OpenTelemetry vs otel-perf.

The app (``bench_app.py``) runs under uvicorn with h11, uvicorn with httptools + uvloop, and
gunicorn with one UvicornWorker, pinned to CPU 0 when ``taskset`` exists; wrk drives it over
loopback from CPU 1. The figure is the server's CPU time (every process and thread: request path,
span export, metric collection) per request served: deterministic enough on a shared machine,
where requests/s are not. Metrics are collected every second and the window ends with a settle
period longer than the collection and span-batch intervals, so collection work is inside it.
The server's RSS after the load is read from ``/proc``.

    python benchmarks/bench_http.py [--seconds 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE))
VARIANTS = ("bare", "vanilla", "otel-perf")
SERVERS = {
    "uvicorn h11": ["uvicorn", "bench_app:app", "--http", "h11", "--loop", "asyncio"],
    "uvicorn httptools+uvloop": ["uvicorn", "bench_app:app", "--http", "httptools", "--loop", "uvloop"],
    "gunicorn UvicornWorker": ["gunicorn", "-k", "uvicorn.workers.UvicornWorker", "-w", "1", "bench_app:app"],
}
# Same for every variant: a collection every second, span batches shipped within the settle time.
# The upstream instrumentors the test extra installs (urllib...) are not what a user of either
# side has, and the vanilla side loads none: otel-perf skips them too (as benchmarks/envs.py's lean
# venv does for the start-up figure).
TELEMETRY_ENV = {"OTEL_METRIC_EXPORT_INTERVAL": "1000", "OTEL_BSP_SCHEDULE_DELAY": "500",
                 "OTEL_PERF_SUMMARY": "false", "OTEL_SERVICE_NAME": "bench",
                 "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "urllib"}
SETTLE = 1.5
_TICK = os.sysconf("SC_CLK_TCK")


def _pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (gunicorn: master and worker)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime, all threads
    return total / _TICK


def rss_mb(pids: list[int]) -> float:
    """RSS of the largest process of the tree (the one serving requests)."""
    best = 0
    for pid in pids:
        try:
            best = max(best, int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)))
        except (OSError, AttributeError):
            pass
    return best / 1024


def _wrk(url: str, seconds: float, connections: int = 16) -> int:
    out = subprocess.run([*_pin(1), "wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "30s", url],
                         capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or re.search(r"connect [1-9]", out):
        raise RuntimeError(f"wrk reported errors:\n{out}")
    return int(re.search(r"(\d+) requests in", out).group(1))


def serve(server: str, variant: str, endpoint: str, seconds: float) -> dict:
    """One server under load: CPU µs per request (window incl. settle) and RSS afterwards."""
    from sink import free_port

    port = free_port()
    argv = [*_pin(0), str(BIN / SERVERS[server][0]), *SERVERS[server][1:]]
    argv += ["--bind", f"127.0.0.1:{port}"] if server.startswith("gunicorn") else ["--port", str(port)]
    if server.startswith("uvicorn"):
        argv += ["--log-level", "warning", "--no-access-log"]
    env = dict(os.environ, BENCH_VARIANT=variant, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, **TELEMETRY_ENV,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))  # this checkout
    log = tempfile.TemporaryFile()  # a pipe nobody reads could fill up and block the server
    process = subprocess.Popen(argv, cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}/items/7"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"{server} ({variant}) did not start: {log.read().decode()[-2000:]}") from exc
                time.sleep(0.1)
        _wrk(url, 1)  # warm-up: imports, caches, first collections
        time.sleep(SETTLE)
        pids = _tree(process.pid)
        cpu0 = cpu_seconds(pids)
        requests = _wrk(url, seconds)
        time.sleep(SETTLE)
        cpu = cpu_seconds(pids) - cpu0
        return {"cpu_us": cpu / requests * 1e6, "rps": requests / seconds, "rss_mb": rss_mb(pids)}
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def measure(endpoint: str, seconds: float, rounds: int) -> dict[str, dict[str, dict[str, float]]]:
    """Medians per server and variant; variants interleaved so drift hits them alike."""
    samples = {s: {v: [] for v in VARIANTS} for s in SERVERS}
    for _ in range(rounds):
        for server in SERVERS:
            for variant in VARIANTS:
                samples[server][variant].append(serve(server, variant, endpoint, seconds))
    return {s: {v: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for v, runs in by_v.items()}
            for s, by_v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")
    from sink import running_sink

    with running_sink() as endpoint:
        result = measure(endpoint, args.seconds, args.rounds)
    for server, rows in result.items():
        bare = rows["bare"]["cpu_us"]
        print(server)
        for v, r in rows.items():
            print(f"  {v:10s} {r['cpu_us']:8.1f} µs CPU/request (+{r['cpu_us'] - bare:7.1f})  "
                  f"{r['rps']:8.0f} req/s  RSS {r['rss_mb']:.0f} MB")
        added = {v: rows[v]["cpu_us"] - bare for v in ("vanilla", "otel-perf")}
        print(f"  otel-perf adds {added['otel-perf'] / added['vanilla']:.2f} of what vanilla adds (target <= 0.20)")


if __name__ == "__main__":
    main()
