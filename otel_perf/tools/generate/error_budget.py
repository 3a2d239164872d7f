"""The error-budget dashboard: per SLO, budget remaining over the period, burn rate, time to exhaustion.

It reads the Sloth-compatible ``slo:*`` series (``generate/sloth.py``), so it shows every SLO recorded
that way, otel-perf's and any a team generated with Sloth itself.
"""

from __future__ import annotations

from typing import Any

from otel_perf._internal.config.sla import SLO
from otel_perf.tools.generate.dashboards import Board, Q, graph, grid, single
from otel_perf.tools.generate.sloth import KEEP, PERIOD_DAYS, SLI

SEL = '{sloth_service=~"$service"}'
LEGEND = "{{sloth_service}} {{sloth_slo}}"
REMAINING = f"slo:period_error_budget_remaining:ratio{SEL}"
BUDGET = f"slo:error_budget:ratio{SEL}"


def burn(window: str) -> str:
    """How many times faster than the period allows the budget burned over ``window`` (1 = on budget)."""
    return f"{SLI}{window}{SEL} / on({KEEP}) group_left {BUDGET}"


def error_budget(slo: SLO) -> dict[str, Any]:
    b = Board("otel-perf-error-budget", "Error budget",
              f"Per SLO ({PERIOD_DAYS}-day rolling period): budget remaining, burn rate and time to exhaustion, "
              "from the Sloth-compatible slo:* recording rules.", ["slo", "error-budget"])
    b.row(f"Budget over the {PERIOD_DAYS}-day period")
    b.add(single(f"Budget remaining ({PERIOD_DAYS}d)",
                 "Share of the period's error budget not yet spent (below 0: the SLO is breached).",
                 "percentunit", [Q(REMAINING, LEGEND)], 0, 0.25, good_above=True))
    b.add(graph("Budget remaining over time", "The rolling-period budget remaining, per SLO.", "percentunit",
                [Q(REMAINING, LEGEND)], 0, 0.25, good_above=True))
    b.row("Burn rate and exhaustion")
    b.add(graph("Burn rate", "Budget burn speed (1 = the whole budget spent in exactly one period). "
                "The fast-burn page fires at 14.4x over 1h and 5m.", "none",
                [Q(f"slo:current_burn_rate:ratio{SEL}", f"5m {LEGEND}"), Q(burn("1h"), f"1h {LEGEND}"),
                 Q(burn("6h"), f"6h {LEGEND}")], 1, 14.4))
    b.add(single("Time to exhaustion (at the last hour's burn rate)",
                 "How long the remaining budget lasts if the last hour's burn rate continues; "
                 "no value while nothing burns.", "s",
                 [Q(f"clamp_min({REMAINING}, 0) * {PERIOD_DAYS * 86400} / on({KEEP}) ({burn('1h')} > 0)", LEGEND)],
                 86400, 7 * 86400, good_above=True))
    b.add(graph("SLI against the objective", "Share of good requests over the last hour and the SLO objective.",
                "percentunit", [Q(f"1 - {SLI}1h{SEL}", f"SLI {LEGEND}"),
                                Q(f"slo:objective:ratio{SEL}", f"objective {LEGEND}")]))
    b.add(grid("SLOs", "Every SLO with its objective, budget remaining and current burn rate.", "percentunit",
               [Q(f"slo:objective:ratio{SEL}", instant=True), Q(REMAINING, instant=True),
                Q(f"slo:current_burn_rate:ratio{SEL}", instant=True)]))
    return b.json()


def render(slo: SLO) -> dict[str, dict[str, Any]]:
    return {"error-budget": error_budget(slo)}
