"""Start and stop: configure() and shutdown() behind the public API, pre-fork servers, exit and SIGTERM.

``start`` builds the SDK pipeline (``sdk.providers``) and switches the integrations on;
``shutdown`` switches them off, prints the local summary and flushes within a bounded time. In a
supervisor (gunicorn's master, uvicorn with several workers or --reload) start waits for the
workers; after any fork the child starts anew, so processes never share exporter threads, counts
or a ``service.instance.id``; the first process merges every worker's summary into one.
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

from otel_perf._internal import integrations, workers
from otel_perf._internal.config.settings import Settings
from otel_perf._internal.patching import when_imported
from otel_perf._internal.sdk import forks, providers
from otel_perf._internal.sdk import logs as sdk_logs

log = logging.getLogger("otel_perf")
_lock = threading.RLock()  # shutdown may run from a signal handler on the thread that holds it
_deferred = False  # a supervisor: telemetry starts in its workers
_started: tuple[Settings, bool, dict[str, Any]] | None = None  # what start() was given, for forks
_exit_registered = False
_forks_watched = False


def start(settings: Settings, entry_points: bool = True, span_processors: Sequence[Any] = (),
          metric_readers: Sequence[Any] = (), views: Sequence[Any] = ()) -> None:
    """Configure telemetry once per process (a second call warns and keeps the first)."""
    global _deferred, _started
    extras = {"span_processors": span_processors, "metric_readers": metric_readers, "views": views}
    with _lock:
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return  # the specification's off switch: no providers, no instrumentation
        if providers.current() is not None or _deferred:
            log.warning("otel-perf: configure() was already called in this process; keeping the first configuration")
            return
        _started = (settings, entry_points, extras)
        if workers.is_supervisor():
            # gunicorn's master, uvicorn --workers/--reload: they serve nothing and must hold no
            # exporter, port or count. Telemetry starts in each worker (forked: _after_fork;
            # spawned: the worker's own start-up); this process names the service for them all
            # and merges their summaries when it exits, after them.
            _deferred = True
            _watch_forks()
            local = providers.plan_announcement(settings)
            providers.name_service(settings)
            if providers.summary_wanted(settings, local):
                from otel_perf._internal.summary import shared

                shared.join()
                if shared.is_owner():
                    atexit.register(_merge_summaries, settings)
            return
        _start(settings, entry_points, extras)


def _start(settings: Settings, entry_points: bool, extras: dict[str, Any], plan: Any = None) -> None:
    try:
        telemetry = providers.start(settings, plan=plan, **extras)
    except Exception as exc:  # a problem of the environment: the program runs without telemetry
        log.warning("otel-perf: telemetry disabled, it could not start: %s",
                    f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
        return
    if telemetry.summary is not None:
        from otel_perf._internal.summary import shared

        shared.join()  # the first process of the service merges the others' summaries
    try:
        integrations.install(telemetry, entry_points=entry_points)
    except Exception:
        log.warning("otel-perf: instrumentation failed; telemetry runs without it", exc_info=True)
    _watch_forks()
    global _exit_registered
    if not _exit_registered:
        _exit_registered = True
        atexit.register(shutdown)
        when_imported("multiprocessing.util", _flush_in_multiprocessing_children)
    _flush_on_sigterm()


class _Children:
    """multiprocessing's after-fork registry holds its key weakly: one module-level instance."""


_CHILDREN = _Children()


def _flush_in_multiprocessing_children(util: Any) -> None:
    """A multiprocessing child ends with os._exit (no atexit): flush from its exit finalizers."""

    def in_child(_: Any) -> None:
        util.Finalize(None, shutdown, exitpriority=0)

    util.register_after_fork(_CHILDREN, in_child)


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
    if telemetry.summary is not None:
        # A pre-fork worker may die of the signal its server re-raises (no atexit): leave its part now.
        try:
            from otel_perf._internal.summary import shared

            shared.leave(telemetry.summary)
        except Exception:
            log.debug("otel-perf: could not leave the summary part", exc_info=True)


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


def _after_fork() -> None:
    """Any fork starts clean (gunicorn workers, ``python -m gunicorn``, multiprocessing, uWSGI,
    Celery prefork): the parent's providers are silenced, and new ones, with a new
    ``service.instance.id``, an empty summary and threads of their own, start in the child."""
    global _deferred, _lock
    _lock = threading.RLock()
    shared = sys.modules.get("otel_perf._internal.summary.shared")  # none loaded: no summary to share
    if shared is not None:
        shared.forked()
    if _started is None:
        return
    inherited = providers.take_current()
    if inherited is None and not _deferred:
        return  # shut down before the fork
    _deferred = False
    plan = None
    if inherited is not None:
        forks.abandon(inherited)
        plan = inherited.plan
    settings, entry_points, extras = _started
    try:
        integrations.uninstall()
        _start(settings, entry_points, extras, plan)
    except Exception:
        log.warning("otel-perf: could not start telemetry in process %d", os.getpid(), exc_info=True)


def _merge_summaries(settings: Settings) -> None:
    """A supervisor's exit: one summary for every worker's requests."""
    try:
        from otel_perf._internal.summary import Summary, shared

        summary = Summary(settings.slo, service=os.environ.get(workers.DEFAULT_ENV, settings.service_name or ""))
        shared.gather(summary)
        summary.emit(settings.summary_file)
    except Exception:
        log.warning("otel-perf: could not print the summary", exc_info=True)


def _watch_forks() -> None:
    """Registered once, after the SDK is set up: at-fork hooks run in registration order, and
    libraries that hold a lock across fork (concurrent.futures, used by the SDK's resource
    detection) must have released theirs before ours starts new providers in the child."""
    global _forks_watched
    if not _forks_watched:
        _forks_watched = True
        os.register_at_fork(after_in_child=_after_fork)


def _flush(timeout: float | None) -> None:
    """Print the summary (if any), then flush and stop the providers within ``timeout`` seconds."""
    telemetry = providers.take_current()
    if telemetry is None:
        return
    if telemetry.summary is not None:
        try:
            from otel_perf._internal.summary import shared

            if not shared.leave(telemetry.summary):  # a worker leaves its part to the first process
                shared.gather(telemetry.summary)
                telemetry.summary.emit(telemetry.settings.summary_file)
        except Exception:  # never let reporting break the exit
            log.warning("otel-perf: could not print the summary", exc_info=True)
    if telemetry.logger_provider is not None:
        sdk_logs.stop()  # the program's logging goes on without us
    sdk_providers = [p for p in (telemetry.tracer_provider, telemetry.meter_provider, telemetry.logger_provider) if p]
    limit = telemetry.settings.shutdown_timeout if timeout is None else timeout

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


