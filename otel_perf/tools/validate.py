"""``otel-perf validate``: check the stack's configs without running the Collector, Tempo or Grafana.

Each file is recognised by its content: Collector configs (and Helm values embedding one under
``config``) go through a real Collector's ``validate --config`` when one is available (the project's
build, ``make collector``, or otelcol-contrib on PATH; see ``find_otelcol``), which unmarshals every
component's settings with its own code (nested options, OTTL, regular expressions) and builds the
pipeline graph; without one they are checked against the pinned otelcol-contrib component list
(``otel_perf/tools/data/otelcol_components.yaml``); Prometheus and Alertmanager configs go through
``promtool check config`` / ``amtool check-config`` when installed; Grafana provisioning files and
the compose file get shape checks. Every problem is one line ``path: message``; any error makes the
exit status 1 (warnings alone do not).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import click
import yaml

SECTIONS = ("receivers", "processors", "exporters", "connectors", "extensions")
SIGNALS = ("traces", "metrics", "logs", "profiles")
# The files `otel-perf validate` checks when given no paths (relative to the repository root).
SHIPPED = (
    "collector/otelcol-agent.yaml",
    "collector/otelcol-gateway.yaml",
    "collector/k8s",
    "collector/prometheus/prometheus.yml",
    "collector/prometheus/alerts",
    "collector/alertmanager/alertmanager.yml",
    "collector/compose.yaml",
    "grafana/provisioning",
)
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {'warning: ' if self.warning else ''}{self.message}"


@cache
def components() -> dict[str, Any]:
    """The pinned otelcol-contrib component table (type -> {deprecated, fields}) per section."""
    return yaml.safe_load((Path(__file__).parent / "data" / "otelcol_components.yaml").read_text())


# The project's own Collector build (`make collector`), relative to a source checkout.
OTELCOL_BUILD = "build/otelcol-otel-perf/otelcol-otel-perf"
# Distributions that carry the components the shipped configs use (the core `otelcol` does not).
OTELCOL_ON_PATH = ("otelcol-otel-perf", "otelcol-contrib")
# What the Helm chart sets in the Collector's environment (besides the values' extraEnvs).
HELM_ENV = {"MY_POD_IP": "127.0.0.1"}


def find_otelcol() -> str | None:
    """A Collector binary to validate with: $OTEL_PERF_OTELCOL, else the build under the current
    directory or this source checkout, else otelcol-otel-perf / otelcol-contrib on PATH."""
    explicit = os.environ.get("OTEL_PERF_OTELCOL")
    if explicit:
        return explicit
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if os.access(base / OTELCOL_BUILD, os.X_OK):
            return str(base / OTELCOL_BUILD)
    for name in OTELCOL_ON_PATH:
        if found := shutil.which(name):
            return found
    return None


# -- entry points --------------------------------------------------------------------------------


def validate(paths: Iterable[str | os.PathLike[str]], otelcol: str | None = "auto") -> list[Problem]:
    """Check every file (directories: their *.yml / *.yaml files, recursively).

    ``otelcol``: a Collector binary for the Collector configs, ``"auto"`` (``find_otelcol``) or
    ``None`` (the curated component table only)."""
    binary = find_otelcol() if otelcol == "auto" else otelcol
    problems: list[Problem] = []
    for file in _expand(paths, problems):
        problems.extend(validate_file(file, binary))
    return problems


def validate_file(path: str | os.PathLike[str], otelcol: str | None = None) -> list[Problem]:
    name = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        return [Problem(name, f"cannot read: {exc.strerror}")]
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return [Problem(name, f"invalid YAML{where}: {reason}")]
    if not isinstance(doc, dict):
        return [Problem(name, "expected a YAML mapping at the top level")]

    if "dist" in doc and any(s in doc for s in SECTIONS):  # a Collector Builder manifest: `make collector`
        return []
    if "service" in doc and any(s in doc for s in SECTIONS):
        problems = check_collector(name, doc, otelcol=otelcol)
        return problems + (run_otelcol(name, otelcol, Path(path)) if otelcol else [])
    if isinstance(doc.get("config"), dict) and ("mode" in doc or "image" in doc):
        return check_helm_values(name, doc, otelcol)
    if "route" in doc and "receivers" in doc:
        return check_alertmanager(name, text)
    if "tests" in doc and "rule_files" in doc:  # a promtool rule unit-test file
        return _run_tool(name, ["promtool", "test", "rules", name], "promtool", "prometheus")
    if "scrape_configs" in doc or "rule_files" in doc or "alerting" in doc:
        return _run_tool(name, ["promtool", "check", "config", name], "promtool", "prometheus")
    if "groups" in doc and "apiVersion" not in doc:
        return _run_tool(name, ["promtool", "check", "rules", name], "promtool", "prometheus")
    if "services" in doc:
        return check_compose(name, doc)
    if "apiVersion" in doc:
        return check_grafana(name, doc)
    return [Problem(name, "not a recognised config (Collector, Helm values, Prometheus, Alertmanager, Grafana)")]


# -- OpenTelemetry Collector ---------------------------------------------------------------------


def check_collector(path: str, config: dict[str, Any], where: str = "", otelcol: str | None = None) -> list[Problem]:
    """Deprecated component names and the processor order (``memory_limiter`` first); without a
    Collector binary also component types and fields against the pinned version and the pipeline
    references (a binary checks those itself, and more precisely)."""
    fallback = otelcol is None
    table = components()
    problems: list[Problem] = []
    defined: dict[str, set[str]] = {}
    for section in SECTIONS:
        entries = config.get(section) or {}
        if not isinstance(entries, dict):
            problems.append(Problem(path, f"{where}{section} must be a mapping"))
            continue
        defined[section] = set()
        known = table.get(section) or {}
        aliases = {spec["deprecated"]: t for t, spec in known.items() if spec and spec.get("deprecated")}
        for cid, settings in entries.items():
            if settings is None and where:  # Helm: `null` removes a chart default
                continue
            defined[section].add(cid)
            ctype = str(cid).split("/", 1)[0]
            if ctype in aliases:
                problems.append(
                    Problem(
                        path, f"{where}{section}.{cid}: {ctype!r} is a deprecated alias, use {aliases[ctype]!r}", True
                    )
                )
                ctype = aliases[ctype]
            if not fallback:
                continue
            if ctype not in known:
                problems.append(
                    Problem(
                        path,
                        f"{where}{section}.{cid}: unknown {section[:-1]} type {ctype!r} "
                        f"in otelcol-contrib {table['version']}",
                    )
                )
                continue
            fields = (known[ctype] or {}).get("fields")
            if fields and isinstance(settings, dict):
                for key in settings:
                    if key not in fields:
                        problems.append(Problem(path, f"{where}{section}.{cid}: unknown field {key!r}"))

    service = config.get("service") or {}
    for ext in service.get("extensions") or []:
        if fallback and ext not in defined.get("extensions", set()):
            problems.append(Problem(path, f"{where}service.extensions: {ext!r} is not defined under extensions"))
    pipelines = service.get("pipelines")
    if not isinstance(pipelines, dict) or not pipelines:
        problems.append(Problem(path, f"{where}service.pipelines: no pipelines defined"))
        return problems
    connectors = defined.get("connectors", set())
    for pid, pipeline in pipelines.items():
        if pipeline is None and where:
            continue
        label = f"{where}service.pipelines.{pid}"
        if str(pid).split("/", 1)[0] not in SIGNALS:
            problems.append(Problem(path, f"{label}: unknown signal (expected one of {', '.join(SIGNALS)})"))
        if not isinstance(pipeline, dict):
            problems.append(Problem(path, f"{label}: must be a mapping"))
            continue
        for role, section in (("receivers", "receivers"), ("processors", "processors"), ("exporters", "exporters")):
            if not fallback:
                break
            ids = pipeline.get(role) or []
            if role != "processors" and not ids:
                problems.append(Problem(path, f"{label}: no {role}"))
            for cid in ids:
                if cid not in defined.get(section, set()) and not (role != "processors" and cid in connectors):
                    problems.append(Problem(path, f"{label}: {role[:-1]} {cid!r} is not defined under {section}"))
        processors = pipeline.get("processors") or []
        if not processors or str(processors[0]).split("/", 1)[0] != "memory_limiter":
            problems.append(Problem(path, f"{label}: memory_limiter must be the first processor"))
    return problems


def check_helm_values(path: str, values: dict[str, Any], otelcol: str | None = None) -> list[Problem]:
    """Helm values for the opentelemetry-collector chart: mode, image pin and the embedded config
    (with a binary: as the chart runs it, `null` entries removed, the values' extraEnvs set)."""
    problems: list[Problem] = []
    if values.get("mode") not in ("daemonset", "deployment", "statefulset"):
        problems.append(Problem(path, f"mode: {values.get('mode')!r} is not daemonset, deployment or statefulset"))
    tag = str((values.get("image") or {}).get("tag", ""))
    version = components()["version"]
    if tag != version:
        problems.append(Problem(path, f"image.tag {tag!r} differs from the validated otelcol-contrib {version}", True))
    problems += check_collector(path, values["config"], where="config.", otelcol=otelcol)
    if otelcol:
        env = dict(HELM_ENV)
        for item in values.get("extraEnvs") or []:
            if isinstance(item, dict) and "name" in item and "value" in item:
                env[str(item["name"])] = str(item["value"])
        with tempfile.TemporaryDirectory() as tmp:
            rendered = Path(tmp) / "config.yaml"
            rendered.write_text(yaml.safe_dump(_without_nulls(values["config"]), sort_keys=False))
            problems += [Problem(path, p.message.replace(str(rendered), path), p.warning)
                         for p in run_otelcol(path, otelcol, rendered, env, where="config.")]
    return problems


def _without_nulls(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_nulls(v) for k, v in node.items() if v is not None}
    return node


_NOISE = re.compile(
    r"^(Error: )?(failed to get config: )?(cannot unmarshal the configuration: )?"
    r"(decoding failed due to the following error\(s\):)?$"
)
_CONTEXT = re.compile(r"""^'([\w.]+)' error reading configuration for "([^"]+)": decoding failed due to the following error\(s\):$""")
_DETAIL = re.compile(r"^'[\w.]+' (has invalid keys: .*)$")
_UNKNOWN = re.compile(r"""^'(\w+)' unknown type: "([^"]+)" for id: "([^"]+)" \((.*)\)$""")
_WHERE = re.compile(r"^((?:service|receivers|processors|exporters|connectors|extensions)(?:::[^:\s]+)+): ")


def run_otelcol(path: str, binary: str, config: Path, env: dict[str, str] | None = None,
                where: str = "") -> list[Problem]:
    """``<binary> validate --config=file:<config>``; its error, one line per problem, prefixed
    ``otelcol:`` (as promtool's and amtool's are)."""
    environ = dict(os.environ)
    for key, value in (env or {}).items():
        environ.setdefault(key, value)
    try:
        proc = subprocess.run([binary, "validate", f"--config=file:{config}"], capture_output=True, text=True,
                              timeout=120, env=environ)
    except OSError as exc:
        return [Problem(path, f"otelcol: cannot run {binary}: {exc.strerror}")]
    except subprocess.TimeoutExpired:
        return [Problem(path, f"otelcol: {binary} validate timed out")]
    if proc.returncode == 0:
        return []
    messages: list[str] = []
    context = ""
    for raw in proc.stderr.splitlines():
        line = raw.strip()
        if not line or _NOISE.match(line):
            continue
        line = line.removeprefix("Error: ").removeprefix("failed to get config: ")
        line = line.removeprefix("cannot unmarshal the configuration: ").removesuffix(
            ": decoding failed due to the following error(s):")
        if match := _CONTEXT.match(raw.strip()):
            context = f"{where}{match.group(1)}.{match.group(2)}: "
            continue
        if match := _DETAIL.match(line):
            line = match.group(1)
        elif match := _UNKNOWN.match(line):
            section, ctype, cid, valid = match.groups()
            line = f"{where}{section}.{cid}: unknown {section.rstrip('s')} type {ctype!r} ({valid})"
        elif match := _WHERE.match(line):  # service::pipelines::traces: ... -> service.pipelines.traces: ...
            line = f"{where}{match.group(1).replace('::', '.')}: {line[match.end():]}"
        messages.append(context + line)
        context = ""
    if not messages:
        messages = [f"{Path(binary).name} validate failed ({proc.returncode})"]
    return [Problem(path, f"otelcol: {m}") for m in messages]


# -- Alertmanager, Prometheus --------------------------------------------------------------------


def render_placeholders(text: str, environ: dict[str, str] | None = None) -> str:
    """Substitute ``${VAR:-default}`` the way collector/alertmanager/entrypoint.sh does."""
    env = os.environ if environ is None else environ

    def value(match: re.Match[str]) -> str:
        return env.get(match.group(1)) or (match.group(2) or "")

    return _PLACEHOLDER.sub(value, text)


def check_alertmanager(path: str, text: str) -> list[Problem]:
    """amtool check-config on the file as the entrypoint renders it (placeholders -> env or defaults)."""
    with tempfile.TemporaryDirectory() as tmp:
        rendered = Path(tmp) / Path(path).name
        rendered.write_text(render_placeholders(text))
        return [
            Problem(path, p.message.replace(str(rendered), path), p.warning)
            for p in _run_tool(path, ["amtool", "check-config", str(rendered)], "amtool", "prometheus-alertmanager")
        ]


def _run_tool(path: str, argv: list[str], tool: str, package: str) -> list[Problem]:
    if shutil.which(tool) is None:
        return [Problem(path, f"{tool} not installed (apt-get install {package}); only the YAML was checked", True)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return [Problem(path, f"{tool} timed out")]
    if proc.returncode == 0:
        return []
    # "Checking 'x'  FAILED: reason" -> "reason"; drop the progress and summary lines.
    lines = [ln.split("FAILED:", 1)[-1].strip() for ln in (proc.stdout + "\n" + proc.stderr).splitlines()]
    noise = ("Checking ", "SUCCESS", "Found:", "- ", f"{tool}: error: failed")
    details = [ln for ln in lines if ln and not ln.startswith(noise)]
    return [Problem(path, f"{tool}: {d}") for d in details] or [Problem(path, f"{tool} failed ({proc.returncode})")]


# -- Grafana provisioning, compose ---------------------------------------------------------------


def check_grafana(path: str, doc: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    if doc.get("apiVersion") != 1:
        problems.append(Problem(path, f"apiVersion must be 1, not {doc.get('apiVersion')!r}"))
    if "datasources" in doc:
        problems.extend(_check_datasources(path, doc["datasources"]))
    elif "providers" in doc:
        for i, provider in enumerate(doc["providers"] or []):
            for key in ("name", "options"):
                if key not in (provider or {}):
                    problems.append(Problem(path, f"providers[{i}]: missing {key!r}"))
    return problems


def _check_datasources(path: str, datasources: Any) -> list[Problem]:
    problems: list[Problem] = []
    if not isinstance(datasources, list) or not datasources:
        return [Problem(path, "datasources must be a non-empty list")]
    uids = [ds.get("uid") for ds in datasources if isinstance(ds, dict)]
    for i, ds in enumerate(datasources):
        if not isinstance(ds, dict):
            problems.append(Problem(path, f"datasources[{i}] must be a mapping"))
            continue
        for key in ("name", "type", "uid", "url"):
            if not ds.get(key):
                problems.append(Problem(path, f"datasources[{i}] ({ds.get('name')}): missing {key!r}"))
        if ds.get("uid") and uids.count(ds["uid"]) > 1:
            problems.append(Problem(path, f"datasources[{i}]: duplicate uid {ds['uid']!r}"))
        for ref in _datasource_refs(ds.get("jsonData") or {}):
            if ref not in uids:
                problems.append(
                    Problem(path, f"datasources[{i}] ({ds.get('name')}): datasourceUid {ref!r} is not provisioned here")
                )
    if sum(1 for ds in datasources if isinstance(ds, dict) and ds.get("isDefault")) > 1:
        problems.append(Problem(path, "more than one datasource has isDefault: true"))
    return problems


def _datasource_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasourceUid" and isinstance(value, str):
                yield value
            else:
                yield from _datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_refs(item)


def check_compose(path: str, doc: dict[str, Any]) -> list[Problem]:
    """Every image pinned to a version, published ports bound to an explicit address."""
    problems: list[Problem] = []
    for name, svc in (doc.get("services") or {}).items():
        image = str((svc or {}).get("image", ""))
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        if not tag or tag == "latest":
            problems.append(Problem(path, f"services.{name}: image {image!r} is not pinned to a version"))
        for port in (svc or {}).get("ports") or []:
            if str(port).count(":") < 2:
                problems.append(Problem(path, f"services.{name}: port {port!r} is published on every interface"))
        if image.startswith("otel/opentelemetry-collector") and tag and tag != components()["version"]:
            problems.append(
                Problem(
                    path,
                    f"services.{name}: image tag {tag!r} differs from the validated "
                    f"otelcol-contrib {components()['version']}",
                    True,
                )
            )
    if Path(path).name == "compose.yaml":  # the exposed configuration beside it: every published port guarded
        from otel_perf.tools import stack_auth

        problems.extend(Problem(path, message) for message in stack_auth.problems(Path(path)))
    return problems


# -- files ---------------------------------------------------------------------------------------


def _expand(paths: Iterable[str | os.PathLike[str]], problems: list[Problem]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
        elif path.exists():
            yield path
        else:
            problems.append(Problem(str(raw), "no such file or directory"))


def shipped_paths(root: Path | None = None) -> list[Path]:
    """The shipped configs: under ``root``, else the current directory or this source checkout."""
    candidates = [root] if root else [Path.cwd(), Path(__file__).resolve().parents[2]]  # cwd, else this checkout
    for base in candidates:
        if (base / "collector").is_dir():
            return [base / rel for rel in SHIPPED if (base / rel).exists()]
    raise click.UsageError("no collector/ directory here: run from the repository root or pass PATHS")


@click.command(short_help="Check Collector, Prometheus, Alertmanager and Grafana configs.")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--otelcol", "otelcol", metavar="BINARY", default=None,
              help="Collector binary for `validate --config` (default: $OTEL_PERF_OTELCOL, the `make collector` "
                   "build, otelcol-otel-perf or otelcol-contrib on PATH).")
@click.option("--no-otelcol", is_flag=True, help="Check Collector configs against the curated component table only.")
def cli(paths: tuple[str, ...], otelcol: str | None, no_otelcol: bool) -> None:
    """Check PATHS (files or directories; default: the configs this project ships).

    Prints one line per problem and exits 1 when there is an error.
    """
    problems = validate(paths or shipped_paths(), otelcol=None if no_otelcol else (otelcol or "auto"))
    for problem in problems:
        click.echo(str(problem), err=not problem.warning)
    errors = sum(1 for p in problems if not p.warning)
    if errors:
        raise click.exceptions.Exit(1)
