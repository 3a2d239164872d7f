"""The integrations: ours (ASGI, psycopg and its pool, process metrics; RUM rides on ASGI) and the
installed upstream instrumentation packages.

Upstream ``opentelemetry-instrumentation-*`` packages are discovered through their
``opentelemetry_instrumentor`` entry points, like ``opentelemetry-instrument`` does. The ones ours
replace are skipped so nothing is instrumented twice; ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
names (e.g. ``asgi``, ``psycopg``, ``system_metrics``) switch off ours and theirs alike.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

log = logging.getLogger("otel_perf")

# entry-point name -> our module that replaces it (and is disabled by the same name)
OURS = {
    "asgi": "otel_perf._internal.integrations.asgi",
    "psycopg": "otel_perf._internal.integrations.psycopg",
    "system_metrics": "otel_perf._internal.integrations.process",
}
REPLACED = frozenset({*OURS, "starlette", "fastapi"})
_INSTRUMENTED: list[Any] = []  # upstream instrumentors this process switched on


def install(telemetry: Any, entry_points: bool = True) -> None:
    disabled = set(telemetry.settings.disabled_instrumentations)
    for name, module in OURS.items():
        if name in disabled:
            continue
        try:
            importlib.import_module(module).install(telemetry)
        except Exception:
            log.warning("otel-perf: could not enable %s instrumentation", name, exc_info=True)
    if entry_points:
        load_entry_points(telemetry, disabled)


def uninstall() -> None:
    for name in OURS.values():
        module = sys.modules.get(name)  # only what install() loaded
        if module is not None:
            module.uninstall()


def load_entry_points(telemetry: Any, disabled: set[str]) -> list[str]:
    """Instrument with every installed upstream instrumentor whose library is present."""
    from importlib.metadata import entry_points

    for instrumentor in _INSTRUMENTED:  # a forked child: re-point them at its new providers
        try:
            instrumentor.uninstrument()
        except Exception:
            log.debug("otel-perf: could not uninstrument %r", instrumentor, exc_info=True)
    _INSTRUMENTED.clear()
    loaded = []
    for ep in entry_points(group="opentelemetry_instrumentor"):
        if ep.name in disabled or ep.name in REPLACED:
            continue
        try:
            # here, not at the top: it imports packaging (~6 % of start-up), needed only for an entry point
            from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

            if ep.dist is not None and get_dist_dependency_conflicts(ep.dist):
                continue  # the library it instruments is not installed (or the wrong version)
            instrumentor = ep.load()()
            instrumentor.instrument(
                tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, skip_dep_check=True
            )
            _INSTRUMENTED.append(instrumentor)
            loaded.append(ep.name)
        except Exception:
            log.warning("otel-perf: could not load instrumentation %s", ep.name, exc_info=True)
    return loaded
