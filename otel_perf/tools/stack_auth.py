"""Authentication on every port the stack publishes beyond localhost (``otel-perf validate``).

The exposed configuration is ``compose.yaml`` plus ``compose.exposed.yaml`` beside it (and the
Collector overlay that names). Each published port must belong to a service that authenticates:
the Collector's OTLP receivers by an authenticator extension, Prometheus and Alertmanager by a web
configuration (and no lifecycle API), Grafana by its login with anonymous access off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

EXPOSED = "compose.exposed.yaml"


def problems(compose_path: Path) -> list[str]:
    """Messages for ``compose_path`` (the base compose file); [] when every published port is guarded."""
    base = yaml.safe_load(compose_path.read_text()) or {}
    if base.get("name") != "otel-perf":
        return []  # not this project's stack
    out = []
    services = base.get("services") or {}
    for name, svc in services.items():
        if (svc or {}).get("ports") and "preflight" in services and "preflight" not in (svc.get("depends_on") or {}):
            out.append(f"services.{name}: publishes ports without waiting for the preflight check")
    overlay_path = compose_path.with_name(EXPOSED)
    if not overlay_path.exists():
        return out + [f"no {EXPOSED} beside it: nothing authenticates OTLP when STACK_BIND exposes the stack"]
    merged = _merge(base, yaml.safe_load(overlay_path.read_text()) or {})
    for name, svc in (merged.get("services") or {}).items():
        if not (svc or {}).get("ports"):
            continue
        reason = _unauthenticated(name, svc, compose_path.parent)
        if reason:
            ports = ", ".join(str(p).rsplit(":", 1)[-1] for p in svc["ports"])
            out.append(f"services.{name} (port {ports}) is published without authentication in the exposed "
                       f"configuration: {reason}")
    return out


def _unauthenticated(name: str, svc: dict[str, Any], folder: Path) -> str | None:
    argv = [str(a) for a in (svc.get("entrypoint") or []) + (svc.get("command") or [])]
    env = svc.get("environment") or {}
    if "otelcol" in str(svc.get("image", "")) or name.startswith("otel-"):
        return _collector(argv, svc, folder)
    if "prom/prometheus" in str(svc.get("image", "")):
        if "--web.enable-lifecycle" in argv:
            return "--web.enable-lifecycle lets anyone who can log in shut it down"
        if not any(a.startswith("--web.config.file") or a.endswith("prometheus/entrypoint.sh") for a in argv):
            return "no --web.config.file (basic auth)"
        return None
    if "alertmanager" in str(svc.get("image", "")):
        return None if any(a.startswith("--web.config.file") for a in argv) else "no --web.config.file (basic auth)"
    if str(svc.get("image", "")).startswith("grafana/grafana"):
        if str(env.get("GF_AUTH_ANONYMOUS_ENABLED", "false")).lower() != "false":
            return "anonymous access is on"
        return None if "GF_SECURITY_ADMIN_PASSWORD" in env else "no admin password"
    return "no known authentication for this service"


def _collector(argv: list[str], svc: dict[str, Any], folder: Path) -> str | None:
    """Every OTLP protocol of the effective config (base + overlays) names a defined, running authenticator."""
    mounts = {str(v).split(":")[1]: folder / str(v).split(":")[0] for v in svc.get("volumes") or [] if ":" in str(v)}
    config: dict[str, Any] = {}
    for arg in argv:
        if arg.startswith("--config="):
            source = mounts.get(arg.split("=", 1)[1])
            if source is None or not source.exists():
                return f"{arg} is not a file of this folder"
            try:
                config = _merge(config, yaml.safe_load(source.read_text()) or {}, replace_lists=True)
            except yaml.YAMLError:
                return f"{source.name} is not valid YAML"
    extensions = config.get("extensions") or {}
    running = (config.get("service") or {}).get("extensions") or []
    for receiver, rcfg in (config.get("receivers") or {}).items():
        for protocol, pcfg in ((rcfg or {}).get("protocols") or {}).items():
            authenticator = ((pcfg or {}).get("auth") or {}).get("authenticator")
            if not authenticator:
                return f"receivers.{receiver}.protocols.{protocol} has no auth.authenticator"
            if authenticator not in extensions or authenticator not in running:
                return f"authenticator {authenticator!r} is not a running extension"
    return None


def _merge(a: Any, b: Any, replace_lists: bool = False) -> Any:
    """Deep merge as compose and the Collector do: mappings merge; lists append (compose) or replace."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for key, value in b.items():
            out[key] = _merge(a[key], value, replace_lists) if key in a else value
        return out
    if isinstance(a, list) and isinstance(b, list) and not replace_lists:
        return a + [x for x in b if x not in a]
    return b
