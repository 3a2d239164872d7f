"""``otel-perf validate``: check the stack's configs without running the Collector, Tempo or Grafana.

Each file is recognised by its content: Collector configs (and Helm values embedding one under
``config``) go through a real Collector's ``validate --config`` when one is available (the project's
build, ``make collector``, or otelcol-contrib on PATH; see ``find_otelcol``), which unmarshals every
component's settings with its own code (nested options, OTTL, regular expressions) and builds the
pipeline graph; without one they are checked against the pinned otelcol-contrib component list
(``otel_perf/tools/data/otelcol_components.yaml``); Prometheus and Alertmanager configs go through
``promtool check config`` / ``amtool check-config`` when installed; Tempo's config, dashboards
(JSON), Grafana provisioning (datasources, dashboard providers, alert rules, contact points,
policies) and the compose file get structural checks. Datasource uids in dashboards and Grafana
alert rules, and receivers in notification policies, are checked against the provisioned ones
among the checked files. Every problem is one line ``path: message`` on stderr, printed once; any
error makes the exit status 1 (warnings alone do not); stdout says what was checked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
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
    "collector/prometheus/rules",
    "collector/prometheus/alerts",
    "collector/alertmanager/alertmanager.yml",
    "collector/tempo",
    "collector/compose.yaml",
    "grafana/provisioning",
    "grafana/dashboards",
)
CONFIG_SUFFIXES = (".yml", ".yaml", ".json")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class Context:
    """What the checked files provide to each other (datasources, contact points) and what was checked."""

    datasource_uids: set[str] | None = None  # None: no provisioned datasources among the checked files
    contact_points: set[str] | None = None
    dashboard_uids: dict[str, str] = field(default_factory=dict)  # uid -> the file that has it
    checked: Counter = field(default_factory=Counter)  # kind -> files


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


def validate(paths: Iterable[str | os.PathLike[str]], otelcol: str | None = "auto",
             context: Context | None = None) -> list[Problem]:
    """Check every file (directories: their *.yml / *.yaml / *.json files, recursively); each
    problem once.

    ``otelcol``: a Collector binary for the Collector configs, ``"auto"`` (``find_otelcol``) or
    ``None`` (the curated component table only). ``context`` (filled in) says what was checked."""
    binary = find_otelcol() if otelcol == "auto" else otelcol
    context = Context() if context is None else context
    problems: list[Problem] = []
    files = list(dict.fromkeys(_expand(paths, problems)))
    docs = {file: _parse(file) for file in files}
    _collect(context, docs)
    for file in files:
        context.checked[kind_of(str(file), docs[file])] += 1
        problems.extend(validate_file(file, binary, context))
    return list(dict.fromkeys(problems))


def validate_file(path: str | os.PathLike[str], otelcol: str | None = None,
                  context: Context | None = None) -> list[Problem]:
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
    context = Context() if context is None else context
    if name.endswith(".json") or ("panels" in doc and "uid" in doc):
        return check_dashboard(name, doc, context)

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
        return check_grafana(name, doc, context)
    if is_tempo(doc):
        return check_tempo(name, doc)
    return [Problem(name, "not a recognised config (Collector, Helm values, Prometheus, Alertmanager, Tempo, "
                          "Grafana provisioning, dashboard, compose)")]


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


def check_grafana(path: str, doc: dict[str, Any], context: Context | None = None) -> list[Problem]:
    context = Context() if context is None else context
    problems: list[Problem] = []
    if doc.get("apiVersion") != 1:
        problems.append(Problem(path, f"apiVersion must be 1, not {doc.get('apiVersion')!r}"))
    if "datasources" in doc:
        problems.extend(_check_datasources(path, doc["datasources"]))
    elif "groups" in doc:
        problems.extend(check_grafana_rules(path, doc["groups"], context))
    elif "policies" in doc:
        problems.extend(_check_policies(path, doc["policies"], context))
    elif "contactPoints" in doc:
        for i, cp in enumerate(doc["contactPoints"] or []):
            if not isinstance(cp, dict) or not cp.get("name") or not cp.get("receivers"):
                problems.append(Problem(path, f"contactPoints[{i}]: needs a name and receivers"))
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
            yield from sorted(p for p in path.rglob("*") if p.suffix in CONFIG_SUFFIXES and p.is_file())
        elif path.exists():
            yield path
        else:
            problems.append(Problem(str(raw), "no such file or directory"))


def shipped_paths(root: Path | None = None) -> list[Path]:
    """The stack's configs: under ``root``, else the current directory (a checkout or a folder
    written by `otel-perf stack`), else the copy this installation ships."""
    if root is None and not (Path.cwd() / "collector").is_dir():
        from otel_perf.tools.stack_folder import source_root

        root = source_root()
    base = root or Path.cwd()
    if not (base / "collector").is_dir():
        raise click.UsageError(f"no collector/ directory in {base}: pass PATHS")
    return [base / rel for rel in SHIPPED if (base / rel).exists()]


@click.command(short_help="Check the stack's configs: Collector, Prometheus, Tempo, Grafana, dashboards.", epilog="""\b
Examples:
  otel-perf validate                       # the stack in ./collector and ./grafana (else the shipped one)
  otel-perf validate monitoring/collector monitoring/grafana
  otel-perf validate grafana/dashboards/team.json grafana/provisioning/datasources
""")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--otelcol", "otelcol", metavar="BINARY", default=None,
              help="Collector binary for `validate --config` (default: $OTEL_PERF_OTELCOL, the `make collector` "
                   "build, otelcol-otel-perf or otelcol-contrib on PATH).")
@click.option("--no-otelcol", is_flag=True, help="Check Collector configs against the curated component table only.")
def cli(paths: tuple[str, ...], otelcol: str | None, no_otelcol: bool) -> None:
    """Check PATHS (files or directories; default: collector/ and grafana/ here).

    Prints each problem once on stderr, what was checked on stdout, and exits 1 when there is an
    error. Datasource uids are checked against the datasources provisioned among PATHS.
    """
    context = Context()
    problems = validate(paths or shipped_paths(), otelcol=None if no_otelcol else (otelcol or "auto"), context=context)
    for problem in problems:
        click.echo(str(problem), err=True)
    errors = sum(1 for p in problems if not p.warning)
    warnings = len(problems) - errors
    files = sum(context.checked.values())
    what = ", ".join(f"{n} {kind}{'s' * (n > 1)}" for kind, n in sorted(context.checked.items(), key=lambda kv: -kv[1]))
    click.echo(f"checked {files} file(s){': ' + what if what else ''}; {errors} error(s), {warnings} warning(s)")
    if errors:
        raise click.exceptions.Exit(1)


# -- classification and cross-file context -------------------------------------------------------


def _parse(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None


def kind_of(name: str, doc: Any) -> str:
    """What a file is, in the words of the report (mirrors validate_file's dispatch)."""
    if not isinstance(doc, dict):
        return "unreadable file"
    if "dist" in doc and any(s in doc for s in SECTIONS):
        return "Collector Builder manifest"
    if name.endswith(".json") or ("panels" in doc and "uid" in doc):
        return "dashboard"
    if "service" in doc and any(s in doc for s in SECTIONS):
        return "Collector config"
    if isinstance(doc.get("config"), dict) and ("mode" in doc or "image" in doc):
        return "Helm values file"
    if "route" in doc and "receivers" in doc:
        return "Alertmanager config"
    if "tests" in doc and "rule_files" in doc:
        return "promtool rule test"
    if "scrape_configs" in doc or "rule_files" in doc or "alerting" in doc:
        return "Prometheus config"
    if "groups" in doc and "apiVersion" not in doc:
        return "Prometheus rule file"
    if "services" in doc:
        return "compose file"
    if "apiVersion" in doc:
        for key, kind in (("datasources", "Grafana datasource file"), ("providers", "Grafana dashboard provider"),
                          ("groups", "Grafana alert rule file"), ("policies", "Grafana notification policy file"),
                          ("contactPoints", "Grafana contact point file"), ("muteTimes", "Grafana mute timing file")):
            if key in doc:
                return kind
        return "Grafana provisioning file"
    if is_tempo(doc):
        return "Tempo config"
    return "unrecognised file"


def _collect(context: Context, docs: dict[Path, Any], beside: bool = True) -> None:
    """Provisioned datasource uids and contact points among the checked files, else next to them."""
    for doc in docs.values():
        if not isinstance(doc, dict) or "apiVersion" not in doc:
            continue
        if isinstance(doc.get("datasources"), list):
            context.datasource_uids = (context.datasource_uids or set()) | {
                str(ds["uid"]) for ds in doc["datasources"] if isinstance(ds, dict) and ds.get("uid")}
        if isinstance(doc.get("contactPoints"), list):
            context.contact_points = (context.contact_points or set()) | {
                str(cp["name"]) for cp in doc["contactPoints"] if isinstance(cp, dict) and cp.get("name")}
    if context.datasource_uids is None and beside:  # a dashboard checked alone: use the provisioning beside it
        for file in docs:
            for parent in file.resolve().parents:
                found = sorted((parent / "provisioning" / "datasources").glob("*.y*ml"))
                found += sorted((parent / "grafana" / "provisioning" / "datasources").glob("*.y*ml"))
                if found:
                    _collect(context, {p: _parse(p) for p in found}, beside=False)
                    return


# -- Grafana dashboards and alert rules ------------------------------------------------------------

BUILTIN_DATASOURCES = {"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --", "__expr__"}


def check_dashboard(path: str, doc: dict[str, Any], context: Context) -> list[Problem]:
    """A dashboard JSON model: identity, panels, and every datasource it queries."""
    problems: list[Problem] = []
    for key in ("title", "uid"):
        if not isinstance(doc.get(key), str) or not doc.get(key):
            problems.append(Problem(path, f"dashboard: missing {key!r}"))
    uid = str(doc.get("uid") or "")
    if len(uid) > 40:
        problems.append(Problem(path, f"dashboard uid {uid!r} is longer than Grafana's 40 characters"))
    if uid and uid in context.dashboard_uids and context.dashboard_uids[uid] != path:
        problems.append(Problem(path, f"dashboard uid {uid!r} is also used by {context.dashboard_uids[uid]}"))
    context.dashboard_uids.setdefault(uid, path)
    if not isinstance(doc.get("schemaVersion"), int):
        problems.append(Problem(path, "dashboard: missing schemaVersion (export it with 'Export for sharing' off)"))
    panels = doc.get("panels")
    if not isinstance(panels, list):
        return problems + [Problem(path, "dashboard: 'panels' must be a list")]
    problems += _unchecked(path, context)
    variables = {v.get("name") for v in (doc.get("templating") or {}).get("list") or [] if isinstance(v, dict)}
    ids: set[Any] = set()
    for panel in _panels(panels):
        label = f"panel {panel.get('id')} ({panel.get('title', '')!s})"
        if panel.get("id") in ids:
            problems.append(Problem(path, f"{label}: duplicate panel id"))
        ids.add(panel.get("id"))
        if not panel.get("type"):
            problems.append(Problem(path, f"{label}: missing 'type'"))
        for where, ref in _datasource_uids(panel):
            problems.extend(_check_uid(path, f"{label}{where}", ref, context, variables))
    for var in (doc.get("templating") or {}).get("list") or []:
        if isinstance(var, dict):
            for where, ref in _datasource_uids(var):
                problems.extend(_check_uid(path, f"variable {var.get('name')}{where}", ref, context, variables))
    return problems


def _panels(panels: list[Any]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        if isinstance(panel, dict):
            yield panel
            yield from _panels(panel.get("panels") or [])  # collapsed rows hold theirs


def _datasource_uids(node: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, uid) of the datasource of a panel or variable and of each of its targets."""
    ds = node.get("datasource")
    if isinstance(ds, dict) and ds.get("uid"):
        yield "", str(ds["uid"])
    for i, target in enumerate(node.get("targets") or []):
        tds = target.get("datasource") if isinstance(target, dict) else None
        if isinstance(tds, dict) and tds.get("uid"):
            yield f" target {target.get('refId', i)}", str(tds["uid"])


def _check_uid(path: str, label: str, uid: str, context: Context, variables: set[Any] = frozenset()) -> list[Problem]:
    if uid in BUILTIN_DATASOURCES:
        return []
    if uid.startswith("$"):
        name = uid.strip("${}").split(":")[0]
        return [] if name in variables else [Problem(path, f"{label}: datasource variable {uid!r} is not defined")]
    if context.datasource_uids is None:  # said once per file by _unchecked
        return []
    if uid not in context.datasource_uids:
        known = ", ".join(sorted(context.datasource_uids))
        return [Problem(path, f"{label}: datasource uid {uid!r} is not provisioned (provisioned: {known})")]
    return []


def _unchecked(path: str, context: Context) -> list[Problem]:
    if context.datasource_uids is not None:
        return []
    return [Problem(path, "datasource uids not checked: no provisioned datasources among the checked files "
                          "or beside them (add your grafana/provisioning/datasources)", True)]


def check_grafana_rules(path: str, groups: Any, context: Context) -> list[Problem]:
    """Grafana-managed alert rules: each rule's condition is one of its queries, each query's
    datasource is provisioned, rule uids are unique."""
    if not isinstance(groups, list):
        return [Problem(path, "groups must be a list")]
    problems: list[Problem] = _unchecked(path, context)
    uids: set[str] = set()
    for g, group in enumerate(groups):
        if not isinstance(group, dict):
            problems.append(Problem(path, f"groups[{g}] must be a mapping"))
            continue
        for key in ("name", "folder", "interval"):
            if not group.get(key):
                problems.append(Problem(path, f"groups[{g}] ({group.get('name')}): missing {key!r}"))
        for rule in group.get("rules") or []:
            label = f"rule {rule.get('title') or rule.get('uid')}"
            if rule.get("uid") in uids:
                problems.append(Problem(path, f"{label}: duplicate uid {rule.get('uid')!r}"))
            uids.add(rule.get("uid"))
            data = rule.get("data") or []
            refs = {q.get("refId") for q in data if isinstance(q, dict)}
            if rule.get("condition") not in refs:
                problems.append(Problem(path, f"{label}: condition {rule.get('condition')!r} is not a refId of its data"))
            for q in data:
                if isinstance(q, dict):
                    problems.extend(_check_uid(path, f"{label} query {q.get('refId')}", str(q.get("datasourceUid")),
                                               context))
    return problems


def _check_policies(path: str, policies: Any, context: Context) -> list[Problem]:
    problems: list[Problem] = []

    def walk(node: Any, where: str) -> None:
        if not isinstance(node, dict):
            return
        receiver = node.get("receiver")
        if receiver and context.contact_points is not None and receiver not in context.contact_points:
            problems.append(Problem(path, f"{where}: receiver {receiver!r} is not a provisioned contact point"))
        for i, route in enumerate(node.get("routes") or []):
            walk(route, f"{where}.routes[{i}]")

    for i, policy in enumerate(policies or []):
        walk(policy, f"policies[{i}]")
    return problems


# -- Tempo -----------------------------------------------------------------------------------------

TEMPO_KEYS = {
    "target", "http_api_prefix", "stream_over_http_enabled", "multitenancy_enabled", "server", "distributor",
    "ingester", "live_store", "block_builder", "backend_scheduler", "backend_worker", "ingester_client",
    "metrics_generator", "metrics_generator_client", "querier", "query_frontend", "frontend_worker", "compactor",
    "storage", "overrides", "memberlist", "usage_report", "cache", "ingest", "partition_ring_live_store",
}
TEMPO_BACKENDS = ("local", "s3", "gcs", "azure")
TEMPO_PROCESSORS = ("service-graphs", "span-metrics", "local-blocks")


def is_tempo(doc: dict[str, Any]) -> bool:
    storage = doc.get("storage")
    return "distributor" in doc or (isinstance(storage, dict) and "trace" in storage)


def check_tempo(path: str, doc: dict[str, Any]) -> list[Problem]:
    """Tempo 3.x, structurally (Tempo cannot run here): known sections, a receiver, a storage
    backend with its settings, remote write for the metrics generator, known processors."""
    from otel_perf._internal.config.errors import unknown

    problems: list[Problem] = []
    for key in doc:
        if key not in TEMPO_KEYS:
            problems.append(Problem(path, str(unknown("unknown Tempo section", key, TEMPO_KEYS)).split(" (accepted")[0]))
    receivers = ((doc.get("distributor") or {}).get("receivers")) or {}
    if not receivers:
        problems.append(Problem(path, "distributor.receivers: no receiver (Tempo would accept no traces)"))
    trace = (doc.get("storage") or {}).get("trace") or {}
    backend = trace.get("backend")
    if backend not in TEMPO_BACKENDS:
        problems.append(Problem(path, f"storage.trace.backend: {backend!r} is not one of {', '.join(TEMPO_BACKENDS)}"))
    elif not isinstance(trace.get(backend), dict):
        problems.append(Problem(path, f"storage.trace.{backend}: missing the settings of the {backend} backend"))
    generator = doc.get("metrics_generator")
    if isinstance(generator, dict):
        writes = ((generator.get("storage") or {}).get("remote_write")) or []
        if not writes or not all(isinstance(w, dict) and w.get("url") for w in writes):
            problems.append(Problem(path, "metrics_generator.storage.remote_write: needs a url (where span metrics go)"))
    processors = ((((doc.get("overrides") or {}).get("defaults") or {}).get("metrics_generator") or {})
                  .get("processors")) or []
    for name in processors:
        if name not in TEMPO_PROCESSORS:
            problems.append(Problem(path, f"overrides.defaults.metrics_generator.processors: unknown {name!r} "
                                          f"(accepted: {', '.join(TEMPO_PROCESSORS)})"))
    port = (doc.get("server") or {}).get("http_listen_port")
    if port is not None and not (isinstance(port, int) and 0 < port < 65536):
        problems.append(Problem(path, f"server.http_listen_port: {port!r} is not a port number"))
    return problems
