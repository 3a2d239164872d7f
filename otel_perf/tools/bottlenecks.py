"""``otel-perf bottlenecks``: why it is slow, as a Markdown report for a pull request or a ticket.

Reads the local summary JSON (``OTEL_PERF_SUMMARY_FILE``; several files, e.g. one per worker, are
merged) and writes the plan findings per query shape (with the fix to try) and the profiles of
slow requests per route (the hottest application frames). Exit status 1 with ``--fail-on-findings``
when there is any plan finding, for CI.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from otel_perf.tools.baseline import read_summary

TITLES = {"seq_scan": "Sequential scan", "row_estimate": "Row estimate", "spill": "Spills to disk"}


def merge(paths: tuple[str, ...]) -> dict[str, Any]:
    findings: dict[str, dict[str, Any]] = {}
    profiles: dict[str, dict[str, Any]] = {}
    for path in paths:
        data = read_summary(path)
        for entry in data.get("plan_findings", ()):
            findings.setdefault(entry["shape"], entry)
        for p in data.get("profiles", ()):
            mine = profiles.setdefault(p["route"], {"route": p["route"], "requests": 0, "samples": 0, "waiting": 0.0,
                                                   "frames": {}})
            mine["requests"] += p["requests"]
            mine["waiting"] += p["waiting"] * p["samples"]
            mine["samples"] += p["samples"]
            for t in p["top"]:  # shares of each file's samples, back to sample counts
                mine["frames"][t["frame"]] = mine["frames"].get(t["frame"], 0) + t["share"] * p["samples"]
    merged = []
    for p in sorted(profiles.values(), key=lambda p: -p["samples"]):
        n = p["samples"] or 1
        top = sorted(p["frames"].items(), key=lambda kv: -kv[1])[:3]
        merged.append({"route": p["route"], "requests": p["requests"], "samples": p["samples"],
                       "waiting": p["waiting"] / n, "top": [{"frame": f, "share": c / n} for f, c in top]})
    return {"plan_findings": list(findings.values()), "profiles": merged}


def markdown(data: dict[str, Any]) -> str:
    out = ["# Why is it slow", ""]
    if data["profiles"]:
        out += ["## Slow requests: where the time went", "",
                "| route | slow requests | hottest frames | waiting |", "|---|---:|---|---:|"]
        for p in data["profiles"]:
            frames = "<br>".join(f"{t['share']:.0%} `{_cell(t['frame'])}`" for t in p["top"])
            out.append(f"| `{_cell(p['route'])}` | {p['requests']} | {frames} | {p['waiting']:.0%} |")
        out += ["", "*waiting*: share of samples where the request was suspended at an `await` "
                "(database, network, locks) rather than running code.", ""]
    if data["plan_findings"]:
        out += ["## Query plans of slow statements", ""]
        for entry in data["plan_findings"]:
            out += [f"### `{_cell(entry['shape'])}`", ""]
            for f in entry["findings"]:
                out.append(f"- **{TITLES.get(f['kind'], f['kind'])}**: {f['message']}.")
                if f.get("suggestion"):
                    out.append(f"  Try: `{f['suggestion']}`")
            out.append("")
    if len(out) == 2:
        out += ["No slow request was profiled and no slow statement had a plan finding.", ""]
    return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


@click.command(short_help="Plan findings and slow-request profiles as a Markdown report.")
@click.argument("summaries", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--markdown", "markdown_path", default="-", show_default=True, type=click.Path(dir_okay=False),
              help="Write the report here ('-': standard output).")
@click.option("--fail-on-findings", is_flag=True, help="Exit 1 when any slow statement has a plan finding.")
def cli(summaries: tuple[str, ...], markdown_path: str, fail_on_findings: bool) -> None:
    """Report why the run in SUMMARIES (local summary JSON files) was slow.

    Example: OTEL_PERF_SUMMARY_FILE=summary.json otel-perf run uvicorn app:app, then
    otel-perf bottlenecks summary.json --markdown why.md
    """
    data = merge(summaries)
    report = markdown(data)
    if markdown_path == "-":
        sys.stdout.write(report)
    else:
        with open(markdown_path, "w", encoding="utf-8") as fh:
            fh.write(report)
    if fail_on_findings and any(e["findings"] for e in data["plan_findings"]):
        raise click.exceptions.Exit(1)
