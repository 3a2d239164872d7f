"""Start-up: ``otel-perf run python -c pass`` against ``opentelemetry-instrument python -c pass``.

CPU time (user + system, of the process and everything it runs, from ``getrusage``) and wall time,
median of interleaved runs. Each side runs in its own cached venv (``envs.py``): otel-perf as the
lean production install, vanilla as stock auto-instrumentation. Both export OTLP/HTTP to the same
local sink, so both do the same work at exit.

    python benchmarks/bench_startup.py [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import envs  # noqa: E402


def commands() -> dict[str, tuple[list[str], Path]]:
    lean, vanilla = envs.venv("lean"), envs.venv("vanilla")
    return {
        "bare": (["python", "-c", "pass"], lean),
        "vanilla": (["opentelemetry-instrument", "python", "-c", "pass"], vanilla),
        "otel-perf": (["otel-perf", "run", "python", "-c", "pass"], lean),
    }


def _once(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall


def measure(endpoint: str, runs: int = 9) -> dict[str, dict[str, float]]:
    """Median CPU and wall seconds per variant."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTHON", "VIRTUAL_ENV"))}
    base.update(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                OTEL_SERVICE_NAME="bench-startup", OTEL_PERF_SUMMARY="false")
    plan = commands()
    samples: dict[str, list[tuple[float, float]]] = {v: [] for v in plan}
    # An empty working directory: `python -c` puts it on sys.path, and from the checkout the
    # vanilla side would find otel-perf's egg-info there and load its configurator.
    with tempfile.TemporaryDirectory() as cwd:
        for i in range(runs + 1):
            for variant, (argv, bin_dir) in plan.items():
                env = dict(base, PATH=f"{bin_dir}{os.pathsep}{base.get('PATH', '')}")
                sample = _once(argv, env, cwd)
                if i:  # the first round warms the page cache and the bytecode caches
                    samples[variant].append(sample)
    return {v: {"cpu_s": statistics.median(c for c, _ in s), "wall_s": statistics.median(w for _, w in s)}
            for v, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    from sink import running_sink

    with running_sink() as endpoint:
        result = measure(endpoint, args.runs)
    for variant, r in result.items():
        print(f"{variant:10s} CPU {r['cpu_s'] * 1e3:7.1f} ms   wall {r['wall_s'] * 1e3:7.1f} ms")
    print(f"otel-perf / vanilla CPU: {result['otel-perf']['cpu_s'] / result['vanilla']['cpu_s']:.2f} (target <= 0.50)")


if __name__ == "__main__":
    main()
