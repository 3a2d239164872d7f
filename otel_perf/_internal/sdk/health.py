"""Pipeline health: exports and drops counted (observed at collection time), export errors turned
into one rate-limited warning instead of a traceback stream, never an exception in the program."""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_perf._internal import catalogue

log = logging.getLogger("otel_perf")

SIGNALS = ("traces", "metrics", "logs")


class Health:
    """Pipeline health counters: updated per export batch or per drop, read at collection time."""

    def __init__(self) -> None:
        self.spans_exported = 0
        self.spans_failed = 0
        self.spans_dropped = 0
        self.failures = {signal: 0 for signal in SIGNALS}

    def observe(self, meter_provider: MeterProvider) -> None:
        meter = meter_provider.get_meter("otel_perf.pipeline")
        meter.create_observable_counter(
            catalogue.SDK_SPANS_EXPORTED.name, unit=catalogue.SDK_SPANS_EXPORTED.unit,
            description=catalogue.SDK_SPANS_EXPORTED.description,
            callbacks=[lambda _: [Observation(self.spans_exported),
                                  Observation(self.spans_failed, {"error.type": "export_failed"})]],
        )
        meter.create_observable_counter(
            catalogue.SDK_SPANS_PROCESSED.name, unit=catalogue.SDK_SPANS_PROCESSED.unit,
            description=catalogue.SDK_SPANS_PROCESSED.description,
            callbacks=[lambda _: [Observation(self.spans_dropped, {"error.type": "queue_full"})]],
        )
        meter.create_observable_counter(
            catalogue.EXPORT_FAILURES.name, unit=catalogue.EXPORT_FAILURES.unit,
            description=catalogue.EXPORT_FAILURES.description,
            callbacks=[lambda _: [Observation(n, {"signal": s}) for s, n in self.failures.items()]],
        )


HEALTH = Health()


class CountingSpanExporter:
    """Counts exported and failed spans per batch; never lets an exporter exception escape."""

    def __init__(self, exporter: Any):
        self._exporter = exporter

    def export(self, spans: Any) -> Any:
        try:
            result = self._exporter.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            HEALTH.spans_exported += len(spans)
        else:
            HEALTH.spans_failed += len(spans)
            HEALTH.failures["traces"] += 1
        return result

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)


class _ExportErrorFilter(logging.Filter):
    """Turn the SDK's per-attempt export errors into counts and one warning per interval; every
    other SDK message passes through untouched."""

    interval = 60.0

    def __init__(self) -> None:
        super().__init__()
        self.suppressed = 0
        self.destination = "the configured exporters"
        self._last = -self.interval

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        try:
            message = record.getMessage()
        except Exception:
            return True
        text = message.lower()
        if not text.startswith(_EXPORT_PROBLEMS):
            return True
        # Span export failures are counted by CountingSpanExporter; the rest only show up here
        # (the gRPC exporter logs every signal under one logger, so the message names the signal).
        if text.startswith("queue full, dropping span"):
            HEALTH.spans_dropped += 1
        elif "metric" in record.name or "metric" in text:
            HEALTH.failures["metrics"] += 1
        elif "_log_exporter" in record.name or " logs" in text or "log record" in text:
            HEALTH.failures["logs"] += 1
        self.suppressed += 1
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            log.warning(
                "otel-perf: telemetry is NOT being delivered to %s (%d export problems so far; data is dropped "
                "after retries and counted in otel_perf.exporter.failures; this warning repeats at most once a "
                "minute): %s",
                self.destination, self.suppressed, message.splitlines()[0][:200],
            )
        return False


# The beginnings of the SDK's and OTLP exporters' messages about a failed or dropped export.
_EXPORT_PROBLEMS = (
    "failed to export", "transient error", "exception while exporting", "queue full, dropping",
    "queue is full", "dropping ", "shutdown in progress, aborting retry", "metric collection timed out",
    "timeout while exporting", "failed to encode",
)
EXPORT_ERRORS = _ExportErrorFilter()
_NOISY_PREFIXES = ("opentelemetry.exporter", "opentelemetry.sdk")


def quiet_export_errors() -> None:
    # Logger filters do not see records propagated from children: attach to every exporter/SDK
    # logger that exists now (start() has imported the exporters by then).
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(_NOISY_PREFIXES):
            logger = logging.getLogger(name)
            if EXPORT_ERRORS not in logger.filters:
                logger.addFilter(EXPORT_ERRORS)
