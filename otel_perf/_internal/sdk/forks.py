"""A forked child starts clean: the parent's pipeline exports nothing from it.

``os.fork`` copies the parent's providers into the child: their queued spans, their cumulative
metric state and their ``service.instance.id``; the SDK even restarts their export threads there.
Left alone, the child would export the parent's counts a second time under the parent's
identity. ``abandon`` silences those copies (their exporters drop everything; the periodic
metric reader stops without its final export) and frees the API's set-once globals, so the
child's own, new providers become the global ones. Tracers or meters the application took from
the globals before the fork stay bound to the silenced copies: take them after start-up in
each worker, or from ``opentelemetry.trace.get_tracer`` at call time.
"""

from __future__ import annotations

from typing import Any


class _Drop:
    """An exporter that drops everything (for signals of every kind)."""

    def export(self, batch: Any, *args: Any, **kwargs: Any) -> Any:
        from opentelemetry.sdk.metrics.export import MetricExportResult
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS if not hasattr(batch, "resource_metrics") else MetricExportResult.SUCCESS

    def force_flush(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:  # exporter attributes a reader may read
        return None


def abandon(telemetry: Any) -> None:
    """Silence the copies of the parent's providers in this (forked) child. Never raises."""
    drop = _Drop()
    try:
        for reader in getattr(telemetry.meter_provider._sdk_config, "metric_readers", ()):  # noqa: SLF001
            event = getattr(reader, "_shutdown_event", None)
            if event is not None:
                event.set()  # the restarted ticker exits at once
            if hasattr(reader, "_exporter"):
                reader._exporter = drop  # noqa: SLF001 - and its final collection goes nowhere
    except Exception:
        pass
    try:
        processors = telemetry.tracer_provider._active_span_processor._span_processors  # noqa: SLF001
        for processor in processors:
            batch = getattr(processor, "_batch_processor", processor)
            if hasattr(batch, "_exporter"):
                batch._exporter = drop  # noqa: SLF001
    except Exception:
        pass
    try:
        logs = getattr(telemetry.logger_provider, "built", telemetry.logger_provider)  # never built: nothing to silence
        if logs is not None:
            for processor in logs._multi_log_record_processor._log_record_processors:  # noqa: SLF001
                batch = getattr(processor, "_batch_processor", processor)
                if hasattr(batch, "_exporter"):
                    batch._exporter = drop  # noqa: SLF001
    except Exception:
        pass
    _free_globals()


def _free_globals() -> None:
    """Let the child's new providers become the API's global ones (set-once per process)."""
    from opentelemetry import trace
    from opentelemetry.metrics import _internal as metrics_api
    from opentelemetry.util._once import Once

    trace._TRACER_PROVIDER_SET_ONCE = Once()  # noqa: SLF001
    trace._TRACER_PROVIDER = None  # noqa: SLF001
    metrics_api._METER_PROVIDER_SET_ONCE = Once()  # noqa: SLF001
    metrics_api._METER_PROVIDER = None  # noqa: SLF001
    try:
        from opentelemetry._logs import _internal as logs_api

        logs_api._LOGGER_PROVIDER_SET_ONCE = Once()  # noqa: SLF001
        logs_api._LOGGER_PROVIDER = None  # noqa: SLF001
    except Exception:
        pass
