"""Start and stop: configure() and shutdown() behind the public API, pre-fork servers, exit and SIGTERM.

``start`` builds the SDK pipeline (``sdk.providers``) and switches the integrations on;
``shutdown`` switches them off, prints the local summary and flushes within a bounded time. In a
gunicorn master, start waits for each forked worker, so workers never share exporter threads,
counts or a ``service.instance.id``.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from otel_perf._internal import integrations
from otel_perf._internal.config.settings import Settings
from otel_perf._internal.sdk import logs as sdk_logs
from otel_perf._internal.sdk import providers

log = logging.getLogger("otel_perf")
_lock = threading.RLock()  # shutdown may run from a signal handler on the thread that holds it
_deferred = False


def start(settings: Settings, entry_points: bool = True, span_processors: Sequence[Any] = (),
          metric_readers: Sequence[Any] = (), views: Sequence[Any] = ()) -> None:
    """Configure telemetry once per process (a second call warns and keeps the first)."""
    global _deferred
    extras = {"span_processors": span_processors, "metric_readers": metric_readers, "views": views}
    with _lock:
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return  # the specification's off switch: no providers, no instrumentation
        if providers.current() is not None or _deferred:
            log.warning("otel-perf: configure() was already called in this process; keeping the first configuration")
            return
        if _is_prefork_master():
            # gunicorn's master serves nothing: start in each worker instead.
            _deferred = True
            providers.plan_announcement(settings)
            os.register_at_fork(after_in_child=lambda: _start_in_worker(settings, entry_points, extras))
            return
        try:
            telemetry = providers.start(settings, **extras)
        except Exception as exc:  # a problem of the environment: the program runs without telemetry
            log.warning("otel-perf: telemetry disabled, it could not start: %s",
                        f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
            return
        try:
            integrations.install(telemetry, entry_points=entry_points)
        except Exception:
            log.warning("otel-perf: instrumentation failed; telemetry runs without it", exc_info=True)
        atexit.register(shutdown)
        _flush_on_sigterm()


def shutdown(timeout: float | None = None) -> None:
    """Switch the integrations off, print the summary, flush within ``timeout`` s (idempotent)."""
    with _lock:
        integrations.uninstall()
        _flush(timeout)


def flush(timeout: float | None = None) -> None:
    """Export what is buffered within ``timeout`` s; telemetry stays on (for a server that stops
    while the process, and maybe other servers in it, go on)."""
    telemetry = providers.current()
    if telemetry is None:
        return
    sdk_providers = [p for p in (telemetry.tracer_provider, telemetry.meter_provider, telemetry.logger_provider) if p]
    limit = telemetry.settings.shutdown_timeout if timeout is None else timeout
    _bounded(lambda: [p.force_flush(int(limit * 1000)) for p in sdk_providers], limit, "flush")


def _bounded(work: Any, limit: float, what: str) -> None:
    """Run ``work`` on a daemon thread, waiting at most ``limit`` s (a dead Collector makes
    exporters retry with backoff)."""

    def run() -> None:
        try:
            work()
        except Exception:
            log.debug("otel-perf: telemetry %s failed", what, exc_info=True)

    worker = threading.Thread(target=run, name=f"otel-perf-{what}", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        log.warning("otel-perf: telemetry %s did not finish within %.1fs; unsent data dropped", what, limit)


def _start_in_worker(settings: Settings, entry_points: bool, extras: dict[str, Any]) -> None:
    global _deferred, _lock
    if not _deferred:
        return
    _deferred = False
    _lock = threading.RLock()
    try:
        start(settings, entry_points, **extras)
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


def _flush(timeout: float | None) -> None:
    """Print the summary (if any), then flush and stop the providers within ``timeout`` seconds."""
    telemetry = providers.take_current()
    if telemetry is None:
        return
    if telemetry.summary is not None:
        try:
            telemetry.summary.emit(telemetry.settings.summary_file)
        except Exception:  # never let reporting break the exit
            log.warning("otel-perf: could not print the summary", exc_info=True)
    sdk_providers = [p for p in (telemetry.tracer_provider, telemetry.meter_provider, telemetry.logger_provider) if p]
    limit = telemetry.settings.shutdown_timeout if timeout is None else timeout
    if telemetry.logger_provider is not None:
        sdk_logs.stop()  # the program's logging goes on without us

    def stop_all() -> None:
        for provider in sdk_providers:
            try:
                provider.shutdown()
            except Exception:
                log.debug("otel-perf: provider shutdown failed", exc_info=True)

    _bounded(stop_all, limit, "flush")


def _flush_on_sigterm() -> None:
    """Flush before dying of SIGTERM, then die of it as before (atexit does not run on a signal).

    Only where SIGTERM still has its default action: servers that handle it (uvicorn, gunicorn)
    replace this handler, and uvicorn re-raises the signal through it after its own shutdown.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        shutdown()
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    signal.signal(signal.SIGTERM, on_sigterm)


