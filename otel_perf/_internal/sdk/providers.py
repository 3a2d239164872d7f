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

from otel_perf._internal import VERSION, workers
from otel_perf._internal.config.settings import Settings
from otel_perf._internal.sdk import health, logs
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
    plan: Any = None  # (exporter per signal, local): a forked child reuses it instead of probing again


_current: Telemetry | None = None


def current() -> Telemetry | None:
    """The running Telemetry of this process, or None before configure()."""
    return _current


def start(settings: Settings, span_processors: Sequence[Any] = (), metric_readers: Sequence[Any] = (),
          views: Sequence[Any] = (), plan: Any = None) -> Telemetry:
    """Build and install the providers for ``settings``, plus the application's own span
    processors, metric readers and views; returns the new Telemetry."""
    global _current
    logs.diagnostics()
    _apply_env_defaults(settings)
    exporters, local = plan or _plan_exports(settings)
    health.EXPORT_ERRORS.destination = _destination(settings, exporters)
    resource = _resource(settings)

    tracer_provider = TracerProvider(resource=resource, sampler=_sampler(settings), shutdown_on_exit=False)
    for kind in exporters["traces"]:
        span_exporter = _optional(f"{kind} span exporter", _span_exporter, kind, settings)
        if span_exporter is None:
            continue
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider.add_span_processor(
            BatchSpanProcessor(
                health.CountingSpanExporter(span_exporter),
                max_queue_size=settings.bsp_max_queue_size,
                schedule_delay_millis=settings.bsp_schedule_delay,
                max_export_batch_size=min(settings.bsp_max_export_batch_size, settings.bsp_max_queue_size),
            )
        )
    for processor in span_processors:
        tracer_provider.add_span_processor(processor)
    readers = [r for kind in exporters["metrics"] for r in _optional(f"{kind} metrics", _metric_readers, kind, settings) or ()]
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[*readers, *metric_readers], views=list(views), shutdown_on_exit=False,
    )
    log_exporters = [e for kind in exporters["logs"] for e in [_optional(f"{kind} log exporter", _log_exporter, kind)] if e]
    logger_provider = logs.start(log_exporters, resource) if log_exporters else None

    if not _set_global(tracer_provider, meter_provider):
        log.warning("otel-perf: another OpenTelemetry SDK was already installed globally; ours records alongside it")

    summary = None
    if summary_wanted(settings, local):
        from otel_perf._internal.summary import Summary

        summary = Summary(settings.slo, service=resource.attributes.get("service.name", ""))
    _current = Telemetry(settings, tracer_provider, meter_provider, local, summary, logger_provider, (exporters, local))
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


def _plan_exports(settings: Settings) -> tuple[dict[str, list[str]], bool]:
    """Decide each signal's exporters; OTLP with nowhere to go turns into local mode."""
    plan = {s: [k for k in getattr(settings, f"{s}_exporter").split(",") if k != "none"] for s in SIGNALS}
    otlp = [s for s in SIGNALS if "otlp" in plan[s]]
    if not otlp:
        return plan, False
    configured = settings.endpoint or any(os.environ.get(f"OTEL_EXPORTER_OTLP_{s.upper()}_ENDPOINT") for s in otlp)
    protocols = {s: _supported(settings.protocol_for(s)) for s in otlp}
    if not configured:
        wanted = set(protocols.values()) - {None} or set(_OTLP_PORTS)
        listening = [p for p in ("http/protobuf", "grpc") if p in wanted and _port_open(_OTLP_PORTS[p])]
        if not listening:
            for s in otlp:
                plan[s].remove("otlp")
            _announce(
                "otel-perf: no Collector on localhost:4318/4317 and no OTEL_EXPORTER_OTLP_ENDPOINT set: "
                "telemetry stays local, SLA summary at exit"
            )
            return plan, True
        protocols = {s: p or listening[0] for s, p in protocols.items()}
    for s in otlp:
        plan[s] = [f"otlp:{protocols[s] or 'http/protobuf'}" if k == "otlp" else k for k in plan[s]]
    return plan, False


def _supported(protocol: str | None) -> str | None:
    """http/json is valid (the specification's third protocol) but Python's exporters only encode
    protobuf: send http/protobuf to the same endpoint, which every Collector accepts too."""
    if protocol == "http/json":
        _announce("otel-perf: OTEL_EXPORTER_OTLP_PROTOCOL=http/json is not available in Python's OTLP exporters; "
                  "sending http/protobuf to the same endpoint", key="OTEL_PERF_ANNOUNCED_JSON")
        return "http/protobuf"
    return protocol


def _destination(settings: Settings, plan: dict[str, list[str]]) -> str:
    """Where OTLP data goes, for the export-failure warning."""
    kinds = {k for kinds in plan.values() for k in kinds if k.startswith("otlp:")}
    if not kinds:
        return "the configured exporters"
    endpoint = settings.endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        per_signal = [os.environ.get(f"OTEL_EXPORTER_OTLP_{s.upper()}_ENDPOINT") for s in SIGNALS]
        endpoint = ", ".join(e for e in per_signal if e) or "localhost:4318/4317"
    return f"{endpoint} ({', '.join(sorted(k.removeprefix('otlp:') for k in kinds))})"


def _optional(what: str, build: Any, *args: Any) -> Any:
    """Build one exporter or reader; a problem of the environment (a port in use, a missing
    library) disables that piece with one warning instead of stopping the program."""
    try:
        return build(*args)
    except Exception as exc:
        log.warning("otel-perf: %s disabled: %s", what, f"{type(exc).__name__}: {exc}".splitlines()[0][:200])
        return None


def plan_announcement(settings: Settings) -> bool:
    """Say once, in a parent process, where telemetry will go (workers inherit the silence);
    True in local mode."""
    return _plan_exports(settings)[1]


def summary_wanted(settings: Settings, local: bool) -> bool:
    return settings.summary == "true" or (settings.summary == "auto" and local)


def _announce(line: str, key: str = "OTEL_PERF_ANNOUNCED") -> None:
    """Print ``line`` once per program, not once per worker process."""
    if os.environ.get(key) != "1":
        os.environ[key] = "1"
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
        attributes["service.name"] = workers.default_service_name()
    return Resource.create(attributes)


def name_service(settings: Settings) -> None:
    """Decide the default service name now (a supervisor, for the workers it starts)."""
    if not settings.service_name and "service.name" not in (settings.resource_attributes or {}):
        workers.default_service_name()


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
        from opentelemetry.sdk.trace.export import SpanExportResult

        from otel_perf._internal.sdk.lazy import LazySpanExporter

        def build() -> Any:
            from otel_perf._internal.sdk.fast_otlp import FastOTLPSpanExporter
            from otel_perf._internal.sdk.http_transport import transport_for

            return FastOTLPSpanExporter(_transport=transport_for("TRACES"))

        return LazySpanExporter(f"{kind} span exporter", build, lambda: SpanExportResult.FAILURE)
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
        from otel_perf._internal.sdk.lazy import LazyMetricExporter

        def build() -> Any:
            from otel_perf._internal.sdk.http_transport import transport_for
            from otel_perf._internal.sdk.otlp_http import metric_exporter

            return metric_exporter(_transport=transport_for("METRICS"))

        exporter = LazyMetricExporter(f"{kind} metrics", build)
        return [PeriodicExportingMetricReader(exporter, export_interval_millis=interval)]
    return []


def _log_exporter(kind: str) -> Any:
    """Application logs (WARNING and above by default) as OTLP log records, linked to the trace."""
    if kind == "console":
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter as Exporter
    elif kind == "otlp:grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as Exporter
    elif kind == "otlp:http/protobuf":
        from otel_perf._internal.sdk.lazy import LazySpanExporter

        def build() -> Any:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

            from otel_perf._internal.sdk.http_transport import transport_for

            return OTLPLogExporter(_transport=transport_for("LOGS"))

        def failure() -> Any:
            from opentelemetry.sdk._logs.export import LogRecordExportResult

            return LogRecordExportResult.FAILURE

        return LazySpanExporter(f"{kind} log exporter", build, failure)
    else:
        return None
    return Exporter()


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


