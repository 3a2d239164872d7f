"""Virtual environments the benchmarks compare against, built once and cached in ``.cache/``.

- ``vanilla``: what a user of stock auto-instrumentation installs (``opentelemetry-distro``, the
  OTLP exporters, the ASGI, psycopg and system-metrics instrumentations), pinned to the SDK and
  instrumentation versions otel-perf itself runs on, so both sides run the same SDK;
- ``lean``: otel-perf with no extras (the production install), editable so it always runs this
  checkout. The development venv has test-only instrumentations (urllib...) that
  ``otel-perf run`` would load at start-up: not what a user has.

A venv is rebuilt when its requirement list changes (recorded next to it).
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / ".cache"


def vanilla_requirements() -> list[str]:
    sdk, contrib = version("opentelemetry-sdk"), version("opentelemetry-instrumentation")
    return [f"opentelemetry-sdk=={sdk}", f"opentelemetry-exporter-otlp=={sdk}", f"opentelemetry-distro=={contrib}",
            *(f"opentelemetry-instrumentation-{name}=={contrib}" for name in ("asgi", "psycopg", "system-metrics"))]


def lean_requirements() -> list[str]:
    # compat mode: a plain path entry, no import hook run by every interpreter start-up
    return ["--config-settings", "editable_mode=compat", "-e", str(ROOT)]


def venv(name: str) -> Path:
    """The ``bin`` directory of the cached venv ``name`` (``vanilla`` or ``lean``), built if needed."""
    requirements = {"vanilla": vanilla_requirements, "lean": lean_requirements}[name]()
    path = CACHE / name
    marker = path / "requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if marker.exists() and marker.read_text() == wanted:
        return path / "bin"
    CACHE.mkdir(exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")  # never committed
    print(f"building the {name} venv in {path} (cached) ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
    subprocess.run([str(path / "bin" / "pip"), "install", "-q", *requirements], check=True)
    marker.write_text(wanted)
    return path / "bin"
