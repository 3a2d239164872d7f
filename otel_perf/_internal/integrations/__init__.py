"""The integrations: ours (ASGI, psycopg and its pool, process metrics; RUM rides on ASGI) and the
installed upstream instrumentation packages.

Upstream ``opentelemetry-instrumentation-*`` packages are discovered through their
``opentelemetry_instrumentor`` entry points, like ``opentelemetry-instrument`` does. The ones ours
replace are skipped so nothing is instrumented twice; ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
names (e.g. ``asgi``, ``psycopg``, ``system_metrics``) switch off ours and theirs alike.
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
import threading
from typing import Any

log = logging.getLogger("otel_perf")

# entry-point name -> our module that replaces it (and is disabled by the same name)
OURS = {
    "asgi": "otel_perf._internal.integrations.asgi",
    "psycopg": "otel_perf._internal.integrations.psycopg",
    "system_metrics": "otel_perf._internal.integrations.process",
}
REPLACED = frozenset({*OURS, "starlette", "fastapi"})
GROUP = "opentelemetry_instrumentor"
_INSTRUMENTED: list[Any] = []  # upstream instrumentors this process switched on


# ours that switch on only once the program imports one of these (the ASGI middleware and its
# tracing, propagation and profiler modules are a tenth of start-up; a program without an ASGI
# framework never needs them). The integration's own package is one of them: a program that adds
# the middleware by hand imports it (its hook runs once the whole package has loaded).
TRIGGERS = {
    "asgi": ("uvicorn", "starlette", "fastapi", "django", "otel_perf._internal.integrations.asgi"),
}
_waiting: dict[str, Any] = {}  # integration -> the telemetry it starts with when triggered
_hooked: set[str] = set()
_lock = threading.RLock()


def install(telemetry: Any, entry_points: bool = True) -> None:
    disabled = set(telemetry.settings.disabled_instrumentations)
    for name, module in OURS.items():
        if name in disabled:
            continue
        triggers = TRIGGERS.get(name, ())
        if triggers and module not in sys.modules and not any(t in sys.modules for t in triggers):
            with _lock:
                _waiting[name] = telemetry
                first = name not in _hooked
                _hooked.add(name)
            if first:
                from otel_perf._internal.patching import when_imported

                for trigger in triggers:
                    when_imported(trigger, functools.partial(_triggered, name))
            continue
        _install(name, module, telemetry)
    if entry_points:
        load_entry_points(telemetry, disabled)


def _install(name: str, module: str, telemetry: Any) -> None:
    try:
        importlib.import_module(module).install(telemetry)
    except Exception:
        log.warning("otel-perf: could not enable %s instrumentation", name, exc_info=True)


def _triggered(name: str, _module: Any) -> None:
    with _lock:
        telemetry = _waiting.pop(name, None)
    if telemetry is not None:  # outside the lock: it imports, and imports run hooks
        _install(name, OURS[name], telemetry)


def uninstall() -> None:
    with _lock:
        _waiting.clear()
    for name in OURS.values():
        module = sys.modules.get(name)  # only what install() loaded
        if module is not None:
            module.uninstall()


def load_entry_points(telemetry: Any, disabled: set[str]) -> list[str]:
    """Instrument with every installed upstream instrumentor whose library is present."""
    for instrumentor in _INSTRUMENTED:  # a forked child: re-point them at its new providers
        try:
            instrumentor.uninstrument()
        except Exception:
            log.debug("otel-perf: could not uninstrument %r", instrumentor, exc_info=True)
    _INSTRUMENTED.clear()
    loaded: list[str] = []
    if not _may_declare(GROUP, disabled | REPLACED):
        return loaded
    from importlib.metadata import entry_points

    for ep in entry_points(group=GROUP):
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


_STANDARD_FINDERS = ("BuiltinImporter", "FrozenImporter", "PathFinder")


def _may_declare(group: str, ignored: set[str] | frozenset[str] = frozenset()) -> bool:
    """False only when no installed distribution declares an entry point in ``group`` other than
    the ``ignored`` names: a look at the ``entry_points.txt`` files that ``importlib.metadata``
    would read, without importing it (with its email, zipfile and pathlib, a tenth of an
    instrumented program's start-up and most of a megabyte). Anything it does not recognise (a zip
    or egg file on sys.path, a finder of distributions of its own) answers True, and the full scan
    decides."""
    import os

    for finder in sys.meta_path:
        if hasattr(finder, "find_distributions") and getattr(finder, "__name__", type(finder).__name__) not in _STANDARD_FINDERS:
            return True
    for entry in sys.path:
        entry = entry or "."
        try:
            children = os.listdir(entry)
        except NotADirectoryError:
            return True  # a zip file or an egg: the full scan reads those
        except OSError:
            continue  # a missing entry holds nothing
        if entry.lower().endswith(".egg"):
            children = [*children, "EGG-INFO"]
        for child in children:
            low = child.lower()
            if not (low.endswith((".dist-info", ".egg-info")) or low == "egg-info"):
                continue
            try:
                with open(os.path.join(entry, child, "entry_points.txt"), encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
            except OSError:
                continue
            if any(name not in ignored for name in _declared(text, group)):
                return True
    return False


def _declared(text: str, group: str) -> list[str]:
    """The entry-point names an ``entry_points.txt`` declares in ``group`` (an unreadable line counts
    as a name nobody ignores)."""
    names: list[str] = []
    section = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]").strip()
        elif section == group:
            name, sep, _ = line.partition("=")
            names.append(name.strip() if sep else "\0")
    return names
