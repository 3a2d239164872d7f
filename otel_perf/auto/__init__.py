"""Auto-instrumentation of unmodified programs: ``otel-perf run`` (``run``), the ``sitecustomize``
it puts on PYTHONPATH (``site/``), and the entry points the stock ``opentelemetry-instrument``
loads (``distro``). This module is what that sitecustomize executes inside the program."""

from __future__ import annotations

import os
import sys


def boot() -> None:
    """Configure from the environment; bad configuration exits with one line, anything else warns."""
    try:
        from otel_perf._internal.config.errors import ConfigError
        from otel_perf._internal.config.settings import Settings
    except Exception as exc:
        print(f"otel-perf: telemetry disabled, start-up failed: {exc!r}", file=sys.stderr, flush=True)
        return
    try:
        settings = Settings.resolve()  # validated even when off: bad configuration is still an error
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return  # the specification's off switch: not even the SDK is imported
        from otel_perf._internal import lifecycle

        lifecycle.start(settings, entry_points=True)
    except ConfigError as exc:  # only invalid explicit configuration stops the program: one line
        print(f"otel-perf: invalid configuration: {exc}", file=sys.stderr, flush=True)
        os._exit(2)
    except Exception as exc:  # telemetry must never stop the program
        print(f"otel-perf: telemetry disabled, start-up failed: {exc!r}", file=sys.stderr, flush=True)


def chain_sitecustomize(our_dir: str) -> None:
    """Run the sitecustomize ours shadows, if the environment has one."""
    import importlib.machinery
    import importlib.util

    path = [p for p in sys.path if os.path.abspath(p or ".") != our_dir]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
