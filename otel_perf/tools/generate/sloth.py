"""Sloth-compatible SLO recording rules, so the community's Sloth dashboards work on otel-perf data.

Sloth (https://sloth.dev) records, per SLO, ``slo:sli_error:ratio_rate<window>`` for the burn-rate
windows and 30d, and the metadata series ``slo:objective:ratio``, ``slo:error_budget:ratio``,
``slo:time_period:days``, ``slo:current_burn_rate:ratio``, ``slo:period_burn_rate:ratio``,
``slo:period_error_budget_remaining:ratio`` and ``sloth_slo_info``, all labelled ``sloth_service``,
``sloth_slo``, ``sloth_id`` (``<service>-<slo>``) and, on the SLIs, ``sloth_window``.

Differences from a Sloth-generated file, on purpose: one rule covers every service (``sloth_service``
is the Prometheus ``job``, which stays on the series too) instead of one rule per service; the SLIs
reuse otel-perf's own ``job:otel_perf_http_*:ratio_rate<window>`` recordings (same windows as Sloth's)
rather than repeating their PromQL; the alerts stay otel-perf's (``ApiErrorBudgetBurn*``, same
multi-window multi-burn-rate table), so nothing pages twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from otel_perf._internal.config.sla import SLO
from otel_perf.tools.generate.rules import (
    DAY,
    RECORDED_WINDOWS,
    Timing,
    errors_ratio,
    requests_rate,
    slow_ratio,
    window_name,
)

PERIOD_DAYS = 30
SLI = "slo:sli_error:ratio_rate"
SERVICE_LABEL = "job"  # Prometheus' service identity (service.namespace/service.name) becomes sloth_service
KEEP = "sloth_id, sloth_slo, sloth_service"


@dataclass(frozen=True)
class SloDef:
    """One SLO of the spec as Sloth sees it: a name, an objective and the recorded error ratio."""

    name: str  # sloth_slo
    objective: float  # share of good requests, 0..1
    ratio: Any  # window seconds -> recorded error-ratio series name
    description: str


def slos(slo: SLO) -> list[SloDef]:
    ms = f"{slo.http_latency * 1000:g} ms"
    return [
        SloDef("requests-availability", 1 - slo.http_error_rate, errors_ratio,
               f"Share of requests answered without a 5xx (objective {1 - slo.http_error_rate:.2%})."),
        SloDef("requests-latency", slo.http_latency_target, slow_ratio,
               f"Share of requests answered within {ms} (objective {slo.http_latency_target:.0%})."),
    ]


def _num(x: float) -> str:
    return repr(round(x, 12))


def _identify(expr: str, name: str) -> str:
    """Add sloth_service (from job), sloth_slo and sloth_id = <service>-<slo> to every series of ``expr``."""
    with_service = f'label_replace({expr}, "sloth_service", "$1", "{SERVICE_LABEL}", "(.*)")'
    with_slo = f'label_replace({with_service}, "sloth_slo", "{name}", "", "")'
    return f'label_join({with_slo}, "sloth_id", "-", "sloth_service", "sloth_slo")'


def _sel(d: SloDef) -> str:
    return f'{{sloth_slo="{d.name}"}}'


def recording_rules(slo: SLO, t: Timing | None = None) -> list[dict[str, Any]]:
    """The rule groups: one of SLIs and one of metadata per SLO (the group layout Sloth uses)."""
    t = t or Timing()
    groups = []
    # Objective and budget exist for every service that served a request within the longest window.
    present = f"group by ({SERVICE_LABEL}) ({requests_rate(max(RECORDED_WINDOWS))})"
    for d in slos(slo):
        # A service without a single failed request has no 5xx series: its error ratio is 0, not absent.
        slis = [{"record": f"{SLI}{window_name(w)}", "expr": _identify(f"({d.ratio(w)} or 0 * {requests_rate(w)})", d.name),
                 "labels": {"sloth_window": window_name(w)}} for w in RECORDED_WINDOWS]
        short = f"{SLI}{window_name(min(RECORDED_WINDOWS))}{_sel(d)}"
        period = t.d(PERIOD_DAYS * DAY)
        # Sloth's own period SLI: the mean of the shortest-window ratio over the period.
        slis.append({"record": f"{SLI}{PERIOD_DAYS}d",
                     "expr": f"sum_over_time({short}[{period}])\n/ ignoring (sloth_window)\n"
                             f"count_over_time({short}[{period}])",
                     "labels": {"sloth_window": f"{PERIOD_DAYS}d"}})
        budget = f"slo:error_budget:ratio{_sel(d)}"
        meta = [
            {"record": "slo:objective:ratio", "expr": _identify(f"{_num(d.objective)} * {present}", d.name)},
            {"record": "slo:error_budget:ratio", "expr": _identify(f"{_num(1 - d.objective)} * {present}", d.name)},
            {"record": "slo:time_period:days", "expr": _identify(f"{PERIOD_DAYS} * {present}", d.name)},
            {"record": "slo:current_burn_rate:ratio",
             "expr": f"{short}\n/ on({KEEP}) group_left\n{budget}"},
            {"record": "slo:period_burn_rate:ratio",
             "expr": f"{SLI}{PERIOD_DAYS}d{_sel(d)}\n/ on({KEEP}) group_left\n{budget}"},
            {"record": "slo:period_error_budget_remaining:ratio", "expr": f"1 - slo:period_burn_rate:ratio{_sel(d)}"},
            {"record": "sloth_slo_info", "expr": _identify(present, d.name),
             "labels": {"sloth_mode": "otel-perf", "sloth_objective": f"{d.objective * 100:g}", "sloth_spec": "prometheus/v1",
                        "sloth_version": "otel-perf"}},
        ]
        groups += [
            {"name": f"sloth-slo-sli-recordings-{d.name}", "interval": t.d(t.evaluation), "rules": slis},
            {"name": f"sloth-slo-meta-recordings-{d.name}", "interval": t.d(t.evaluation), "rules": meta},
        ]
    return groups


def rules_file(slo: SLO, t: Timing | None = None) -> dict[str, Any]:
    return {"groups": recording_rules(slo, t)}


COMMENT = "Sloth-compatible SLO recording rules (Prometheus 2.42+): Sloth's Grafana dashboards read them."
