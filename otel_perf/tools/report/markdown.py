"""The report as Markdown: the summary a CI job posts (GitHub step summary, merge-request comment)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from otel_perf.tools.report import model


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}%}"


def day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def vital_value(value: float | None, unit: str) -> str:
    return "-" if value is None else (ms(value) if unit == "s" else f"{value:.3f}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def regression_line(r: dict[str, Any]) -> str:
    what = "p95 of route" if r["kind"] == "route" else "mean of query"
    return (f"{r['period']} vs {r['previous']}: {what} `{_cell(r['key'][:100])}` {r['change']:+.0%} "
            f"({ms(r['before'])} -> {ms(r['after'])})")


def render(report: dict[str, Any]) -> str:
    s = report["sla"]
    lines = [
        "## otel-perf performance report",
        "",
        f"{day(report['start'])} to {day(report['end'])} ({report['window']}), from {report['source']}.",
        "",
        f"**Verdict: {model.verdict(report)}.**",
        "",
        f"### Regressions (> {s['regression']:.0%} worse than the period before)",
        "",
    ]
    lines += [f"- :x: REGRESSION {regression_line(r)}" for r in report["regressions"]] or ["None."]
    lines += ["", f"### Latency per route (SLA: p95 < {ms(s['p95'])})", "",
              "| route | requests | p50 | p95 | p99 | SLA |", "|---|---:|---:|---:|---:|---|"]
    for r in report["latency"]:
        w = r["window"]
        ok = "ok" if w.get("p95") is not None and w["p95"] <= s["p95"] else "over" if w.get("p95") else "-"
        lines.append(f"| `{_cell(r['route'])}` | {r['requests']} | {ms(w.get('p50'))} | {ms(w.get('p95'))} "
                     f"| {ms(w.get('p99'))} | {ok} |")
    if report["periods"]:
        labels = [p["label"] for p in report["periods"]]
        lines += ["", "### p95 per period", "", "| route | " + " | ".join(labels) + " |",
                  "|---|" + "---:|" * len(labels)]
        for r in report["latency"]:
            cells = [ms(p["routes"].get(r["route"], {}).get("p95")) for p in report["periods"]]
            lines.append(f"| `{_cell(r['route'])}` | " + " | ".join(cells) + " |")
    lines += ["", f"### Errors and error budget (SLA: < {pct(s['error_rate'])} 5xx)", ""]
    if report["errors"]:
        lines += ["| service | requests | 5xx | error rate | budget remaining |", "|---|---:|---:|---:|---:|"]
        for e in report["errors"]:
            remaining = next((b for b in reversed(e["budget"]) if b is not None), None)
            rate = e["errors"] / e["requests"] if e["requests"] else None
            lines.append(f"| `{_cell(e['job'])}` | {e['requests']} | {e['errors']} | {pct(rate, 2)} | {pct(remaining)} |")
    else:
        lines.append("No error counts in this source.")
    lines += ["", f"### Slowest query shapes (SLA: mean < {ms(s['db_mean'])})", ""]
    if report["queries"]:
        lines += ["| query shape | calls | mean | total time | trend (first -> last period) |", "|---|---:|---:|---:|---|"]
        for q in report["queries"]:
            means = [m for m in q["means"] if m is not None]
            trend = f"{means[-1] / means[0] - 1:+.0%}" if len(means) > 1 and means[0] else "-"
            lines.append(f"| `{_cell(q['shape'][:100])}` | {q['calls']} | {ms(q['mean'])} | {q['total']:.1f} s | {trend} |")
    else:
        lines.append("No statements in this source.")
    lines += ["", "### Core Web Vitals (p75 per page)", ""]
    if report["vitals"]:
        lines += ["| vital | page | device | p75 | good / poor | rating |", "|---|---|---|---:|---|---|"]
        for v in report["vitals"]:
            for p in v["pages"]:
                lines.append(f"| {v['vital'].upper()} | `{_cell(p['page'])}` | {p['device']} | "
                             f"{vital_value(p['p75'], v['unit'])} | {vital_value(v['good'], v['unit'])} / "
                             f"{vital_value(v['poor'], v['unit'])} | {p['rating']} |")
    else:
        lines.append("No page views with Core Web Vitals in this source.")
    return "\n".join(lines) + "\n"
