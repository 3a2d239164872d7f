"""Run a patch when a module is imported, without importing it ourselves.

Importing uvicorn, Starlette or psycopg eagerly would cost every program their start-up time; a
post-import hook patches each one the moment the program imports it. The hooks are wrapt's
(a dependency of opentelemetry-instrumentation already): its import finder never leaves
``sys.meta_path``, so imports of hooked modules on several threads at once are each patched.
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import wrapt

log = logging.getLogger("otel_perf")


def when_imported(name: str, patch: Callable[[ModuleType], None]) -> None:
    """Call ``patch(module)`` now if ``name`` is imported, else right after its import."""
    module = sys.modules.get(name)
    if module is not None and getattr(getattr(module, "__spec__", None), "_initializing", False):
        # Another thread is still executing it (it is in sys.modules from the start): patching now
        # would meet a half-built module. importlib waits for that import to finish.
        importlib.import_module(name)
    wrapt.register_post_import_hook(lambda module: _apply(patch, module), name)


Originals = list[tuple[type, str, Any]]


def wrap(cls: type, name: str, wrapper: Callable[[Any], Any], originals: Originals) -> None:
    """Replace ``cls.name`` by ``wrapper(original)`` unless already wrapped; remember the original."""
    original = cls.__dict__.get(name)
    if original is None or getattr(original, "_otel_perf", False):
        return
    wrapped = functools.wraps(original)(wrapper(original))
    wrapped._otel_perf = True
    setattr(cls, name, wrapped)
    originals.append((cls, name, original))


def restore(originals: Originals) -> None:
    """Put back every method ``wrap`` replaced, newest first."""
    while originals:
        cls, name, original = originals.pop()
        setattr(cls, name, original)


def _apply(patch: Callable[[ModuleType], None], module: ModuleType) -> None:
    try:
        patch(module)
    except Exception:  # a library version we do not know must not stop the program
        log.warning("otel-perf: could not instrument %s", module.__name__, exc_info=True)
