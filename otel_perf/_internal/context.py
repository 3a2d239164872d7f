"""The per-request state every integration shares.

The ASGI middleware opens a ``Request`` for each HTTP request and makes it current; the other
integrations (database statements for N+1 detection, RUM) read it from here and register work for
the request's end with ``on_end``. They depend on this module, never on each other.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace


class Request:
    """One HTTP request in flight: its SERVER span, method, route template and integration state."""

    __slots__ = ("span", "method", "route", "mount", "on_end", "db")

    def __init__(self, span: trace.Span, method: str):
        self.span = span
        self.method = method
        self.route: str | None = None  # set by the framework integration as routes match
        self.mount = ""  # the matched Mount prefixes so far (Starlette)
        self.on_end: list[Callable[[Request], None]] = []  # called before the span ends
        self.db: Any = None  # the database integration's per-request counts


REQUEST: ContextVar[Request | None] = ContextVar("otel_perf.request", default=None)
