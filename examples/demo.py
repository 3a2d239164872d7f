"""``make run``: the patient timeline under ``otel-perf run``, real traffic, then the SLA summary.

1. PostgreSQL: ``$DATABASE_URL`` (or ``--dsn``) when given, else a throwaway server from the system
   binaries in a temp dir (removed at the end);
2. seed 1,000 patients and 50,000 events (COPY, about a second);
3. start ``otel-perf run uvicorn patient_timeline.app:app`` on a free 127.0.0.1 port, in the local
   default (no Collector needed), with the RUM script injected into the HTML page;
4. drive ``otel-perf load`` with the example's Locust scenario for ``--duration`` seconds;
5. stop the server with SIGINT: on exit otel-perf prints per route p50/p95/p99 and the SLA
   verdict, the slowest query shapes and the N+1 suspects.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(HERE))

from patient_timeline.seed import seed  # noqa: E402
from throwaway_postgres import start_postgres  # noqa: E402

BIN = Path(sys.executable).parent


def say(message: str) -> None:
    print(f"\033[1m==> {message}\033[0m" if sys.stdout.isatty() else f"==> {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with status {proc.returncode} before answering")
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the app did not answer on {url} within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the patient timeline example and show the SLA summary.")
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL"),
                        help="PostgreSQL to use (default: $DATABASE_URL, else a throwaway server)")
    parser.add_argument("--duration", type=float, default=20, help="seconds of load (default 20)")
    parser.add_argument("--users", type=int, default=10, help="simulated users (default 10)")
    parser.add_argument("--summary-json", help="also write the summary as JSON here (for `otel-perf baseline`)")
    parser.add_argument("--load-json", help="write the load generator's result as JSON here")
    parser.add_argument("--find-capacity", action="store_true",
                        help="step the load up until a route breaks the SLA instead (otel-perf load --find-capacity; "
                             "bounded by --duration, default then 120 s)")
    parser.add_argument("--chart", help="with --find-capacity: write the capacity chart (SVG) here")
    args = parser.parse_args(argv)

    pg = None
    server = None
    try:
        dsn = args.dsn
        if not dsn:
            say("no DATABASE_URL: starting a throwaway PostgreSQL from the system binaries")
            pg = start_postgres(dbname="timeline")
            dsn = pg.dsn
        done = seed(dsn)
        say(f"seeded {done.patients} patients and {done.events} events in {done.seconds:.2f} s")

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_PERF_BOOTSTRAP")}
        env.update(DATABASE_URL=dsn, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
        env.setdefault("OTEL_SERVICE_NAME", "patient-timeline")
        env.setdefault("OTEL_PERF_SUMMARY", "true")  # the summary even when a Collector is listening
        if importlib.util.find_spec("otel_perf._internal.integrations.rum"):  # Core Web Vitals from the HTML page
            env.setdefault("OTEL_PERF_RUM", "true")
        if args.summary_json:
            env["OTEL_PERF_SUMMARY_FILE"] = os.path.abspath(args.summary_json)
        say(f"starting the app under otel-perf run on {url}")
        server = subprocess.Popen(
            [str(BIN / "otel-perf"), "run", "uvicorn", "patient_timeline.app:app", "--app-dir", str(HERE),
             "--host", "127.0.0.1", "--port", str(port), "--no-access-log"], env=env)
        wait_until_up(url, server)

        load = [str(BIN / "otel-perf"), "load", str(HERE / "patient_timeline" / "locustfile.py"), "--url", url]
        if args.find_capacity:
            duration = args.duration if "--duration" in (argv or sys.argv) else 120
            say(f"finding the capacity at the SLA (otel-perf load --find-capacity, at most {duration:g} s)")
            load += ["--find-capacity", "--step", "10", "--step-duration", "8", "--duration", str(duration)]
            if args.chart:
                load += ["--chart", args.chart]
        else:
            say(f"driving traffic for {args.duration:g} s with {args.users} simulated clinicians (otel-perf load)")
            load += ["--users", str(args.users), "--duration", str(args.duration)]
        if args.load_json:
            load += ["--json", args.load_json]
        subprocess.run(load, env=env, check=False)

        say("stopping the app (SIGINT): otel-perf prints what it measured inside the app")
        server.send_signal(signal.SIGINT)
        status = server.wait(timeout=30)
        server = None
        say("the N+1, the slow report, the missing index and the CPU-heavy trend are deliberate: docs/example.md, "
            "docs/bottlenecks.md; gate on regressions: docs/load-and-baselines.md")
        return 0 if status in (0, -signal.SIGINT) else status
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    sys.exit(main())
