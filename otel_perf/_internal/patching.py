"""Run a patch when a module is imported, without importing it ourselves.

Importing uvicorn, Starlette or psycopg eagerly would cost every program their start-up time; a
post-import hook patches each one the moment the program imports it.

The hooks work like wrapt's (``wrapt.register_post_import_hook``): a finder first on
``sys.meta_path`` that answers only for hooked names, asks the finders behind it for the real
spec and wraps its loader, so the hooks run right after the module's own code; the finder never
leaves ``sys.meta_path``, so imports of hooked modules on several threads are each patched. It is
written here on the standard library alone because importing wrapt (which imports asyncio and
importlib.metadata) was a fifth of an instrumented program's start-up.
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

log = logging.getLogger("otel_perf")

_hooks: dict[str, list[Callable[[ModuleType], None]]] = {}
_lock = threading.RLock()
_finder: Any = None


def when_imported(name: str, patch: Callable[[ModuleType], None]) -> None:
    """Call ``patch(module)`` now if ``name`` is imported, else right after its import."""
    global _finder
    module = sys.modules.get(name)
    if module is not None and getattr(getattr(module, "__spec__", None), "_initializing", False):
        # Another thread is still executing it (it is in sys.modules from the start): patching now
        # would meet a half-built module. importlib waits for that import to finish.
        importlib.import_module(name)
    with _lock:
        if _finder is None:
            _finder = _HookFinder()
            sys.meta_path.insert(0, _finder)
        module = sys.modules.get(name)
        if module is None:
            _hooks.setdefault(name, []).append(patch)
    if module is not None:  # outside the lock: a patch may import, and imports may register hooks
        _apply(patch, module)


def _loaded(module: ModuleType) -> None:
    """The module's own code has run: run its hooks, once."""
    with _lock:
        hooks = _hooks.pop(getattr(module, "__name__", None), ())
    for patch in hooks:
        _apply(patch, module)


class _HookFinder:
    """Answers only for hooked module names: the spec the other finders give, its loader wrapped."""

    def __init__(self) -> None:
        self._busy = threading.local()  # names this thread is looking up (finders may re-enter)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in _hooks:
            return None
        busy = self._busy.__dict__.setdefault("names", set())
        if fullname in busy:
            return None
        busy.add(fullname)
        try:
            for finder in list(sys.meta_path):
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            busy.discard(fullname)
        loader = getattr(spec, "loader", None)
        if loader is not None and not isinstance(loader, _HookLoader):
            spec.loader = _HookLoader(loader)
        return spec

    def invalidate_caches(self) -> None:
        pass


class _HookLoader:
    """Delegates to the real loader, puts it back on the module before its code runs (the
    module sees its own loader), and runs the hooks after."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader
        if hasattr(loader, "create_module"):
            self.create_module = loader.create_module
        if hasattr(loader, "exec_module"):
            self.exec_module = self._exec_module
        if hasattr(loader, "load_module"):
            self.load_module = self._load_module

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, get_code...
        return getattr(self._loader, name)

    def _restore(self, module: ModuleType) -> None:
        if getattr(module, "__loader__", None) in (None, self):
            try:
                module.__loader__ = self._loader
            except AttributeError:
                pass
        spec = getattr(module, "__spec__", None)
        if spec is not None and getattr(spec, "loader", None) is self:
            spec.loader = self._loader

    def _exec_module(self, module: ModuleType) -> None:
        self._restore(module)
        self._loader.exec_module(module)
        _loaded(module)

    def _load_module(self, fullname: str) -> ModuleType:
        module = self._loader.load_module(fullname)
        self._restore(module)
        _loaded(module)
        return module


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
