"""``otel-perf baseline``: record a run's latencies, then fail CI when a later run is slower.

``save`` records per route the request count, p95 and p99, and per query shape the call count and
mean duration. ``check`` compares a new run with the file: a route whose p95, or a shape whose mean,
is more than ``--threshold`` worse (default: the SLA spec's ``regression``, 20 %) fails the check,
exit status 1. Either side may come from

- the local summary JSON (``OTEL_PERF_SUMMARY_FILE``; several files, e.g. one per worker, are merged),
- the JSON of ``otel-perf load --json`` (client-side route latencies, no query shapes),
- a Prometheus server (``--prometheus URL --window 10m``) scraping or receiving otel-perf's metrics.

Noise handling: a row counts only when both runs have at least ``--min-samples`` observations, and
a difference must also exceed an absolute ``--tolerance`` (routes) / ``--query-tolerance`` (shapes)
before it is a regression (10 ms / 1 ms by default), so a 3 -> 7 ms wobble of a fast route's p95 on
a busy CI machine is not a failure. p99 is recorded and shown
but does not gate: it rests on the slowest 1 % and is too noisy for short CI runs.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import click

from otel_perf._internal import catalogue

FORMAT = 1
DEFAULT_MIN_SAMPLES = 20
DEFAULT_TOLERANCE = 0.010  # s: route p95 moves below this are noise (see docs/load-and-baselines.md)
DEFAULT_QUERY_TOLERANCE = 0.001  # s: the same for a query shape's mean
DB_DURATION = catalogue.DB_CLIENT_DURATION.prometheus  # db.client.operation.duration (stable semconv)
DB_SHAPE_LABEL = catalogue.label("db.query.summary")  # on the metric when OTEL_PERF_DB_SHAPE_LABEL=true


# -- reading a run ---------------------------------------------------------------------------------

def from_summaries(paths: tuple[str, ...]) -> dict[str, Any]:
    """A run from local-summary or load-result JSON files (several are merged: see ``_merge``)."""
    runs = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            raise click.UsageError(f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict) or "routes" not in data:
            raise click.UsageError(f"{path}: not an otel-perf summary or load result (no 'routes')")
        runs.append({
            "routes": {f"{r['method']} {r['route']}": {"count": r["count"], "p95": r["p95"], "p99": r["p99"]}
                       for r in data["routes"]},
            "queries": {q["shape"]: {"count": q["count"], "mean": q["mean"]} for q in data.get("queries", [])},
        })
    return {"source": ", ".join(paths), **_merge(runs)}


def _merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine runs of several processes: counts add, means and quantiles are count-weighted.

    Weighted quantiles are an approximation (exact only when the workers saw the same
    distribution, which a balanced pre-fork server roughly gives).
    """
    out: dict[str, dict[str, dict[str, float]]] = {"routes": {}, "queries": {}}
    for kind, fields in (("routes", ("p95", "p99")), ("queries", ("mean",))):
        for run in runs:
            for key, row in run[kind].items():
                acc = out[kind].setdefault(key, {"count": 0, **{f: 0.0 for f in fields}})
                total = acc["count"] + row["count"]
                for f in fields:
                    acc[f] = (acc[f] * acc["count"] + row[f] * row["count"]) / total if total else 0.0
                acc["count"] = total
    return out


def from_prometheus(url: str, window: str, at: float | None = None) -> dict[str, Any]:
    """A run from Prometheus: per route p95/p99 from the histogram buckets, per shape the mean."""
    method, route = catalogue.label("http.request.method"), catalogue.label("http.route")
    hist = catalogue.HTTP_SERVER_DURATION.prometheus
    by = f"{method}, {route}"

    def query(promql: str) -> list[dict[str, Any]]:
        params = {"query": promql, **({"time": str(at)} if at is not None else {})}
        req = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                body = json.load(resp)
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"Prometheus query failed ({url}): {exc}") from None
        if body.get("status") != "success":
            raise click.ClickException(f"Prometheus query failed: {body.get('error', body)}")
        return body["data"]["result"]

    def values(promql: str, *labels: str) -> dict[tuple[str, ...], float]:
        out = {}
        for sample in query(promql):
            value = float(sample["value"][1])
            if math.isfinite(value):
                out[tuple(sample["metric"].get(label, "") for label in labels)] = value
        return out

    counts = values(f"sum by ({by}) (increase({hist}_count[{window}]))", method, route)
    quantile = {q: values(f"histogram_quantile({q}, sum by (le, {by}) (rate({hist}_bucket[{window}])))",
                          method, route) for q in (0.95, 0.99)}
    routes = {f"{m} {r}": {"count": round(n), "p95": quantile[0.95].get((m, r), 0.0),
                           "p99": quantile[0.99].get((m, r), 0.0)}
              for (m, r), n in counts.items() if n > 0}
    calls = values(f"sum by ({DB_SHAPE_LABEL}) (increase({DB_DURATION}_count[{window}]))", DB_SHAPE_LABEL)
    spent = values(f"sum by ({DB_SHAPE_LABEL}) (increase({DB_DURATION}_sum[{window}]))", DB_SHAPE_LABEL)
    queries = {shape: {"count": round(n), "mean": spent.get((shape,), 0.0) / n}
               for (shape,), n in calls.items() if n > 0 and shape}
    return {"source": f"{url} over {window}", "routes": routes, "queries": queries}


def _read_run(summaries: tuple[str, ...], prometheus: str | None, window: str, at: float | None) -> dict[str, Any]:
    if bool(summaries) == bool(prometheus):
        raise click.UsageError("give either --from-summary FILE (one or more) or --prometheus URL")
    return from_summaries(summaries) if summaries else from_prometheus(prometheus, window, at)


# -- comparing -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    kind: str  # route | query
    key: str
    metric: str  # p95 | mean
    base: float | None
    new: float | None
    base_count: int
    new_count: int
    p99_base: float | None
    p99_new: float | None
    status: str  # ok | regression | improved | few samples | new | missing

    @property
    def change(self) -> float | None:
        return self.new / self.base - 1 if self.base and self.new is not None else None


def compare(baseline: dict[str, Any], run: dict[str, Any], threshold: float, min_samples: int,
            tolerance: float = DEFAULT_TOLERANCE, query_tolerance: float = DEFAULT_QUERY_TOLERANCE) -> list[Row]:
    """One row per route and query shape in either run; ``status`` says whether it regressed."""
    rows = []
    for kind, metric, noise in (("routes", "p95", tolerance), ("queries", "mean", query_tolerance)):
        old_rows, new_rows = baseline.get(kind, {}), run.get(kind, {})
        for key in sorted(set(old_rows) | set(new_rows)):
            old, new = old_rows.get(key), new_rows.get(key)
            b, n = (old or {}).get(metric), (new or {}).get(metric)
            bc, nc = int((old or {}).get("count", 0)), int((new or {}).get("count", 0))
            if old is None:
                status = "new"
            elif new is None:
                status = "missing"
            elif min(bc, nc) < min_samples:
                status = "few samples"
            elif n > b * (1 + threshold) and n - b > noise:
                status = "regression"
            elif n < b / (1 + threshold) and b - n > noise:
                status = "improved"
            else:
                status = "ok"
            rows.append(Row(kind[:-1] if kind == "routes" else "query", key, metric, b, n, bc, nc,
                            (old or {}).get("p99"), (new or {}).get("p99"), status))
    return rows


# -- reporting -------------------------------------------------------------------------------------

def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _pct(change: float | None) -> str:
    return "-" if change is None else f"{change:+.0%}"


def markdown(rows: list[Row], threshold: float, failed: bool) -> str:
    head = (f"### otel-perf baseline check: {'**FAILED**' if failed else 'passed'}\n\n"
            f"A route's p95 or a query shape's mean more than {threshold:.0%} worse than the baseline fails.\n\n"
            "| | route / query shape | metric | baseline | now | change | samples (base/now) | status |\n"
            "|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        mark = {"regression": ":x:", "improved": ":rocket:"}.get(r.status, "")
        key = r.key.replace("|", "\\|")
        lines.append(f"| {mark} | `{key[:100]}` | {r.metric} | {_ms(r.base)} | {_ms(r.new)} | {_pct(r.change)} "
                     f"| {r.base_count}/{r.new_count} | {r.status} |")
    return head + "\n".join(lines) + "\n"


def render(rows: list[Row], threshold: float, stream: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream, width=None if stream.isatty() else 140)
    table = Table(title=f"otel-perf baseline check (fail when > {threshold:.0%} worse)")
    for column in ("route / query shape", "metric", "baseline", "now", "change", "p99 now", "samples", "status"):
        table.add_column(column, justify="left" if column in ("route / query shape", "status") else "right",
                         overflow="fold")
    style = {"regression": "[bold red]REGRESSION[/]", "improved": "[green]improved[/]", "ok": "[green]ok[/]"}
    for r in rows:
        table.add_row(r.key[:80], r.metric, _ms(r.base), _ms(r.new), _pct(r.change),
                      _ms(r.p99_new) if r.kind == "route" else "", f"{r.base_count}/{r.new_count}",
                      style.get(r.status, f"[yellow]{r.status}[/]"))
    console.print(table)


# -- commands --------------------------------------------------------------------------------------

_source = [
    click.option("--from-summary", "summaries", multiple=True, type=click.Path(exists=True, dir_okay=False),
                 help="Local summary JSON (OTEL_PERF_SUMMARY_FILE) or `otel-perf load --json` result; repeatable."),
    click.option("--prometheus", metavar="URL", help="Read the run from this Prometheus server instead."),
    click.option("--window", default="10m", show_default=True, help="PromQL range over which to compute."),
    click.option("--at", type=float, help="Evaluation time (Unix seconds) for --prometheus [default: now]."),
]


def _with_source(fn: Any) -> Any:
    for option in reversed(_source):
        fn = option(fn)
    return fn


@click.group(short_help="Record latency baselines and gate on regressions.")
def cli() -> None:
    """Record a baseline (`save`) and fail when a later run is slower (`check`)."""


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@_with_source
def save(file: str, summaries: tuple[str, ...], prometheus: str | None, window: str, at: float | None) -> None:
    """Record per-route p95/p99 and per-query-shape means from a run into FILE (JSON)."""
    run = _read_run(summaries, prometheus, window, at)
    if not run["routes"] and not run["queries"]:
        raise click.ClickException("the run has no requests and no queries: nothing to record")
    data = {"otel_perf_baseline": FORMAT, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **run}
    with open(file, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
    click.echo(f"baseline {file}: {len(run['routes'])} routes, {len(run['queries'])} query shapes")


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@_with_source
@click.option("--threshold", type=click.FloatRange(min=0, min_open=True),
              help="Allowed slowdown as a fraction [default: the SLA spec's regression, 0.2].")
@click.option("--min-samples", default=DEFAULT_MIN_SAMPLES, show_default=True, type=click.IntRange(min=1),
              help="Rows with fewer observations on either side are reported, never failed.")
@click.option("--tolerance", default=DEFAULT_TOLERANCE, show_default=True, type=click.FloatRange(min=0),
              help="Seconds: a route's p95 must also be this much slower to count.")
@click.option("--query-tolerance", default=DEFAULT_QUERY_TOLERANCE, show_default=True,
              type=click.FloatRange(min=0), help="Seconds: the same for a query shape's mean.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False), help="Write a Markdown report here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the comparison as JSON here.")
def check(file: str, summaries: tuple[str, ...], prometheus: str | None, window: str, at: float | None,
          threshold: float | None, min_samples: int, tolerance: float, query_tolerance: float,
          markdown_path: str | None, json_path: str | None) -> None:
    """Compare a new run with the baseline FILE; exit 1 when a route or query shape regressed."""
    try:
        with open(file, encoding="utf-8") as fh:
            baseline = json.load(fh)
    except ValueError as exc:
        raise click.UsageError(f"{file}: not JSON ({exc})") from None
    if baseline.get("otel_perf_baseline") != FORMAT:
        raise click.UsageError(f"{file}: not an otel-perf baseline (format {FORMAT})")
    if threshold is None:
        from otel_perf._internal.config.errors import ConfigError
        from otel_perf._internal.config.settings import Settings

        try:
            threshold = Settings.resolve().slo.regression
        except ConfigError as exc:
            raise click.UsageError(f"invalid configuration: {exc}") from None
    run = _read_run(summaries, prometheus, window, at)
    rows = compare(baseline, run, threshold, min_samples, tolerance, query_tolerance)
    regressions = [r for r in rows if r.status == "regression"]
    render(rows, threshold, sys.stdout)
    report = markdown(rows, threshold, bool(regressions))
    if markdown_path:
        with open(markdown_path, "w", encoding="utf-8") as fh:
            fh.write(report)
    if os.environ.get("GITHUB_STEP_SUMMARY"):  # shows on the GitHub Actions run page
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as fh:
            fh.write(report)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump({"passed": not regressions, "threshold": threshold, "min_samples": min_samples,
                       "tolerance": tolerance, "query_tolerance": query_tolerance, "baseline": file,
                       "source": run["source"],
                       "rows": [{**r.__dict__, "change": r.change} for r in rows]}, fh, indent=2)
    if regressions:
        click.echo(f"otel-perf baseline: {len(regressions)} regression(s): "
                   + ", ".join(f"{r.key} {r.metric} {_pct(r.change)}" for r in regressions[:5]), err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"otel-perf baseline: no regression beyond {threshold:.0%} "
               f"({sum(r.status == 'ok' for r in rows)} compared rows ok)")
