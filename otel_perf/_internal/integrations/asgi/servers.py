"""Patches that put the middleware around unmodified programs: uvicorn's ``Config.load`` and
Starlette/FastAPI's ``build_middleware_stack``; plus a flush when uvicorn shuts down, route
templates from the matched routes (``routes``), an INTERNAL span per background task, and
FastAPI's own telemetry switched off while ours runs."""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind

from otel_perf._internal import routes
from otel_perf._internal.context import REQUEST
from otel_perf._internal.integrations.asgi import django, middleware
from otel_perf._internal.integrations.asgi.middleware import OtelPerfMiddleware
from otel_perf._internal.patching import Originals, when_imported, wrap


def patch() -> None:
    """Patch each server/framework when (or if) the program imports it."""
    when_imported("uvicorn.config", _patch_uvicorn)
    when_imported("uvicorn.server", _patch_uvicorn_shutdown)
    when_imported("starlette.applications", _patch_starlette)
    when_imported("fastapi.applications", _patch_fastapi)
    routes.patch()
    django.patch()
    when_imported("starlette.background", _patch_background)
    # FastAPI 0.16x instruments itself whenever global providers exist (ours): a second SERVER
    # span in another trace and a second duration series without the SLA buckets. Off while
    # ours runs (OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=asgi gives FastAPI's back).
    when_imported("fastapi.telemetry._asgi", _patch_fastapi_telemetry)
    when_imported("fastapi.telemetry._runtime", _patch_fastapi_exporters)


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


def _native_enabled(original: Any) -> Any:
    def enabled(self: Any) -> bool:
        return False if middleware.ACTIVE is not None else original(self)

    return enabled


def _no_extra_exporters(original: Any) -> Any:
    """FASTAPI_OTEL_AUTO_CONFIGURE would add a second OTLP exporter to our providers."""

    def configure_from_environment(config: Any) -> None:
        if middleware.ACTIVE is None:
            original(config)

    return configure_from_environment


def _patch_fastapi_telemetry(module: Any) -> None:
    wrap(module.NativeTelemetry, "enabled", _native_enabled, _ORIGINALS)


def _patch_fastapi_exporters(module: Any) -> None:
    wrap(module, "_configure_from_environment", _no_extra_exporters, _ORIGINALS)


def _background_call(original: Any) -> Any:
    """A background task runs after the response's last byte, outside the request's duration:
    it gets its own INTERNAL span (a child of the request's), and its statements no longer
    count towards the request (N+1)."""

    async def call(self: Any) -> None:
        ins = middleware.ACTIVE
        if ins is None:
            return await original(self)
        func = self.func
        name = getattr(func, "__qualname__", None) or type(func).__qualname__
        token = REQUEST.set(None)
        try:
            with ins.tracer.start_as_current_span(
                f"background {name}", kind=SpanKind.INTERNAL,
                attributes={"code.function.name": f"{getattr(func, '__module__', '')}.{name}"},
            ):
                await original(self)
        finally:
            REQUEST.reset(token)

    return call


def _patch_background(module: Any) -> None:
    wrap(module.BackgroundTask, "__call__", _background_call, _ORIGINALS)
