"""The SLA spec's SLOs in the formats other SLO tools read: OpenSLO v1 and Sloth's ``prometheus/v1``.

Two SLOs of the spec travel: availability (``http_error_rate``: the share of 5xx responses allowed)
and latency (``http_latency_target`` of requests within ``http_latency``). ``to_openslo``/``to_sloth``
write them for one service; ``from_openslo``/``from_sloth`` read such files back into the spec
(``SLO`` values; everything else keeps its value from the base spec). Files written by other tools
are read too: an SLO whose good or bad query selects a ``le`` bucket is the latency SLO, any other
is the availability SLO. What otel-perf cannot honour (other burn-rate windows, periods other than
30 days, several SLOs of one kind) comes back as warnings, never silently.

``otel-perf slo export`` and ``otel-perf slo import`` are the command line of this module.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any

import click
import yaml

from otel_perf._internal import catalogue
from otel_perf._internal.config.sla import SLO
from otel_perf.tools.generate.rules import BURN_WINDOWS, Timing, le

HTTP = catalogue.HTTP_SERVER_DURATION.prometheus
STATUS = catalogue.label("http.response.status_code")
OPENSLO = "openslo/v1"
SLOTH = "prometheus/v1"
PERIOD = "30d"
AVAILABILITY, LATENCY = "requests-availability", "requests-latency"
SEVERITY = {"critical": "page", "warning": "ticket"}  # otel-perf severity -> Sloth/OpenSLO wording
HELP = {"help_option_names": ["-h", "--help"]}
_LE = re.compile(r'le=~?"(?P<value>[0-9.eE+-]+)')


@dataclass
class Imported:
    """The spec values read from a file, and what could not be carried over."""

    values: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def apply(self, base: SLO, source: str) -> SLO:
        return base.with_overrides(self.values, source)


def _d(seconds: int) -> str:
    return Timing().d(seconds)


def _queries(slo: SLO, service: str, window: str | None = None) -> dict[str, dict[str, str]]:
    """Prometheus queries per SLO: counters (OpenSLO, ``counter: true``) or rates over ``window`` (Sloth)."""
    job = f'job="{service}"'

    def q(selector: str, suffix: str = "count") -> str:
        series = f"{HTTP}_{suffix}{{{selector}}}"
        return f"sum(rate({series}[{window}]))" if window else f"sum({series})"

    return {
        AVAILABILITY: {"bad": q(f'{job}, {STATUS}=~"5.."'), "total": q(job)},
        LATENCY: {"good": q(f"{job}, {le(slo.http_latency)}", "bucket"), "total": q(job)},
    }


def _describe(slo: SLO) -> dict[str, tuple[float, str]]:
    ms = f"{slo.http_latency * 1000:g} ms"
    return {
        AVAILABILITY: (1 - slo.http_error_rate, f"Requests answered without a server error (5xx); "
                                                f"at most {slo.http_error_rate:.2%} may fail."),
        LATENCY: (slo.http_latency_target, f"Requests answered within {ms}; "
                                           f"at least {slo.http_latency_target:.0%} must be."),
    }


# -- OpenSLO v1 ----------------------------------------------------------------------------------


def to_openslo(slo: SLO, service: str) -> list[dict[str, Any]]:
    """Service, SLI, SLO and AlertPolicy documents (one policy per burn-rate window pair)."""
    docs: list[dict[str, Any]] = [{"apiVersion": OPENSLO, "kind": "Service", "metadata": {"name": service},
                                   "spec": {"description": f"{service}, measured by otel-perf"}}]
    queries = _queries(slo, service)
    for name, (target, description) in _describe(slo).items():
        ratio: dict[str, Any] = {"counter": True}
        for kind, query in queries[name].items():
            ratio[kind] = {"metricSource": {"type": "Prometheus", "spec": {"query": query}}}
        docs.append({"apiVersion": OPENSLO, "kind": "SLI", "metadata": {"name": f"{service}-{name}"},
                     "spec": {"description": description, "ratioMetric": ratio}})
        policies = []
        for severity, factor, long, short in BURN_WINDOWS:
            policy = f"{service}-{name}-burn-{factor:g}x-{_d(long)}"
            policies.append(policy)
            docs.append({
                "apiVersion": OPENSLO, "kind": "AlertPolicy", "metadata": {"name": policy},
                "spec": {
                    "description": f"{factor:g}x the sustainable burn rate over {_d(long)} and {_d(short)}",
                    "alertWhenBreaching": True, "alertWhenResolved": False,
                    # lookbackWindow is the long window; alertAfter the short one that must agree
                    # (the SRE workbook pair; otel-perf's alerts evaluate both).
                    "conditions": [{"kind": "AlertCondition", "metadata": {"name": f"{policy}-condition"},
                                    "spec": {"severity": SEVERITY[severity], "condition": {
                                        "kind": "burnrate", "op": "gte", "threshold": factor,
                                        "lookbackWindow": _d(long), "alertAfter": _d(short)}}}],
                    "notificationTargets": [{"targetRef": f"otel-perf-{SEVERITY[severity]}"}],
                },
            })
        docs.append({
            "apiVersion": OPENSLO, "kind": "SLO",
            "metadata": {"name": f"{service}-{name}", "displayName": name},
            "spec": {"description": description, "service": service, "indicatorRef": f"{service}-{name}",
                     "timeWindow": [{"duration": PERIOD, "isRolling": True}], "budgetingMethod": "Occurrences",
                     "objectives": [{"displayName": name, "target": round(target, 12)}],
                     "alertPolicies": policies},
        })
    return docs


def from_openslo(docs: list[dict[str, Any]]) -> Imported:
    out = Imported()
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in docs:
        if not isinstance(doc, dict) or not str(doc.get("apiVersion", "")).startswith("openslo/"):
            raise ValueError("not an OpenSLO document (apiVersion openslo/v1)")
        by_kind.setdefault(doc.get("kind", ""), {})[doc.get("metadata", {}).get("name", "")] = doc
    if not by_kind.get("SLO"):
        raise ValueError("no OpenSLO SLO document")
    for name, doc in by_kind["SLO"].items():
        spec = doc.get("spec", {})
        sli = spec.get("indicator") or by_kind.get("SLI", {}).get(spec.get("indicatorRef", ""))
        if sli is None:
            raise ValueError(f"SLO {name}: its SLI ({spec.get('indicatorRef')}) is not in the file")
        ratio = sli.get("spec", {}).get("ratioMetric")
        if not ratio:
            out.warnings.append(f"SLO {name}: only ratioMetric SLIs are supported; skipped")
            continue
        queries = {k: v["metricSource"]["spec"]["query"] for k, v in ratio.items()
                   if k in ("good", "bad", "total") and isinstance(v, dict)}
        objectives = spec.get("objectives") or []
        if len(objectives) != 1 or "target" not in objectives[0]:
            raise ValueError(f"SLO {name}: expected one objective with a target")
        for window in spec.get("timeWindow") or []:
            if window.get("duration") != PERIOD or not window.get("isRolling", False):
                out.warnings.append(f"SLO {name}: time window {window} read as a rolling {PERIOD}")
        _take(out, name, float(objectives[0]["target"]), queries)
        _check_policies(out, name, spec.get("alertPolicies") or [], by_kind.get("AlertPolicy", {}))
    return out


def _check_policies(out: Imported, slo_name: str, refs: list[Any], policies: dict[str, dict[str, Any]]) -> None:
    wanted = {(factor, _d(long), _d(short)) for _, factor, long, short in BURN_WINDOWS}
    found = set()
    for ref in refs:
        policy = ref if isinstance(ref, dict) and ref.get("kind") == "AlertPolicy" else policies.get(
            ref.get("alertPolicyRef") if isinstance(ref, dict) else ref)
        if policy is None:
            out.warnings.append(f"SLO {slo_name}: alert policy {ref} is not in the file")
            continue
        for condition in policy.get("spec", {}).get("conditions", []):
            c = condition.get("spec", {}).get("condition", {})
            if c.get("kind") == "burnrate":
                found.add((float(c.get("threshold", 0)), c.get("lookbackWindow"), c.get("alertAfter")))
    if found and found != wanted:
        out.warnings.append(f"SLO {slo_name}: burn-rate conditions {sorted(found, key=str)} differ from "
                            f"otel-perf's (SRE workbook: {sorted(wanted, key=str)}); otel-perf alerts on its own")


def _take(out: Imported, name: str, objective: float, queries: dict[str, str]) -> None:
    """Map one SLO onto the spec: a query on a ``le`` bucket makes it the latency SLO."""
    if not 0 < objective < 1:
        raise ValueError(f"SLO {name}: objective {objective} is not between 0 and 1 (exclusive)")
    bucket = next((m for q in queries.values() if (m := _LE.search(q))), None)
    kind = LATENCY if bucket else AVAILABILITY
    keys = ("http_latency_target", "http_latency") if bucket else ("http_error_rate",)
    if any(k in out.values for k in keys):
        out.warnings.append(f"SLO {name}: a second {kind} SLO; the first one is kept")
        return
    if bucket:
        out.values["http_latency_target"] = round(objective, 12)
        out.values["http_latency"] = float(bucket.group("value"))
    else:
        out.values["http_error_rate"] = round(1 - objective, 12)


# -- Sloth prometheus/v1 -------------------------------------------------------------------------


def to_sloth(slo: SLO, service: str) -> dict[str, Any]:
    window = "{{.window}}"
    queries = _queries(slo, service, window)
    spec: dict[str, Any] = {"version": SLOTH, "service": service, "labels": {"owner": "otel-perf"}, "slos": []}
    for name, (target, description) in _describe(slo).items():
        q = queries[name]
        error = q["bad"] if "bad" in q else f"({q['total']} - {q['good']})"
        spec["slos"].append({
            "name": name,
            "objective": round(target * 100, 10),
            "description": description,
            "labels": {"category": "availability" if name == AVAILABILITY else "latency"},
            "sli": {"events": {"error_query": error, "total_query": q["total"]}},
            "alerting": {
                "name": "ApiErrorBudgetBurn" if name == AVAILABILITY else "ApiLatencyBudgetBurn",
                "annotations": {"summary": description},
                "page_alert": {"labels": {"severity": "critical"}},
                "ticket_alert": {"labels": {"severity": "warning"}},
            },
        })
    return spec


def from_sloth(doc: dict[str, Any]) -> Imported:
    if not isinstance(doc, dict) or doc.get("version") != SLOTH:
        raise ValueError(f"not a Sloth spec (version: {SLOTH})")
    out = Imported()
    for item in doc.get("slos") or []:
        name, sli = item.get("name", "?"), item.get("sli") or {}
        if "events" in sli:
            queries = {"bad": sli["events"]["error_query"], "total": sli["events"]["total_query"]}
        elif "raw" in sli:
            queries = {"ratio": sli["raw"]["error_ratio_query"]}
        else:
            out.warnings.append(f"SLO {name}: plugin SLIs cannot be read; skipped")
            continue
        _take(out, name, float(item["objective"]) / 100, queries)
    if not out.values:
        raise ValueError("the Sloth spec has no SLO otel-perf can read")
    return out


# -- files ---------------------------------------------------------------------------------------


def read(text: str) -> Imported:
    """An OpenSLO (one or more YAML documents) or Sloth file, told apart by its content."""
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    if len(docs) == 1 and isinstance(docs[0], dict) and "version" in docs[0]:
        return from_sloth(docs[0])
    return from_openslo(docs)


def dump(fmt: str, slo: SLO, service: str) -> str:
    if fmt == "sloth":
        return yaml.safe_dump(to_sloth(slo, service), sort_keys=False, width=1000)
    return yaml.safe_dump_all(to_openslo(slo, service), sort_keys=False, width=1000)


@click.group(context_settings=HELP, short_help="Export or import the SLOs as OpenSLO v1 or Sloth specs.")
def cli() -> None:
    """Write the SLA spec's SLOs as OpenSLO v1 or Sloth prometheus/v1, or read such a file back.

    \b
    Examples:
      otel-perf slo export --format openslo --service shop -o slo.openslo.yaml
      otel-perf slo import slo.openslo.yaml -o performance.yml
    """


@cli.command("export", context_settings=HELP)
@click.option("--format", "fmt", type=click.Choice(["openslo", "sloth"]), default="openslo", show_default=True)
@click.option("--service", required=True, help="Prometheus job of the service (service.namespace/service.name).")
@click.option("--config", type=click.Path(exists=True, dir_okay=False),
              help="YAML file with an `slo:` section (default: OTEL_PERF_CONFIG, else the built-in spec).")
@click.option("-o", "--output", default="-", show_default=True, type=click.File("w"), help="File to write, - for stdout.")
def export(fmt: str, service: str, config: str | None, output: Any) -> None:
    """Write the SLOs (availability, latency) of the SLA spec for SERVICE.

    \b
    Example:
      otel-perf slo export --format sloth --service shop -o sloth.yml && sloth validate -i sloth.yml
    """
    output.write(dump(fmt, _spec(config), service))


@cli.command("import", context_settings=HELP)
@click.argument("file", type=click.File("r"))
@click.option("-o", "--output", default="-", show_default=True, type=click.File("w"),
              help="otel-perf YAML (an `slo:` section) to write, - for stdout.")
def import_(file: Any, output: Any) -> None:
    """Read an OpenSLO v1 or Sloth prometheus/v1 FILE (- for stdin) into an otel-perf `slo:` section.

    \b
    Example:
      otel-perf slo import sloth.yml -o performance.yml && OTEL_PERF_CONFIG=performance.yml otel-perf generate
    """
    from otel_perf._internal.config.errors import ConfigError

    try:
        imported = read(file.read())
        imported.apply(SLO(), file.name)  # the values must make a valid spec
    except (ValueError, KeyError, TypeError, yaml.YAMLError, ConfigError) as exc:
        raise click.ClickException(f"{file.name}: {exc}") from None
    for warning in imported.warnings:
        click.echo(f"warning: {warning}", err=True)
    output.write(yaml.safe_dump({"slo": imported.values}, sort_keys=True))


def _spec(config: str | None) -> SLO:
    from otel_perf._internal.config.errors import ConfigError
    from otel_perf._internal.config.settings import Settings

    try:
        return Settings.resolve({"config": config} if config else {}).slo
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
