"""The application's log records as OpenTelemetry logs, without touching its logging set-up,
and otel-perf's own diagnostics on stderr.

A handler on the root logger changes what the program prints: ``logging.basicConfig()`` does
nothing once the root has a handler, and Python's last-resort stderr output stops. So records are
tapped where every logger hands them to its handlers (``Logger.callHandlers``) instead: the
program's handlers, levels and propagation stay exactly as it set them, and we see each record
that a logger let through, once. Texts are scrubbed (``scrub``) before export. otel-perf's own
messages and the SDK's never go to the exporters (a failing pipeline cannot report itself).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from otel_perf._internal.scrub import exception_attributes, scrub_text

_OWN = ("opentelemetry", "otel_perf")
_original_call_handlers = logging.Logger.callHandlers
_tap: Any = None


def diagnostics() -> logging.Logger:
    """otel-perf's logger: always to stderr, WARNING and up, never through the program's handlers
    (which may be the OTLP pipeline that is failing) nor its levels."""
    log = logging.getLogger("otel_perf")
    if not any(getattr(h, "_otel_perf", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._otel_perf = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    log.setLevel(logging.WARNING)
    log.propagate = False
    return log


def start(exporters: list[Any], resource: Any, level: int = logging.WARNING) -> Any:
    """A LoggerProvider exporting to ``exporters``, fed by the tap; returns the provider.

    The SDK's logs package, its batch processor and thread are set up at the first record the
    tap takes (or the first use of the provider through the API): a program that logs nothing at
    WARNING never loads them. The global logger provider is ours from the start."""
    global _tap
    from opentelemetry._logs import set_logger_provider

    provider = _lazy_provider_class()(exporters, resource, level)
    set_logger_provider(provider)
    _tap = _PendingTap(provider, level)
    logging.Logger.callHandlers = _call_handlers  # type: ignore[method-assign]
    return provider


class _PendingTap:
    """The tap until the first record: builds the provider and hands over to its handler."""

    def __init__(self, provider: Any, level: int):
        self.provider = provider
        self.level = level

    def handle(self, record: logging.LogRecord) -> None:
        global _tap
        handler = self.provider.handler()
        if handler is None:
            return
        if _tap is self:
            _tap = handler
        handler.handle(record)


_lazy_provider: Any = None


def _lazy_provider_class() -> Any:
    global _lazy_provider
    if _lazy_provider is not None:
        return _lazy_provider
    import threading

    from opentelemetry._logs import LoggerProvider as ApiLoggerProvider

    class LazyLoggerProvider(ApiLoggerProvider):
        """The SDK LoggerProvider, built at its first use; everything else is delegated to it."""

        def __init__(self, exporters: list[Any], resource: Any, level: int):
            self.built: Any = None  # the SDK provider, once something needed it
            self._handler: Any = None
            self._setup: Any = (exporters, resource, level)
            self._lock = threading.Lock()

        def _build(self) -> Any:
            if self.built is None and self._setup is not None:
                with self._lock:
                    if self.built is None and self._setup is not None:
                        from opentelemetry.sdk._logs import LoggerProvider
                        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

                        from otel_perf._internal.sdk import health

                        (exporters, resource, level), self._setup = self._setup, None
                        provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
                        for exporter in exporters:
                            provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
                        self._handler = _handler_class()(level=level, logger_provider=provider)
                        self.built = provider
                        health.quiet_export_errors()  # the SDK's logs loggers exist only now
            return self.built

        def handler(self) -> Any:
            self._build()
            return self._handler

        def get_logger(self, name: str, version: str | None = None, schema_url: str | None = None,
                       attributes: Any = None) -> Any:
            provider = self._build()
            if provider is None:  # shut down before any use
                from opentelemetry._logs import NoOpLogger

                return NoOpLogger(name, version=version, schema_url=schema_url, attributes=attributes)
            return provider.get_logger(name, version=version, schema_url=schema_url, attributes=attributes)

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True if self.built is None else self.built.force_flush(timeout_millis)

        def shutdown(self) -> None:
            with self._lock:
                self._setup = None  # never built after shutdown
            if self.built is not None:
                self.built.shutdown()

        def __getattr__(self, name: str) -> Any:  # the SDK provider's own API (add_log_record_processor...)
            if name.startswith("__") or name in ("built", "_handler", "_setup", "_lock"):
                raise AttributeError(name)
            provider = self._build()
            if provider is None:
                raise AttributeError(name)
            return getattr(provider, name)

    _lazy_provider = LazyLoggerProvider
    return _lazy_provider


def stop() -> None:
    global _tap
    _tap = None
    logging.Logger.callHandlers = _original_call_handlers  # type: ignore[method-assign]


def _call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
    _original_call_handlers(self, record)
    tap = _tap
    if tap is not None and record.levelno >= tap.level and not record.name.startswith(_OWN):
        try:
            tap.handle(record)
        except Exception:  # telemetry never breaks the program's logging
            pass


_handler: Any = None


def _handler_class() -> Any:
    global _handler
    if _handler is not None:
        return _handler
    from opentelemetry.sdk._logs import LoggingHandler

    class ScrubbingHandler(LoggingHandler):
        """LoggingHandler whose body and exception attributes are scrubbed of quoted values."""

        def emit(self, record: logging.LogRecord) -> None:
            safe = logging.makeLogRecord(vars(record))
            try:
                message = record.getMessage()
            except Exception:
                message = str(record.msg)
            safe.msg, safe.args = scrub_text(message), None
            super().emit(safe)

        @staticmethod
        def _get_attributes(record: logging.LogRecord) -> Any:
            exc_info = record.exc_info
            record.exc_info = None  # ours below, scrubbed, instead of the SDK's verbatim texts
            try:
                attributes = LoggingHandler._get_attributes(record)
            finally:
                record.exc_info = exc_info
            if exc_info and exc_info[1] is not None:
                attributes.update(exception_attributes(exc_info[1]))
            return attributes

    _handler = ScrubbingHandler
    return _handler
