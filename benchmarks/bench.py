"""``make bench``: every overhead figure in one table, bare / vanilla OpenTelemetry / otel-perf side by side.

Runs, against one local OTLP sink: ``bench_http`` (CPU per request under three servers, RSS after
the load), ``bench_db`` (CPU per psycopg query), ``bench_startup`` and ``bench_stall`` (one
collection at the default interval, p99.9 with and without it). Each figure is measured side by
side in one run; the ratio column is what the issue's targets are about. Prints the table and
writes it, with the date and a machine description, to ``benchmarks/results.md``; with
``--docs`` also into the marked blocks of README.md and docs/performance.md.

    python benchmarks/bench.py [--seconds 4] [--rounds 1] [--docs]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

import bench_db  # noqa: E402
import bench_http  # noqa: E402
import bench_stall  # noqa: E402
import bench_startup  # noqa: E402
from sink import running_sink  # noqa: E402

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text()).group(1).strip()
    except (OSError, AttributeError):
        pass
    try:
        mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) / 1024 ** 2
    except (OSError, AttributeError):
        mem = 0.0
    return (f"{os.cpu_count()} × {cpu}, {mem:.0f} GB RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}")


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def _added(rows: dict, key: str) -> tuple[float, float]:
    bare = rows["bare"][key]
    return rows["vanilla"][key] - bare, rows["otel-perf"][key] - bare


def table(http: dict | None, db: dict | None, startup: dict, stall: dict) -> list[str]:
    lines = ["| measure | bare | vanilla OpenTelemetry | otel-perf | otel-perf ÷ vanilla | target |",
             "|---|---|---|---|---|---|"]

    def added_row(label: str, rows: dict, key: str, fmt: str, target: str) -> None:
        vanilla, ours = _added(rows, key)
        lines.append(f"| {label} | {rows['bare'][key]:{fmt}} | {rows['vanilla'][key]:{fmt}} (+{vanilla:{fmt}}) "
                     f"| {rows['otel-perf'][key]:{fmt}} (+{ours:{fmt}}) | **{ours / vanilla:.2f}** of the added | {target} |")

    if http is not None:
        for server, rows in http.items():
            added_row(f"CPU µs per request, {server}", rows, "cpu_us", ".0f", "≤ 0.20 (aim 0.10)")
        rows = http["uvicorn h11"]
        added_row("RSS MB after the load, uvicorn h11", rows, "rss_mb", ".1f", "≤ 0.50")
    if db is not None:
        added_row("CPU µs per psycopg `SELECT 1`", db, "cpu_us", ".1f", "≤ 0.25")
    s = {v: r["cpu_s"] * 1e3 for v, r in startup.items()}
    lines.append(f"| start-up CPU ms, `python -c pass` | {s['bare']:.0f} | {s['vanilla']:.0f} "
                 f"(`opentelemetry-instrument`) | {s['otel-perf']:.0f} (`otel-perf run`) "
                 f"| **{s['otel-perf'] / s['vanilla']:.2f}** of the total | ≤ 0.50 |")
    v, o = stall["vanilla"], stall["otel-perf"]
    lines.append(f"| one collection after 120,000 values (2,000 req/s × 60 s), CPU ms | – | {v['collect_cpu_ms']:.1f} "
                 f"| {o['collect_cpu_ms']:.1f} | {o['collect_cpu_ms'] / v['collect_cpu_ms']:.2f} | a few ms |")

    def p999(r: dict, collected: bool = True) -> str:
        text = f"{r['p999_quiet_ms']:.0f}" + (f" → {r['p999_collect_ms']:.0f}" if collected else "")
        return text + ("" if r["sustained"] else " (load not sustained)")

    rate = bench_stall.RATE
    lines.append(f"| p99.9 ms of a steady {rate} req/s load, without → during that collection "
                 f"| {p999(stall['bare'], False)} | {p999(v)} | {p999(o)} | – | does not move |")
    return lines


def render(lines: list[str], seconds: int, rounds: int, load: tuple[str, str]) -> str:
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        f"Measured {date} on {machine()}; load average {load[0]} before, {load[1]} after "
        f"(a shared machine: absolute figures are for context, the ratios are the result).",
        f"Servers: {seconds} s of wrk per configuration × {rounds} round(s), medians; metrics collected every "
        "second; CPU of every process and thread of the server.",
        "",
        *lines,
    ]) + "\n"


def write_block(path: Path, body: str) -> None:
    text = path.read_text()
    if BEGIN not in text:
        return
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(f"{head}{BEGIN}\n{body}{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=4, help="wrk seconds per server configuration")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the server measurements")
    parser.add_argument("--queries", type=int, default=10000)
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    parser.add_argument("--docs", action="store_true", help="also update README.md and docs/performance.md")
    args = parser.parse_args()
    before = _load()
    http = db = None
    with running_sink() as endpoint:
        startup = bench_startup.measure(endpoint, runs=5)
        stall = bench_stall.measure(endpoint)
        if shutil.which("wrk"):
            http = bench_http.measure(endpoint, args.seconds, args.rounds)
        else:
            print("wrk is missing (apt-get install wrk): no server figures", file=sys.stderr)
        if shutil.which("initdb") or shutil.which("pg_ctl") or Path("/usr/lib/postgresql").exists():
            db = bench_db.measure(endpoint, args.queries, rounds=2)
    body = render(table(http, db, startup, stall), args.seconds, args.rounds, (before, _load()))
    print(body)
    args.out.write_text("# Overhead: bare / vanilla OpenTelemetry / otel-perf\n\n" + body)
    if args.docs:
        for path in (ROOT / "README.md", ROOT / "docs" / "performance.md"):
            write_block(path, body)


if __name__ == "__main__":
    main()
