"""Django over ASGI: ``http.route`` from the URL resolver's matched pattern.

Django resolves a request's URL once, in ``BaseHandler.resolve_request``; its ``ResolverMatch``
carries ``route``, the matched patterns of every ``include()`` joined (``api/v1/items/<int:pk>``),
which is what the semantic conventions and Django's own instrumentation report. We add the
leading slash every other framework's template has (``/api/v1/items/<int:pk>``); ``re_path``
patterns are reported as Django gives them.
"""

from __future__ import annotations

from typing import Any

from otel_perf._internal.context import REQUEST
from otel_perf._internal.patching import Originals, when_imported, wrap

_ORIGINALS: Originals = []
_TEMPLATES: dict[str, str] = {}  # Django's route -> ours; bounded by the URLconf


def patch() -> None:
    when_imported("django.core.handlers.base", _patch_handler)


def _resolve_request(original: Any) -> Any:
    def resolve_request(self: Any, request: Any) -> Any:
        match = original(self, request)  # raises Resolver404: no route, as it should be
        current = REQUEST.get()
        if current is not None:
            route = getattr(match, "route", None)
            if isinstance(route, str):
                template = _TEMPLATES.get(route)
                if template is None:
                    template = _TEMPLATES[route] = route if route.startswith("^") else "/" + route
                current.route = template
        return match

    return resolve_request


def _patch_handler(module: Any) -> None:
    wrap(module.BaseHandler, "resolve_request", _resolve_request, _ORIGINALS)
