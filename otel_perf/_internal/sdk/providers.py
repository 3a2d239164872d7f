"""Tracer, meter and logger providers and their exporters, built from the Settings.

Exports go to OTLP when an endpoint is configured or a Collector answers on localhost:4318/4317;
otherwise the process runs in *local mode*: nothing is exported and the SLA summary is printed at
exit. Export failures never reach the host program: they are counted (the SDK's own
``otel.sdk.*`` metrics) and reported as one rate-limited warning.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider, sampling

from otel_perf._internal import VERSION
from otel_perf._internal.config.settings import Settings
from otel_perf._internal.sdk import health
from otel_perf._internal.sdk.health import SIGNALS

log = logging.getLogger("otel_perf")

_OTLP_PORTS = {"http/protobuf": 4318, "grpc": 4317}


@dataclass
class Telemetry:
    settings: Settings
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    local: bool
    summary: Any = None  # summary.Summary in local mode (or when OTEL_PERF_SUMMARY=true)
    logger_provider: Any = None


_current: Telemetry | None = None


def current() -> Telemetry | None:
    """The running Telemetry of this process, or None before configure()."""
    return _current


def start(settings: Settings, span_processors: Sequence[Any] = (), metric_readers: Sequence[Any] = (),
          views: Sequence[Any] = ()) -> Telemetry:
    """Build and install the providers for ``settings``, plus the application's own span
    processors, metric readers and views; returns the new Telemetry."""
    global _current
    _apply_env_defaults(settings)
    exporters, local = _plan_exports(settings)
    resource = _resource(settings)

    tracer_provider = TracerProvider(resource=resource, sampler=_sampler(settings), shutdown_on_exit=False)
    span_exporter = _span_exporter(exporters["traces"], settings)
    if span_exporter is not None:
        span_exporter = health.CountingSpanExporter(span_exporter)
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider.add_span_processor(
            BatchSpanProcessor(
                span_exporter,
                max_queue_size=settings.bsp_max_queue_size,
                schedule_delay_millis=settings.bsp_schedule_delay,
                max_export_batch_size=min(settings.bsp_max_export_batch_size, settings.bsp_max_queue_size),
            )
        )
    for processor in span_processors:
        tracer_provider.add_span_processor(processor)
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[*_metric_readers(exporters["metrics"], settings), *metric_readers],
        views=list(views), shutdown_on_exit=False,
    )
    logger_provider = _logger_provider(exporters["logs"], settings, resource)

    if not _set_global(tracer_provider, meter_provider):
        log.warning("otel-perf: another OpenTelemetry SDK was already installed globally; ours records alongside it")

    summary = None
    if settings.summary == "true" or (settings.summary == "auto" and local):
        from otel_perf._internal.summary import Summary

        summary = Summary(settings.slo, service=resource.attributes.get("service.name", ""))
    _current = Telemetry(settings, tracer_provider, meter_provider, local, summary, logger_provider)
    health.HEALTH.observe(meter_provider)
    health.quiet_export_errors()
    return _current


def take_current() -> Telemetry | None:
    """Detach the running Telemetry (shutdown owns it from here)."""
    global _current
    telemetry, _current = _current, None
    return telemetry


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
        "telemetry.distro.version": VERSION,
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
        from otel_perf._internal.sdk.fast_otlp import FastOTLPSpanExporter
        from otel_perf._internal.sdk.http_transport import transport_for

        return FastOTLPSpanExporter(_transport=transport_for("TRACES"))
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

        from otel_perf._internal.sdk.http_transport import transport_for

        exporter = OTLPMetricExporter(_transport=transport_for("METRICS"))
        return [PeriodicExportingMetricReader(exporter, export_interval_millis=interval)]
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
    if kind == "otlp:http/protobuf":
        from otel_perf._internal.sdk.http_transport import transport_for

        exporter = Exporter(_transport=transport_for("LOGS"))
    else:
        exporter = Exporter()
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
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


