"""Route templates: the routes a request matched, never its raw path (bounded cardinality).

Starlette (and FastAPI on top of it) hands a request to each matched route's ``handle``: a
``Mount`` first, then the routes of the mounted app, down to the endpoint's ``Route``. Wrapping
those ``handle`` methods records the chain on the current ``Request`` as it happens, so the
template is the matched routes' own path formats joined (``/org/{org}`` + ``/items/{item_id}``),
whatever values the path carried, on every Starlette version (``scope["route"]`` exists only in
newer ones and never knew the Mount prefixes). Per request this is one context-variable read per
matched level; each route's piece of the template is computed once and kept on the route object.

FastAPI 0.141+ keeps an included router as one route and hands the request to the *original*
route object, shared by every prefix it is included under; the prefixed path is on the
"effective route context" FastAPI puts in the scope just before, so it is read from there.
"""

from __future__ import annotations

from typing import Any

from otel_perf._internal.context import REQUEST
from otel_perf._internal.patching import Originals, when_imported, wrap

_ORIGINALS: Originals = []
_PREFIX = "_otel_perf_prefix"  # on a Mount: (its path prefix, whether it is itself an endpoint)


def route_template(scope: dict) -> str | None:
    """The template of the routes this request has matched so far; None when unmatched."""
    return getattr(scope.get("otel_perf.request"), "route", None)


def patch() -> None:
    when_imported("starlette.routing", _patch_starlette)
    when_imported("fastapi.routing", _patch_fastapi)


def _route_handle(original: Any) -> Any:
    def handle(self: Any, scope: dict, receive: Any, send: Any) -> Any:
        request = REQUEST.get()
        if request is not None:
            path = self.path_format
            fastapi = scope.get("fastapi")
            if fastapi:  # FastAPI 0.141+: an included route's prefixed path
                effective = fastapi.get("effective_route_context")
                if effective is not None and getattr(effective, "original_route", None) is self:
                    path = effective.path_format
            request.route = request.mount + path
        return original(self, scope, receive, send)

    return handle


def _mount_handle(original: Any) -> Any:
    def handle(self: Any, scope: dict, receive: Any, send: Any) -> Any:
        request = REQUEST.get()
        if request is not None:
            cached = self.__dict__.get(_PREFIX)
            if cached is None:
                cached = self.__dict__[_PREFIX] = _mount_prefix(self)
            prefix, endpoint = cached
            request.mount += prefix
            # A mounted app with routes of its own names the rest (or nothing: a 404 inside it);
            # one without (static files, a raw ASGI app) is the endpoint: "/static/{path}".
            request.route = request.mount + "/{path}" if endpoint else None
        return original(self, scope, receive, send)

    return handle


def _mount_prefix(mount: Any) -> tuple[str, bool]:
    path_format = getattr(mount, "path_format", "") or ""
    prefix = path_format.removesuffix("/{path}")  # Mount compiles "<path>/{path:path}"
    try:
        endpoint = not getattr(mount, "routes", None)
    except Exception:
        endpoint = True
    return prefix, endpoint


def _patch_starlette(module: Any) -> None:
    wrap(module.Route, "handle", _route_handle, _ORIGINALS)
    wrap(module.WebSocketRoute, "handle", _route_handle, _ORIGINALS)
    wrap(module.Mount, "handle", _mount_handle, _ORIGINALS)


def _patch_fastapi(module: Any) -> None:
    for name in ("APIRoute", "APIWebSocketRoute"):  # subclasses that override handle()
        cls = getattr(module, name, None)
        if cls is not None and "handle" in cls.__dict__:
            wrap(cls, "handle", _route_handle, _ORIGINALS)
