"""Route templates: the matched route of a request, never its raw path (bounded cardinality).

Shared by the ASGI middleware (``http.route``, span names, the summary) and RUM (the page route
a beacon may name).
"""

from __future__ import annotations


def route_template(scope: dict) -> str | None:
    """The matched route's template (Starlette/FastAPI), never the raw path; None when unmatched."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)  # without ":int" convertors
    if not isinstance(path, str):
        return None
    root, app_root = scope.get("root_path", ""), scope.get("app_root_path", scope.get("root_path", ""))
    if len(root) > len(app_root):  # inside a Mount: its matched prefix, with parameter values put back
        prefix = root[len(app_root):]
        params = scope.get("path_params") or {}
        if params:
            values = {str(v): k for k, v in params.items()}
            prefix = "/".join(f"{{{values[s]}}}" if s in values else s for s in prefix.split("/"))
        return prefix + path
    return path
