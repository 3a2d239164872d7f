"""One Settings object, resolved once: keyword arguments > environment > YAML file > defaults.

Each setting is declared once, as a dataclass field whose metadata names its environment variable,
its parser (which also validates) and what it accepts. The README's configuration table lists the
same fields (a test keeps the two in step).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from otel_perf._internal.config import sla as slo_module
from otel_perf._internal.config.errors import ConfigError, unknown

Parser = Callable[[Any], Any]


def _choice(*values: str) -> Parser:
    def parse(raw: Any) -> str:
        value = str(raw).strip().lower()
        if value not in values:
            raise ValueError
        return value

    parse.accepted = values  # type: ignore[attr-defined]
    return parse


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError


_bool.accepted = ("true", "false")  # type: ignore[attr-defined]


def _number(minimum: float = 0.0, maximum: float = math.inf, kind: type = float) -> Parser:
    def parse(raw: Any) -> float:
        value = kind(float(raw)) if kind is int else kind(raw)
        if not (minimum <= value <= maximum) or value != value:
            raise ValueError
        return value

    upper = "" if maximum == math.inf else f" to {maximum:g}"
    parse.accepted = (f"{'an integer' if kind is int else 'a number'} from {minimum:g}{upper}",)  # type: ignore
    return parse


def _text(raw: Any) -> str:
    return str(raw).strip()


_text.accepted = ("text",)  # type: ignore[attr-defined]


def _pairs(raw: Any) -> dict[str, str]:
    """``k=v,k2=v2`` (OTEL_RESOURCE_ATTRIBUTES syntax) or a mapping."""
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    out = {}
    for item in str(raw).split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError
        out[key.strip()] = value.strip()
    return out


_pairs.accepted = ("key=value pairs separated by commas",)  # type: ignore[attr-defined]


def _names(raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    return tuple(s.strip() for s in items if str(s).strip())


_names.accepted = ("names separated by commas",)  # type: ignore[attr-defined]

def _exporters(*values: str) -> Parser:
    """OTEL_*_EXPORTER: a comma-separated list (the specification's syntax), kept as
    ``"otlp,console"``; ``none`` only alone."""

    def parse(raw: Any) -> str:
        items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
        names = list(dict.fromkeys(str(s).strip().lower() for s in items if str(s).strip()))
        if not names or any(n not in values for n in names) or ("none" in names and len(names) > 1):
            raise ValueError
        return ",".join(names)

    parse.accepted = (*values, "a comma-separated list of them")  # type: ignore[attr-defined]
    return parse


# http/json is the specification's third protocol; Python's exporters do not speak it, so the
# SDK set-up sends http/protobuf to the same endpoint instead and says so once.
_PROTOCOLS = _choice("grpc", "http/protobuf", "http/json")
_SPAN_EXPORTERS = _exporters("otlp", "console", "none")
_METRIC_EXPORTERS = _exporters("otlp", "prometheus", "console", "none")
_COMPRESSION = _choice("gzip", "deflate", "none")


def setting(env: str | None, default: Any, parse: Parser, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "parse": parse, "doc": doc})


@dataclass(frozen=True)
class Settings:
    # -- OpenTelemetry SDK standard variables ---------------------------------------------------
    service_name: str | None = setting("OTEL_SERVICE_NAME", None, _text, "Service name (`service.name`).")
    resource_attributes: dict = setting(
        "OTEL_RESOURCE_ATTRIBUTES", None, _pairs, "Extra resource attributes, `k=v,k2=v2`."
    )
    endpoint: str | None = setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT", None, _text, "OTLP endpoint; unset = local mode unless a Collector answers on localhost."
    )
    protocol: str | None = setting(
        "OTEL_EXPORTER_OTLP_PROTOCOL", None, _PROTOCOLS, "OTLP protocol for every signal (default: the port that answered, else http/protobuf)."
    )
    traces_protocol: str | None = setting("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", None, _PROTOCOLS, "Protocol for traces.")
    metrics_protocol: str | None = setting("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", None, _PROTOCOLS, "Protocol for metrics.")
    logs_protocol: str | None = setting("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", None, _PROTOCOLS, "Protocol for logs.")
    compression: str | None = setting("OTEL_EXPORTER_OTLP_COMPRESSION", None, _COMPRESSION, "OTLP compression.")
    timeout: float | None = setting("OTEL_EXPORTER_OTLP_TIMEOUT", None, _number(0.1), "OTLP export timeout in seconds (as the Python exporters read it).")
    traces_exporter: str = setting("OTEL_TRACES_EXPORTER", "otlp", _SPAN_EXPORTERS, "Trace exporters (comma-separated).")
    metrics_exporter: str = setting("OTEL_METRICS_EXPORTER", "otlp", _METRIC_EXPORTERS, "Metric exporters (comma-separated).")
    logs_exporter: str = setting("OTEL_LOGS_EXPORTER", "otlp", _SPAN_EXPORTERS, "Log exporters (comma-separated).")
    sampler: str = setting(
        "OTEL_TRACES_SAMPLER",
        "parentbased_always_on",
        _choice("always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"),
        "Head sampler.",
    )
    sampler_arg: float = setting("OTEL_TRACES_SAMPLER_ARG", 1.0, _number(0, 1), "Sampling ratio for the *traceidratio samplers.")
    metric_export_interval: float = setting(
        "OTEL_METRIC_EXPORT_INTERVAL", 60000.0, _number(100), "Metric export interval (ms)."
    )
    bsp_schedule_delay: float = setting("OTEL_BSP_SCHEDULE_DELAY", 5000.0, _number(1), "Span batch delay (ms).")
    bsp_max_queue_size: int = setting("OTEL_BSP_MAX_QUEUE_SIZE", 2048, _number(1, kind=int), "Span queue bound.")
    bsp_max_export_batch_size: int = setting(
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, _number(1, kind=int), "Spans per export."
    )
    disabled_instrumentations: tuple = setting(
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", (), _names, "Instrumentations (entry-point names) not to load."
    )
    semconv_opt_in: str = setting(
        "OTEL_SEMCONV_STABILITY_OPT_IN", "http,database", _text, "Semantic-convention stability opt-in (`http/dup` to migrate)."
    )
    # -- otel-perf's own -------------------------------------------------------------------------
    config: str | None = setting("OTEL_PERF_CONFIG", None, _text, "YAML file with any of these settings and an `slo:` section.")
    summary: str = setting(
        "OTEL_PERF_SUMMARY", "auto", _choice("auto", "true", "false"), "Print the SLA summary at exit (`auto`: in local mode)."
    )
    summary_file: str | None = setting("OTEL_PERF_SUMMARY_FILE", None, _text, "Also write the summary as JSON to this path.")
    server_timing: bool = setting(
        "OTEL_PERF_SERVER_TIMING", True, _bool, "Add `Server-Timing: traceparent` to responses (links browser to trace)."
    )
    shutdown_timeout: float = setting(
        "OTEL_PERF_SHUTDOWN_TIMEOUT", 1.5, _number(0.1, 60), "Seconds the exit flush may take."
    )
    # -- browser RUM (Core Web Vitals) -----------------------------------------------------------
    rum: bool = setting("OTEL_PERF_RUM", False, _bool, "Serve the Core Web Vitals script and ingest its beacons.")
    rum_prefix: str = setting("OTEL_PERF_RUM_PREFIX", "/_otel", _text, "URL prefix of the RUM script and beacon endpoint.")
    rum_inject: bool = setting("OTEL_PERF_RUM_INJECT", True, _bool, "Insert the RUM `<script>` tag into HTML responses.")
    rum_rate_limit: float = setting(
        "OTEL_PERF_RUM_RATE_LIMIT", 120.0, _number(0), "Beacons per minute accepted from one client address (0: no limit)."
    )
    # -- database (psycopg) -------------------------------------------------------------------------
    db_shape_label: bool = setting(
        "OTEL_PERF_DB_SHAPE_LABEL", False, _bool, "Add the bounded query summary as a metric label."
    )
    db_sqlcommenter: bool = setting(
        "OTEL_PERF_DB_SQLCOMMENTER", False, _bool, "Append trace context to SQL as a comment (defeats prepared statements)."
    )
    db_stat_statements_dsn: str | None = setting(
        "OTEL_PERF_DB_STAT_STATEMENTS_DSN", None, _text, "Read pg_stat_statements from this DSN (off when unset)."
    )
    db_stat_statements_interval: float = setting(
        "OTEL_PERF_DB_STAT_STATEMENTS_INTERVAL", 60.0, _number(1), "Seconds between pg_stat_statements reads."
    )
    db_stat_statements_top: int = setting(
        "OTEL_PERF_DB_STAT_STATEMENTS_TOP", 50, _number(1, 1000, kind=int), "Statements read per pg_stat_statements poll."
    )
    # -- bottlenecks: query plans of slow statements, profiles of slow requests -------------------------
    db_plans: bool = setting(
        "OTEL_PERF_DB_PLANS", True, _bool, "Capture the plan of slow statement shapes (own connection, plan only) and report findings."
    )
    db_plan_interval: float = setting(
        "OTEL_PERF_DB_PLAN_INTERVAL", 600.0, _number(1), "Seconds before the same statement shape is planned again."
    )
    db_plan_dsn: str | None = setting(
        "OTEL_PERF_DB_PLAN_DSN", None, _text, "Connect here to plan (default: the application connection's parameters)."
    )
    profile: bool = setting(
        "OTEL_PERF_PROFILE", True, _bool, "Sample the stacks of requests slower than the latency SLA."
    )
    profile_interval: float = setting(
        "OTEL_PERF_PROFILE_INTERVAL", 0.005, _number(0.001, 1), "Seconds between stack samples of a slow request."
    )
    slo: slo_module.SLO = field(default=slo_module.DEFAULT, metadata={"env": None, "doc": "SLA thresholds (`slo:` section)."})

    # -- resolution -------------------------------------------------------------------------------

    @classmethod
    def resolve(cls, kwargs: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """kwargs > environment > YAML file (OTEL_PERF_CONFIG / ``config=``) > defaults."""
        kwargs = {k: v for k, v in (kwargs or {}).items() if v is not None}
        environ = os.environ if environ is None else environ
        known = {f.name: f for f in fields(cls)}
        for key in kwargs:
            if key not in known:
                raise unknown("configure(): unknown setting", key, known)

        path = kwargs.get("config") or environ.get("OTEL_PERF_CONFIG")
        file_values = _load_yaml(path) if path else {}
        for key in file_values:
            if key not in known:
                raise unknown(f"{path}: unknown setting", key, known)

        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "slo":
                continue
            env = f.metadata["env"]
            if f.name in kwargs:
                raw, source = kwargs[f.name], f"configure({f.name}=...)"
            elif env and environ.get(env, "").strip():
                raw, source = environ[env], env
            elif f.name in file_values:
                raw, source = file_values[f.name], f"{path}: {f.name}"
            else:
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except (TypeError, ValueError):
                accepted = getattr(f.metadata["parse"], "accepted", ())
                raise ConfigError(f"{source}={raw!r} is invalid", accepted=accepted) from None

        spec = slo_module.DEFAULT
        if file_values.get("slo") is not None:
            spec = spec.with_overrides(file_values["slo"], f"{path}")
        env_slo = {
            k[len("OTEL_PERF_SLO_"):].lower(): v for k, v in environ.items() if k.startswith("OTEL_PERF_SLO_") and v.strip()
        }
        if env_slo:
            spec = spec.with_overrides(env_slo, "OTEL_PERF_SLO_{KEY}")
        if kwargs.get("slo"):
            slo_kw = kwargs["slo"]
            spec = slo_kw if isinstance(slo_kw, slo_module.SLO) else spec.with_overrides(slo_kw, "configure(slo=...)")
        values["slo"] = spec
        return cls(**values)

    def protocol_for(self, signal: str) -> str | None:
        return getattr(self, f"{signal}_protocol") or self.protocol


def _load_yaml(path: str) -> dict[str, Any]:
    try:
        import yaml  # only when a file is named; not a dependency of the lean install
    except ImportError:
        raise ConfigError(f"OTEL_PERF_CONFIG={path!r} needs PyYAML to be read",
                          accepted=["pip install 'otel-perf[yaml]'"]) from None

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise ConfigError(f"OTEL_PERF_CONFIG={path!r} cannot be read: {exc.strerror}", accepted=["a readable YAML file"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"OTEL_PERF_CONFIG={path!r} is not valid YAML{where}", accepted=["a YAML mapping"]) from None
    if not isinstance(data, dict):
        raise ConfigError(f"OTEL_PERF_CONFIG={path!r} is not a mapping", accepted=["a YAML mapping of settings"])
    return data


def documented() -> list[tuple[str, str, str, str]]:
    """(setting, environment variable, default, meaning) rows for the README table."""
    rows = []
    for f in fields(Settings):
        default = f.default if not isinstance(f.default, slo_module.SLO) else "see SLA table"
        rows.append((f.name, f.metadata.get("env") or "", "" if default is None else str(default), f.metadata["doc"]))
    return rows
