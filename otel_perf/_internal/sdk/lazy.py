"""OTLP/HTTP exporters built at their first use, not at start-up.

Importing the OTLP exporters brings protobuf, the generated OTLP message modules and
``importlib.metadata`` (the exporters look up credential providers by entry point): about a
sixth of an instrumented program's start-up, before its first line runs. Each exporter here is
built from the same factory, with the same environment, the first time it has something to send
(or to flush); a program that exports nothing loads none of it. What the SDK asks of an exporter
before that (a metric exporter's preferred temporality and aggregation, which the reader copies
when it is created) comes from the same upstream functions the OTLP exporter calls.

An exporter that cannot be built (a bad variable of its own) is disabled with one warning, as
at start-up before; its signal's exports then fail and are counted as failures.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

log = logging.getLogger("otel_perf")


class _Lazy:
    """The exporter ``build()`` returns, built once, on the first call that needs it."""

    def __init__(self, what: str, build: Callable[[], Any]):
        self._what = what
        self._build: Callable[[], Any] | None = build
        self._exporter: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        exporter = self._exporter
        if exporter is not None or self._build is None:
            return exporter
        with self._lock:
            if self._exporter is None and self._build is not None:
                build, self._build = self._build, None
                try:
                    self._exporter = build()
                except Exception as exc:
                    log.warning("otel-perf: %s disabled: %s", self._what,
                                f"{type(exc).__name__}: {exc}".splitlines()[0][:200])
                from otel_perf._internal.sdk import health

                health.quiet_export_errors()  # the exporter's loggers exist only now
            return self._exporter

    @property
    def built(self) -> Any:
        """The exporter, or None while nothing needed it."""
        return self._exporter

    def _flush(self, *args: Any, **kwargs: Any) -> bool:
        exporter = self._exporter  # nothing built: nothing buffered
        return True if exporter is None else exporter.force_flush(*args, **kwargs)

    def _stop(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self._build = None  # never built after shutdown
            exporter = self._exporter
        if exporter is not None:
            exporter.shutdown(*args, **kwargs)


class LazySpanExporter(_Lazy):
    """A SpanExporter (or LogRecordExporter: the same three methods)."""

    def __init__(self, what: str, build: Callable[[], Any], failure: Callable[[], Any]):
        super().__init__(what, build)
        self._failure = failure

    def export(self, batch: Any) -> Any:
        exporter = self._get()
        return self._failure() if exporter is None else exporter.export(batch)

    def force_flush(self, *args: Any, **kwargs: Any) -> bool:
        return self._flush(*args, **kwargs)

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        self._stop(*args, **kwargs)


def otlp_preferences() -> tuple[dict[type, Any], dict[type, Any]]:
    """(preferred temporality, preferred aggregation) as the OTLP metric exporters compute them
    from the environment; their warnings about bad values come once, when the exporter is built."""
    from opentelemetry.exporter.otlp.common import _aggregation

    quiet = _aggregation._logger.disabled  # noqa: SLF001
    _aggregation._logger.disabled = True  # noqa: SLF001
    try:
        return _aggregation._get_temporality(None), _aggregation._get_aggregation(None)  # noqa: SLF001
    finally:
        _aggregation._logger.disabled = quiet  # noqa: SLF001


class LazyMetricExporter(MetricExporter):
    """A MetricExporter with the OTLP exporter's preferences, built at the first export."""

    def __init__(self, what: str, build: Callable[[], Any]):
        temporality, aggregation = otlp_preferences()
        super().__init__(preferred_temporality=temporality, preferred_aggregation=aggregation)
        self._lazy = _Lazy(what, build)

    @property
    def built(self) -> Any:
        return self._lazy.built

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        exporter = self._lazy._get()  # noqa: SLF001
        if exporter is None:
            return MetricExportResult.FAILURE
        return exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, *args: Any, **kwargs: Any) -> bool:
        return self._lazy._flush(*args, **kwargs)  # noqa: SLF001

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        self._lazy._stop(*args, **kwargs)  # noqa: SLF001
