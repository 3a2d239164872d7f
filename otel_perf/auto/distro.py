"""Entry points that make the stock ``opentelemetry-instrument`` use otel-perf."""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.sdk._configuration import _BaseConfigurator


class Distro(BaseDistro):
    """Skips upstream instrumentors that otel-perf replaces (ASGI, psycopg, system metrics)."""

    def _configure(self, **kwargs: Any) -> None:
        pass  # settings are resolved by the Configurator

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        from otel_perf._internal.integrations import REPLACED

        if entry_point.name in REPLACED:
            return
        try:
            super().load_instrumentor(entry_point, **kwargs)
        except Exception:  # upstream would re-raise it into the program; one instrumentation is not worth that
            import logging

            logging.getLogger("otel_perf").warning(
                "otel-perf: could not load instrumentation %s; the program runs without it", entry_point.name,
                exc_info=True)


class Configurator(_BaseConfigurator):
    def _configure(self, **kwargs: Any) -> None:
        from otel_perf._internal import lifecycle
        from otel_perf._internal.config.settings import Settings

        # opentelemetry-instrument loads the entry-point instrumentors itself, through Distro.
        lifecycle.start(Settings.resolve(), entry_points=False)
