"""ASGI server telemetry (Starlette, FastAPI, any ASGI app): the middleware and the patches that
install it into unmodified programs."""

from __future__ import annotations

from typing import Any

from otel_perf._internal.integrations.asgi import middleware, servers


def install(telemetry: Any) -> None:
    """Point the middleware at ``telemetry`` and patch the ASGI servers/frameworks (idempotent)."""
    uninstall()
    middleware.ACTIVE = middleware.Instruments(telemetry)
    servers.patch()


def uninstall() -> None:
    if middleware.ACTIVE is not None and middleware.ACTIVE.profiler is not None:
        middleware.ACTIVE.profiler.stop()
    middleware.ACTIVE = None
