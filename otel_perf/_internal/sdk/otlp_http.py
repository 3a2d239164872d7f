"""OTLP/HTTP exporters without protobuf: the upstream exporters' configuration and HTTP client
(endpoint, headers, compression, timeout, certificates, credential providers, retries with
backoff, the request-size limit), our encoders (``otlp_wire``, ``fast_otlp``).

The upstream OTLP/HTTP exporter classes import protobuf and the generated OTLP modules when they
are imported; these classes are put together from the same protobuf-free upstream pieces
(``opentelemetry.exporter.otlp.common.http`` and the ``_common`` resolvers the upstream exporters
call), so a program that exports never loads protobuf (about 3 MB resident, and CPU at start-up
or at its first export). ``tests/test_otlp_wire.py`` checks the configuration against the
upstream exporters' and the bytes against their encoders.
"""

from __future__ import annotations

import logging
import os
from typing import Any

# The upstream exporters' resolvers (``opentelemetry.exporter.otlp.proto.http._common``), here
# because importing that module imports importlib.metadata (for credential providers, which a
# transport of our own never uses); the test suite checks they agree.
_common_log = logging.getLogger("opentelemetry.exporter.otlp.proto.http._common")
DEFAULT_ENDPOINT = "http://localhost:4318"
DEFAULT_TIMEOUT = 10
DEFAULT_MAX_REQUEST_SIZE = 64 * 1024 * 1024


def _endpoint(variable: str, path: str) -> str:
    endpoint = os.environ.get(variable)
    if endpoint:
        return endpoint
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT
    return f"{base.removesuffix('/')}/{path}"


def _compression(variable: str) -> Any:
    from opentelemetry.exporter.otlp.common import http as _http

    value = (os.environ.get(variable) or os.environ.get("OTEL_EXPORTER_OTLP_COMPRESSION") or "none").lower().strip()
    try:
        return _http.Compression.from_str(value)
    except ValueError:
        _common_log.warning("Unsupported compression type: %s", value)
        return _http.Compression.NONE


def _timeout(variable: str) -> float:
    raw = os.environ.get(variable) or os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT") or DEFAULT_TIMEOUT
    try:
        return float(raw)
    except ValueError:
        _common_log.warning("Invalid timeout value %r, using default of %s seconds", raw, DEFAULT_TIMEOUT)
        return float(DEFAULT_TIMEOUT)


def _headers(variable: str) -> dict[str, str]:
    from opentelemetry.exporter.otlp.proto.http import _OTLP_HTTP_HEADERS
    from opentelemetry.util.re import parse_env_headers

    headers = {k.lower(): v for k, v in _OTLP_HTTP_HEADERS.items()}
    headers.update(parse_env_headers(os.environ.get(variable) or os.environ.get("OTEL_EXPORTER_OTLP_HEADERS", ""),
                                     liberal=True))
    return headers


class OTLPHTTPExporter:
    """What the upstream OTLP/HTTP exporters set up in ``__init__`` for one signal."""

    signal = "TRACES"
    path = "v1/traces"
    kind = "spans"
    component = "OTLP_HTTP_SPAN_EXPORTER"
    metrics_signal = "traces"
    logger_name = "opentelemetry.exporter.otlp.proto.http.trace_exporter"

    def __init__(self, *, _transport: Any = None) -> None:
        from opentelemetry.exporter.otlp.common import http as _http
        from opentelemetry.exporter.otlp.common._exporter_metrics import create_exporter_metrics
        from opentelemetry.semconv._incubating.attributes.otel_attributes import OtelComponentTypeValues

        signal = self.signal
        self._logger = logging.getLogger(self.logger_name)
        self._endpoint = _endpoint(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", self.path)
        self._compression = _compression(f"OTEL_EXPORTER_OTLP_{signal}_COMPRESSION")
        transport = _transport
        if transport is None:  # requests, as upstream builds it (credential provider included)
            from opentelemetry.exporter.otlp.proto.http import _common

            transport = _common._build_transport(  # noqa: SLF001
                None, None, None,
                f"OTEL_EXPORTER_OTLP_{signal}_CERTIFICATE",
                f"OTEL_EXPORTER_OTLP_{signal}_CLIENT_KEY",
                f"OTEL_EXPORTER_OTLP_{signal}_CLIENT_CERTIFICATE",
                session=_common._load_session_from_envvar(  # noqa: SLF001
                    f"OTEL_PYTHON_EXPORTER_OTLP_HTTP_{signal}_CREDENTIAL_PROVIDER"),
            )
        self._max_request_size = DEFAULT_MAX_REQUEST_SIZE
        self._client = _http._OTLPHTTPClient(  # noqa: SLF001
            transport=transport,
            endpoint=self._endpoint,
            kind=self.kind,
            timeout=_timeout(f"OTEL_EXPORTER_OTLP_{signal}_TIMEOUT"),
            compression=self._compression,
            headers=_headers(f"OTEL_EXPORTER_OTLP_{signal}_HEADERS"),
            logger=self._logger,
        )
        self._shutdown = False
        self._metrics = create_exporter_metrics(
            getattr(OtelComponentTypeValues, self.component), self.metrics_signal, self._endpoint, None,
            os.environ.get("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "").strip().lower() == "true",
        )

    def _too_large(self, data: bytes, what: str) -> bool:
        if 0 < self._max_request_size < len(data):
            self._logger.warning("Dropping %s batch: serialized size %d bytes exceeds max_request_size %d bytes.",
                                 what, len(data), self._max_request_size)
            return True
        return False

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        if self._shutdown:
            self._logger.warning("Exporter already shutdown, ignoring call")
            return
        self._shutdown = True
        self._client.shutdown()

    def force_flush(self, *args: Any, **kwargs: Any) -> bool:
        return True  # nothing is buffered here


def metric_exporter(_transport: Any = None) -> Any:
    """The OTLP/HTTP metric exporter: upstream's configuration, preferences and HTTP client,
    encoded by ``otlp_wire``."""
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    from otel_perf._internal.sdk import otlp_wire
    from otel_perf._internal.sdk.lazy import otlp_preferences

    class OTLPMetricExporter(OTLPHTTPExporter, MetricExporter):
        signal = "METRICS"
        path = "v1/metrics"
        kind = "metrics"
        component = "OTLP_HTTP_METRIC_EXPORTER"
        metrics_signal = "metrics"
        logger_name = "opentelemetry.exporter.otlp.proto.http.metric_exporter"

        def __init__(self, *, _transport: Any = None) -> None:
            temporality, aggregation = otlp_preferences()
            MetricExporter.__init__(self, preferred_temporality=temporality, preferred_aggregation=aggregation)
            OTLPHTTPExporter.__init__(self, _transport=_transport)

        def export(self, metrics_data: Any, timeout_millis: float | None = 10_000, **kwargs: Any) -> Any:
            if self._shutdown:
                self._logger.warning("Exporter already shutdown, ignoring batch")
                return MetricExportResult.FAILURE
            try:
                data = otlp_wire.encode_metrics(metrics_data)
            except Exception as error:
                self._logger.error("Failed to encode metrics batch: %s", error)
                return MetricExportResult.FAILURE
            points = sum(len(getattr(m.data, "data_points", ())) for rm in metrics_data.resource_metrics
                         for sm in rm.scope_metrics for m in sm.metrics)
            with self._metrics.export_operation(points) as result:  # the SDK's own exporter metrics, if on
                if self._too_large(data, "metrics"):
                    return MetricExportResult.FAILURE
                sent = self._client.export(data)
                if not sent.success:
                    result.error = sent.error
                    result.error_attrs = ({"http.response.status_code": sent.status_code}
                                          if sent.status_code is not None else None)
                    return MetricExportResult.FAILURE
            return MetricExportResult.SUCCESS

    return OTLPMetricExporter(_transport=_transport)
