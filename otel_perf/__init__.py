"""otel-perf: OpenTelemetry for Python performance SLAs.

``configure()`` once at start-up (or run the program under ``otel-perf run``); ``shutdown()`` to
flush early. Everything else is configuration: see the README's settings table.
"""

from __future__ import annotations

from otel_perf._internal import VERSION as __version__
from otel_perf._internal.config.errors import ConfigError

TYPE_CHECKING = False  # not typing's: `otel-perf run` imports this package and must start fast
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.metrics.view import View
    from opentelemetry.sdk.trace import SpanProcessor

    from otel_perf._internal.integrations.asgi.middleware import OtelPerfMiddleware
    from otel_perf._internal.query_classes import query_class

__all__ = ["configure", "shutdown", "ConfigError", "query_class", "OtelPerfMiddleware", "__version__"]


def configure(
    *,
    # OpenTelemetry SDK settings: each defaults to its OTEL_* variable (see the README's table).
    service_name: str | None = None,
    resource_attributes: Mapping[str, str] | str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    traces_protocol: str | None = None,
    metrics_protocol: str | None = None,
    logs_protocol: str | None = None,
    compression: str | None = None,
    timeout: float | None = None,
    traces_exporter: str | None = None,
    metrics_exporter: str | None = None,
    logs_exporter: str | None = None,
    sampler: str | None = None,
    sampler_arg: float | None = None,
    metric_export_interval: float | None = None,
    bsp_schedule_delay: float | None = None,
    bsp_max_queue_size: int | None = None,
    bsp_max_export_batch_size: int | None = None,
    disabled_instrumentations: Sequence[str] | str | None = None,
    semconv_opt_in: str | None = None,
    # otel-perf's own: each defaults to its OTEL_PERF_* variable.
    config: str | None = None,
    summary: str | None = None,
    summary_file: str | None = None,
    server_timing: bool | None = None,
    shutdown_timeout: float | None = None,
    rum: bool | None = None,
    rum_prefix: str | None = None,
    rum_inject: bool | None = None,
    rum_rate_limit: float | None = None,
    db_shape_label: bool | None = None,
    db_sqlcommenter: bool | None = None,
    db_stat_statements_dsn: str | None = None,
    db_stat_statements_interval: float | None = None,
    db_stat_statements_top: int | None = None,
    db_plans: bool | None = None,
    db_plan_interval: float | None = None,
    db_plan_dsn: str | None = None,
    profile: bool | None = None,
    profile_interval: float | None = None,
    slo: Mapping[str, Any] | None = None,
    # Your own SDK components, added beside otel-perf's.
    span_processors: Sequence[SpanProcessor] = (),
    metric_readers: Sequence[MetricReader] = (),
    views: Sequence[View] = (),
) -> None:
    """Set up traces, metrics and logs and instrument the program.

    Keyword arguments override ``OTEL_*``/``OTEL_PERF_*`` variables, which override the YAML
    file (``config=`` or ``OTEL_PERF_CONFIG``). Raises ConfigError for invalid values. Calling it
    again is harmless: the first configuration stays and a warning says so.
    """
    options = {k: v for k, v in locals().items() if k not in ("span_processors", "metric_readers", "views")}
    from otel_perf._internal import lifecycle
    from otel_perf._internal.config.settings import Settings

    lifecycle.start(Settings.resolve(options), span_processors=span_processors, metric_readers=metric_readers,
                    views=views)


def shutdown(timeout: float | None = None) -> None:
    """Flush and stop telemetry (bounded by ``timeout`` s, default OTEL_PERF_SHUTDOWN_TIMEOUT)."""
    from otel_perf._internal import lifecycle

    lifecycle.shutdown(timeout)


# Imported on first use: `import otel_perf` (and so `otel-perf run`) stays cheap at start-up.
_LAZY = {
    "OtelPerfMiddleware": "otel_perf._internal.integrations.asgi.middleware",
    "query_class": "otel_perf._internal.query_classes",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'otel_perf' has no attribute {name!r}")
