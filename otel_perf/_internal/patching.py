"""Run a patch when a module is imported, without importing it ourselves.

Importing uvicorn, Starlette or psycopg eagerly would cost every program their start-up time;
a meta-path hook patches each one the moment the program imports it.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import logging
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

log = logging.getLogger("otel_perf")
_hooks: dict[str, list[Callable[[ModuleType], None]]] = {}
_lock = threading.RLock()


def when_imported(name: str, patch: Callable[[ModuleType], None]) -> None:
    """Call ``patch(module)`` now if ``name`` is imported, else right after its import."""
    with _lock:
        module = sys.modules.get(name)
        if module is None or getattr(module, "__spec__", None) is None:
            _hooks.setdefault(name, []).append(patch)
            if not any(isinstance(f, _Finder) for f in sys.meta_path):
                sys.meta_path.insert(0, _Finder())
            return
    _apply(patch, module)


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


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        if fullname not in _hooks:
            return None
        sys.meta_path.remove(self)  # let the real finders locate the module
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _Loader(spec.loader, fullname)
        return spec


class _Loader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, name: str):
        self._loader = loader
        self._name = name

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        with _lock:
            patches = _hooks.pop(self._name, [])
        for patch in patches:
            _apply(patch, module)

    def __getattr__(self, name: str):  # get_data, get_filename, ... for tracebacks and pkgutil
        return getattr(self._loader, name)
