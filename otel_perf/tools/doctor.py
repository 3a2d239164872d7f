"""``otel-perf doctor``: where telemetry goes right now, as ``otel-perf run`` would set it up here.

It resolves the same settings (environment, OTEL_PERF_CONFIG), then reports per signal the exporter,
endpoint and protocol, whether that endpoint accepts a connection, the instrumentations that would
be active, the service name and the SLA in force. Nothing is exported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

import click

from otel_perf.tools.configuration import load_settings

SIGNALS = ("traces", "metrics", "logs")
OTLP_PORTS = {"http/protobuf": 4318, "grpc": 4317}
# Our integrations and the library each needs (entry-point names, as OTEL_PYTHON_DISABLED_INSTRUMENTATIONS takes).
_NEEDS = {"asgi": None, "psycopg": "psycopg", "system_metrics": None}


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def answer(endpoint: str, signal: str, environ: dict[str, str], timeout: float = 2.0) -> int | None:
    """HTTP status of an empty OTLP/HTTP export to ``endpoint`` with the configured headers (401:
    the Collector wants a token), None when it could not be asked."""
    import urllib.error
    import urllib.parse
    import urllib.request

    url = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT") or f"{endpoint.rstrip('/')}/v1/{signal}"
    headers = {"Content-Type": "application/x-protobuf"}
    for raw in (environ.get("OTEL_EXPORTER_OTLP_HEADERS", ""), environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_HEADERS", "")):
        for item in raw.split(","):
            key, sep, value = item.partition("=")
            if sep and key.strip():
                headers[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    try:  # an empty body is a valid, empty export request: nothing is recorded
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", headers=headers), timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def exports(settings: Any, environ: dict[str, str]) -> list[dict[str, Any]]:
    """Per signal: exporter, endpoint, protocol and reachability (local mode when OTLP has nowhere to go)."""
    rows = []
    for signal in SIGNALS:
        kinds = getattr(settings, f"{signal}_exporter")
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        for kind in kinds:
            row: dict[str, Any] = {"signal": signal, "exporter": kind}
            if kind == "otlp":
                protocol = settings.protocol_for(signal)
                endpoint = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT") or settings.endpoint
                if endpoint:
                    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
                    protocol = protocol or "http/protobuf"
                    port = parts.port or (443 if parts.scheme == "https" else OTLP_PORTS[protocol])
                    row.update(endpoint=endpoint, protocol=protocol,
                               reachable=reachable(parts.hostname or "localhost", port))
                    if row["reachable"] and protocol == "http/protobuf":
                        row["status"] = answer(endpoint, signal, environ)
                else:  # what otel-perf does unconfigured: use a Collector on localhost, else stay local
                    wanted = [protocol] if protocol else list(OTLP_PORTS)
                    found = next((p for p in wanted if reachable("127.0.0.1", OTLP_PORTS[p], 0.2)), None)
                    if found:
                        row.update(endpoint=f"http://localhost:{OTLP_PORTS[found]}", protocol=found, reachable=True)
                    else:
                        row.update(exporter="none (local mode: SLA summary at exit)", endpoint=None,
                                   protocol=None, reachable=None)
            rows.append(row)
    return rows


def instrumentations(settings: Any) -> list[dict[str, str]]:
    """Which integrations would run: ours, then installed upstream instrumentors."""
    from importlib.metadata import entry_points

    disabled = set(settings.disabled_instrumentations)
    out = []
    for name, needs in _NEEDS.items():
        if name in disabled:
            state = "disabled (OTEL_PYTHON_DISABLED_INSTRUMENTATIONS)"
        elif needs and importlib.util.find_spec(needs) is None:
            state = f"inactive ({needs} not installed)"
        else:
            state = "active"
        out.append({"name": name, "by": "otel-perf", "state": state})
    replaced = {"asgi", "psycopg", "system_metrics", "starlette", "fastapi"}
    for ep in sorted(entry_points(group="opentelemetry_instrumentor"), key=lambda e: e.name):
        if ep.name in replaced:
            continue
        if ep.name in disabled:
            state = "disabled (OTEL_PYTHON_DISABLED_INSTRUMENTATIONS)"
        else:
            state = "active" if _library_present(ep) else "inactive (its library is not installed)"
        out.append({"name": ep.name, "by": ep.dist.name if ep.dist else "?", "state": state})
    return out


def _library_present(ep: Any) -> bool:
    try:
        from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

        return ep.dist is None or get_dist_dependency_conflicts(ep.dist) is None
    except Exception:
        return False


def service_name(settings: Any) -> str:
    return (settings.service_name or (settings.resource_attributes or {}).get("service.name")
            or "(the program's name, e.g. app for python app.py)")


def report(settings: Any, environ: dict[str, str]) -> dict[str, Any]:
    slo = asdict(settings.slo)
    slo["query_classes"] = [asdict(q) for q in settings.slo.query_classes]
    return {
        "service_name": service_name(settings),
        "config_file": settings.config,
        "exports": exports(settings, environ),
        "instrumentations": instrumentations(settings),
        "sampler": f"{settings.sampler} ({settings.sampler_arg:g})" if "ratio" in settings.sampler else settings.sampler,
        "sla": slo,
    }


def render(data: dict[str, Any]) -> str:
    lines = [f"service name     {data['service_name']}",
             f"config file      {data['config_file'] or '(none: OTEL_PERF_CONFIG unset)'}",
             f"sampler          {data['sampler']}", "", "telemetry goes to"]
    for row in data["exports"]:
        where = ""
        if row.get("endpoint"):
            state = "reachable" if row["reachable"] else "NOT REACHABLE (nothing accepts connections there)"
            if row.get("status") in (401, 403):
                state = (f"REFUSED ({row['status']}): the Collector requires a token, set "
                         "OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>")
            where = f" {row['endpoint']} ({row['protocol']}): {state}"
        lines.append(f"  {row['signal']:<8} {row['exporter']}{where}")
    lines += ["", "instrumentations"]
    lines += [f"  {i['name']:<16} {i['state']}  [{i['by']}]" for i in data["instrumentations"]]
    sla = data["sla"]
    lines += ["", "SLA in force",
              f"  HTTP: {sla['http_latency_target']:.4g} of requests within {sla['http_latency'] * 1000:g} ms "
              f"per route, errors < {sla['http_error_rate']:.3%}",
              f"  DB: slow > {sla['db_slow'] * 1000:g} ms, mean < {sla['db_mean'] * 1000:g} ms, "
              f"N+1 at {sla['n_plus_one']} statements; classes: "
              + (", ".join(f"{q['name']} > {q['threshold'] * 1000:g} ms" for q in sla["query_classes"]) or "none"),
              f"  regression > {sla['regression']:.0%}; LCP {sla['lcp']:g} s, INP {sla['inp'] * 1000:g} ms, "
              f"CLS {sla['cls']:g}, FCP {sla['fcp']:g} s, TTFB {sla['ttfb']:g} s; CPU < {sla['cpu']:.0%}, "
              f"memory < {sla['memory']:.0%}"]
    return "\n".join(lines) + "\n"


@click.command(short_help="Show where telemetry goes: endpoint, reachability, instrumentations, SLA.",
               epilog="""\b
Examples:
  otel-perf doctor
  OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 otel-perf doctor
  otel-perf doctor --json - | jq .exports
""")
@click.option("--config", type=click.Path(exists=True, dir_okay=False),
              help="YAML settings file [default: OTEL_PERF_CONFIG].")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the report as JSON here (- for stdout) instead of text.")
def cli(config: str | None, json_path: str | None) -> None:
    """Report where `otel-perf run` would send telemetry from this environment right now.

    Exits 1 when a configured endpoint is not reachable, 2 on invalid configuration.
    """
    settings = load_settings(config)
    data = report(settings, dict(os.environ))
    if json_path == "-":
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
    else:
        click.echo(render(data), nl=False)
    refused = [r for r in data["exports"] if r.get("status") in (401, 403)]
    if refused:
        click.echo(f"otel-perf doctor: {refused[0]['endpoint']} answers {refused[0]['status']}: "
                   f"{', '.join(r['signal'] for r in refused)} would be refused; the Collector requires a token "
                   "(OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>)", err=True)
        raise click.exceptions.Exit(1)
    unreachable = [r for r in data["exports"] if r.get("reachable") is False]
    if unreachable:
        click.echo(f"otel-perf doctor: {unreachable[0]['endpoint']} is not reachable: "
                   f"{', '.join(r['signal'] for r in unreachable)} would be dropped", err=True)
        raise click.exceptions.Exit(1)
