"""Tracer, meter and logger providers, their exporters, and a bounded, quiet shutdown.

Exports go to OTLP when an endpoint is configured or a Collector answers on localhost:4318/4317;
otherwise the process runs in *local mode*: nothing is exported and the SLA summary is printed at
exit. Export failures never reach the host program: they are counted (the SDK's own
``otel.sdk.*`` metrics) and reported as one rate-limited warning.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider, sampling

from .settings import Settings

log = logging.getLogger("otel_perf")

SIGNALS = ("traces", "metrics", "logs")
_OTLP_PORTS = {"http/protobuf": 4318, "grpc": 4317}


@dataclass
class Telemetry:
    settings: Settings
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    local: bool
    summary: Any = None  # report.Summary in local mode (or when OTEL_PERF_SUMMARY=true)
    logger_provider: Any = None


_current: Telemetry | None = None


def current() -> Telemetry | None:
    """The running Telemetry of this process, or None before configure()."""
    return _current


def start(settings: Settings) -> Telemetry:
    """Build and install the providers for ``settings``; returns the new Telemetry."""
    global _current
    _apply_env_defaults(settings)
    exporters, local = _plan_exports(settings)
    resource = _resource(settings)

    tracer_provider = TracerProvider(resource=resource, sampler=_sampler(settings), shutdown_on_exit=False)
    span_exporter = _span_exporter(exporters["traces"], settings)
    if span_exporter is not None:
        span_exporter = _CountingSpanExporter(span_exporter)
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider.add_span_processor(
            BatchSpanProcessor(
                span_exporter,
                max_queue_size=settings.bsp_max_queue_size,
                schedule_delay_millis=settings.bsp_schedule_delay,
                max_export_batch_size=min(settings.bsp_max_export_batch_size, settings.bsp_max_queue_size),
            )
        )
    meter_provider = MeterProvider(
        resource=resource, metric_readers=_metric_readers(exporters["metrics"], settings), shutdown_on_exit=False
    )
    logger_provider = _logger_provider(exporters["logs"], settings, resource)

    if not _set_global(tracer_provider, meter_provider):
        log.warning("otel-perf: another OpenTelemetry SDK was already installed globally; ours records alongside it")

    summary = None
    if settings.summary == "true" or (settings.summary == "auto" and local):
        from .report import Summary

        summary = Summary(settings.slo, service=resource.attributes.get("service.name", ""))
    _current = Telemetry(settings, tracer_provider, meter_provider, local, summary, logger_provider)
    HEALTH.observe(meter_provider)
    _quiet_export_errors()
    atexit.register(_at_exit)
    _flush_on_sigterm()
    return _current


def shutdown(timeout: float | None = None) -> None:
    """Print the summary (if any), then flush and stop the providers within ``timeout`` seconds."""
    global _current
    telemetry, _current = _current, None
    if telemetry is None:
        return
    if telemetry.summary is not None:
        try:
            telemetry.summary.emit(telemetry.settings.summary_file)
        except Exception:  # never let reporting break the exit
            log.warning("otel-perf: could not print the summary", exc_info=True)
    providers = [p for p in (telemetry.tracer_provider, telemetry.meter_provider, telemetry.logger_provider) if p]
    limit = telemetry.settings.shutdown_timeout if timeout is None else timeout

    def flush() -> None:
        for provider in providers:
            try:
                provider.shutdown()
            except Exception:
                log.debug("otel-perf: provider shutdown failed", exc_info=True)

    # A dead Collector makes exporters retry with backoff; a daemon thread bounds how long we wait.
    worker = threading.Thread(target=flush, name="otel-perf-shutdown", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        log.warning("otel-perf: telemetry flush did not finish within %.1fs; unsent data dropped", limit)


def _at_exit() -> None:
    shutdown()


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


# -- configuration pieces ------------------------------------------------------------------------


def _apply_env_defaults(settings: Settings) -> None:
    """Settings the SDK and upstream instrumentations read from the environment themselves."""
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", settings.semconv_opt_in)
    # The SDK's own OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED adds two counter updates to every
    # span (~30 µs); ours count per export batch or per drop instead (see _Health).
    for name, env in (("endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT"), ("compression", "OTEL_EXPORTER_OTLP_COMPRESSION"),
                      ("timeout", "OTEL_EXPORTER_OTLP_TIMEOUT")):
        value = getattr(settings, name)
        if value is not None:  # kwargs or the YAML file: hand them to the exporters the same way
            os.environ[env] = f"{value:g}" if isinstance(value, float) else str(value)


def _plan_exports(settings: Settings) -> tuple[dict[str, str], bool]:
    """Decide each signal's exporter; OTLP with nowhere to go turns into local mode."""
    plan = {s: getattr(settings, f"{s}_exporter") for s in SIGNALS}
    otlp = [s for s in SIGNALS if plan[s] == "otlp"]
    if not otlp:
        return plan, False
    configured = settings.endpoint or any(os.environ.get(f"OTEL_EXPORTER_OTLP_{s.upper()}_ENDPOINT") for s in otlp)
    protocols = {s: settings.protocol_for(s) for s in otlp}
    if not configured:
        wanted = set(protocols.values()) - {None} or set(_OTLP_PORTS)
        listening = [p for p in ("http/protobuf", "grpc") if p in wanted and _port_open(_OTLP_PORTS[p])]
        if not listening:
            for s in otlp:
                plan[s] = "none"
            _announce(
                "otel-perf: no Collector on localhost:4318/4317 and no OTEL_EXPORTER_OTLP_ENDPOINT set: "
                "telemetry stays local, SLA summary at exit"
            )
            return plan, True
        protocols = {s: p or listening[0] for s, p in protocols.items()}
    for s in otlp:
        plan[s] = f"otlp:{protocols[s] or 'http/protobuf'}"
    return plan, False


def plan_announcement(settings: Settings) -> None:
    """Say once, in a parent process, where telemetry will go (workers inherit the silence)."""
    _plan_exports(settings)


def _announce(line: str) -> None:
    """Print ``line`` once per program, not once per worker process."""
    if os.environ.get("OTEL_PERF_ANNOUNCED") != "1":
        os.environ["OTEL_PERF_ANNOUNCED"] = "1"
        print(line, file=sys.stderr, flush=True)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.05):
            return True
    except OSError:
        return False


def _resource(settings: Settings) -> Resource:
    attributes: dict[str, Any] = {
        "telemetry.distro.name": "otel-perf",
        "telemetry.distro.version": _version(),
    }
    attributes.update(settings.resource_attributes or {})
    if settings.service_name:
        attributes["service.name"] = settings.service_name
    elif not os.environ.get("OTEL_SERVICE_NAME") and "service.name" not in attributes:
        attributes["service.name"] = _program_name()
    return Resource.create(attributes)


def _program_name() -> str:
    """A useful default service name: the script or module being run, not ``unknown_service``."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return spec.name.removesuffix(".__main__")
    argv0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return os.path.splitext(argv0)[0] if argv0 not in ("", "-c", "-m") else "unknown_service:python"


def _version() -> str:
    from . import __version__

    return __version__


def _sampler(settings: Settings) -> sampling.Sampler:
    ratio = settings.sampler_arg
    return {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(ratio),
        "parentbased_always_on": sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": sampling.ParentBased(sampling.TraceIdRatioBased(ratio)),
    }[settings.sampler]


def _span_exporter(kind: str, settings: Settings):
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind == "otlp:grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if kind == "otlp:http/protobuf":
        from .otlp import FastOTLPSpanExporter

        return FastOTLPSpanExporter()
    return None


def _metric_readers(kind: str, settings: Settings) -> list:
    interval = settings.metric_export_interval
    if kind == "prometheus":
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server

        host = os.environ.get("OTEL_EXPORTER_PROMETHEUS_HOST", "localhost")
        port = int(os.environ.get("OTEL_EXPORTER_PROMETHEUS_PORT", "9464"))
        start_http_server(port=port, addr=host)
        return [PrometheusMetricReader()]
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    if kind == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return [PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=interval)]
    if kind == "otlp:grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return [PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=interval)]
    if kind == "otlp:http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return [PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=interval)]
    return []


def _logger_provider(kind: str, settings: Settings, resource: Resource):
    """Application logs (WARNING and above by default) as OTLP log records, linked to the trace."""
    if not kind.startswith("otlp") and kind != "console":
        return None
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    if kind == "console":
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter as Exporter
    elif kind == "otlp:grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as Exporter
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as Exporter
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(Exporter()))
    set_logger_provider(provider)
    handler = LoggingHandler(level=logging.WARNING, logger_provider=provider)
    handler.addFilter(lambda record: not record.name.startswith(("opentelemetry", "otel_perf")))
    logging.getLogger().addHandler(handler)
    return provider


def _set_global(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> bool:
    """Install as the global providers; False when someone else already did."""
    ok = True
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(tracer_provider)
    else:
        ok = False
    if isinstance(metrics.get_meter_provider(), metrics._internal._ProxyMeterProvider):  # noqa: SLF001
        metrics.set_meter_provider(meter_provider)
    else:
        ok = False
    return ok


# -- export errors: counted, one warning a minute, never a traceback stream ---------------------------


class _Health:
    """Pipeline health counters: updated per export batch or per drop, read at collection time."""

    def __init__(self) -> None:
        self.spans_exported = 0
        self.spans_failed = 0
        self.spans_dropped = 0
        self.failures = {signal: 0 for signal in SIGNALS}

    def observe(self, meter_provider: MeterProvider) -> None:
        from opentelemetry.metrics import Observation

        from . import semconv

        meter = meter_provider.get_meter("otel_perf.pipeline")
        meter.create_observable_counter(
            semconv.SDK_SPANS_EXPORTED.name, unit=semconv.SDK_SPANS_EXPORTED.unit,
            description=semconv.SDK_SPANS_EXPORTED.description,
            callbacks=[lambda _: [Observation(self.spans_exported),
                                  Observation(self.spans_failed, {"error.type": "export_failed"})]],
        )
        meter.create_observable_counter(
            semconv.SDK_SPANS_PROCESSED.name, unit=semconv.SDK_SPANS_PROCESSED.unit,
            description=semconv.SDK_SPANS_PROCESSED.description,
            callbacks=[lambda _: [Observation(self.spans_dropped, {"error.type": "queue_full"})]],
        )
        meter.create_observable_counter(
            semconv.EXPORT_FAILURES.name, unit=semconv.EXPORT_FAILURES.unit,
            description=semconv.EXPORT_FAILURES.description,
            callbacks=[lambda _: [Observation(n, {"signal": s}) for s, n in self.failures.items()]],
        )


HEALTH = _Health()


class _CountingSpanExporter:
    """Counts exported and failed spans per batch; never lets an exporter exception escape."""

    def __init__(self, exporter: Any):
        self._exporter = exporter

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

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
    """Swallow the SDK's per-attempt errors; count drops and surface one warning per interval."""

    interval = 60.0

    def __init__(self) -> None:
        super().__init__()
        self.suppressed = 0
        self._last = -self.interval

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        message = record.getMessage()
        text = message.lower()
        # Span export failures are counted by _CountingSpanExporter; the rest only show up here
        # (the gRPC exporter logs every signal under one logger, so the message names the signal).
        if text.startswith("queue full, dropping span"):
            HEALTH.spans_dropped += 1
        elif "metric" in record.name or "metric" in text:
            HEALTH.failures["metrics"] += 1
        elif "_log_exporter" in record.name or " logs" in text:
            HEALTH.failures["logs"] += 1
        self.suppressed += 1
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            log.warning(
                "otel-perf: telemetry export failing (%d problems so far); data is dropped after retries and "
                "counted (otel_perf.exporter.failures); check the Collector: %s",
                self.suppressed,
                message.splitlines()[0][:200],
            )
        return False


EXPORT_ERRORS = _ExportErrorFilter()
_NOISY_PREFIXES = ("opentelemetry.exporter", "opentelemetry.sdk")


def _quiet_export_errors() -> None:
    # Logger filters do not see records propagated from children: attach to every exporter/SDK
    # logger that exists now (start() has imported the exporters by then).
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(_NOISY_PREFIXES):
            logger = logging.getLogger(name)
            if EXPORT_ERRORS not in logger.filters:
                logger.addFilter(EXPORT_ERRORS)
    if not logging.getLogger("otel_perf").handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger("otel_perf").addHandler(handler)
