"""otel-perf: OpenTelemetry for Python performance SLAs.

``configure()`` once at start-up (or run the program under ``otel-perf run``); ``shutdown()`` to
flush early. Everything else is configuration: see the README's settings table.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

__version__ = "0.1.0"
__all__ = ["configure", "shutdown", "ConfigError", "__version__"]

log = logging.getLogger("otel_perf")
_lock = threading.Lock()
_deferred = False


def configure(
    *,
    service_name: str | None = None,
    endpoint: str | None = None,
    slo: Mapping[str, Any] | None = None,
    rum: bool | None = None,
    **settings: Any,
) -> None:
    """Set up traces, metrics and logs and instrument the program.

    Keyword arguments override ``OTEL_*``/``OTEL_PERF_*`` variables, which override the YAML
    file (``config=`` or ``OTEL_PERF_CONFIG``). Raises ConfigError for invalid values. Calling it
    again is harmless: the first configuration stays and a warning says so.
    """
    from .settings import Settings

    options = dict(settings, service_name=service_name, endpoint=endpoint, slo=slo, rum=rum)
    _start(Settings.resolve(options), entry_points=True)


def shutdown(timeout: float | None = None) -> None:
    """Flush and stop telemetry (bounded by ``timeout`` s, default OTEL_PERF_SHUTDOWN_TIMEOUT)."""
    from . import instrumentations, pipeline

    with _lock:
        instrumentations.uninstall()
        pipeline.shutdown(timeout)


def _start(settings: Any, entry_points: bool) -> None:
    global _deferred
    from . import instrumentations, pipeline

    with _lock:
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return  # the specification's off switch: no providers, no instrumentation
        if pipeline.current() is not None or _deferred:
            log.warning("otel-perf: configure() was already called in this process; keeping the first configuration")
            return
        if _is_prefork_master():
            # gunicorn's master serves nothing: start in each worker, so workers never share
            # exporter threads, counts or a service.instance.id with the master.
            _deferred = True
            pipeline.plan_announcement(settings)
            os.register_at_fork(after_in_child=lambda: _start_in_worker(settings, entry_points))
            return
        telemetry = pipeline.start(settings)
        instrumentations.install(telemetry, entry_points=entry_points)


def _start_in_worker(settings: Any, entry_points: bool) -> None:
    global _deferred, _lock
    if not _deferred:
        return
    _deferred = False
    _lock = threading.Lock()
    try:
        _start(settings, entry_points)
    except Exception:
        log.warning("otel-perf: could not start telemetry in worker %d", os.getpid(), exc_info=True)


def _is_prefork_master() -> bool:
    """True in a gunicorn master process (its parent is not gunicorn; its workers' parent is)."""
    if not sys.argv or os.path.basename(sys.argv[0]) != "gunicorn":
        return False
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as fh:
            parent = fh.read().split(b"\0")[:2]  # interpreter and script, or the script alone
    except OSError:
        return False
    return not any(os.path.basename(arg) == b"gunicorn" for arg in parent)
