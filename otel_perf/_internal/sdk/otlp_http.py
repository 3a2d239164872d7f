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
        from opentelemetry.exporter.otlp.proto.http import _common
        from opentelemetry.semconv._incubating.attributes.otel_attributes import OtelComponentTypeValues

        signal = self.signal
        self._logger = logging.getLogger(self.logger_name)
        self._endpoint = _common._resolve_endpoint(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", self.path)  # noqa: SLF001
        self._compression = _common._resolve_compression(f"OTEL_EXPORTER_OTLP_{signal}_COMPRESSION")  # noqa: SLF001
        transport = _transport or _common._build_transport(  # noqa: SLF001
            None, None, None,
            f"OTEL_EXPORTER_OTLP_{signal}_CERTIFICATE",
            f"OTEL_EXPORTER_OTLP_{signal}_CLIENT_KEY",
            f"OTEL_EXPORTER_OTLP_{signal}_CLIENT_CERTIFICATE",
            session=_common._load_session_from_envvar(f"OTEL_PYTHON_EXPORTER_OTLP_HTTP_{signal}_CREDENTIAL_PROVIDER"),  # noqa: SLF001
        )
        self._max_request_size = _common._DEFAULT_MAX_REQUEST_SIZE  # noqa: SLF001
        self._client = _http._OTLPHTTPClient(  # noqa: SLF001
            transport=transport,
            endpoint=self._endpoint,
            kind=self.kind,
            timeout=_common._resolve_timeout(f"OTEL_EXPORTER_OTLP_{signal}_TIMEOUT"),  # noqa: SLF001
            compression=self._compression,
            headers=_common._resolve_headers(None, f"OTEL_EXPORTER_OTLP_{signal}_HEADERS"),  # noqa: SLF001
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
