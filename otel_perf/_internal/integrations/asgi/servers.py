"""Patches that put the middleware around unmodified programs: uvicorn's ``Config.load`` and
Starlette/FastAPI's ``build_middleware_stack``; plus a flush when uvicorn shuts down."""

from __future__ import annotations

from typing import Any

from otel_perf._internal.integrations.asgi.middleware import OtelPerfMiddleware
from otel_perf._internal.patching import Originals, when_imported, wrap


def patch() -> None:
    """Patch each server/framework when (or if) the program imports it."""
    when_imported("uvicorn.config", _patch_uvicorn)
    when_imported("uvicorn.server", _patch_uvicorn_shutdown)
    when_imported("starlette.applications", _patch_starlette)
    when_imported("fastapi.applications", _patch_fastapi)


def _wrap(app: Any) -> Any:
    return app if isinstance(app, OtelPerfMiddleware) else OtelPerfMiddleware(app)


_ORIGINALS: Originals = []  # kept for good: the middleware passes through once uninstalled


def _load(original: Any) -> Any:
    def load(self: Any) -> None:
        original(self)
        self.loaded_app = _wrap(self.loaded_app)

    return load


def _shutdown(original: Any) -> Any:
    """Flush when uvicorn has drained its connections: it may then re-raise SIGTERM/SIGINT, and a
    process killed by a signal runs no atexit handler (gunicorn's UvicornWorker included).

    A flush, not a shutdown: one ``Server`` stopping is not the process ending (tests, several
    servers, a server restarted in-process), so telemetry stays on; and it runs on a thread, so
    other servers and tasks on this event loop keep being served meanwhile."""

    async def shutdown(self: Any, sockets: Any = None) -> None:
        try:
            await original(self, sockets)
        finally:
            import asyncio

            from otel_perf._internal import lifecycle

            try:
                await asyncio.to_thread(lifecycle.flush)
            except Exception:  # never let telemetry fail a server's shutdown
                pass

    return shutdown


def _build_middleware_stack(original: Any) -> Any:
    def build_middleware_stack(self: Any) -> Any:
        return _wrap(original(self))

    return build_middleware_stack


def _patch_uvicorn(module: Any) -> None:
    wrap(module.Config, "load", _load, _ORIGINALS)


def _patch_uvicorn_shutdown(module: Any) -> None:
    wrap(module.Server, "shutdown", _shutdown, _ORIGINALS)


def _patch_starlette(module: Any) -> None:
    wrap(module.Starlette, "build_middleware_stack", _build_middleware_stack, _ORIGINALS)


def _patch_fastapi(module: Any) -> None:
    wrap(module.FastAPI, "build_middleware_stack", _build_middleware_stack, _ORIGINALS)
