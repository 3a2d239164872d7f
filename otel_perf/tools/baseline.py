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
a busy CI machine is not a failure. A route's error rate gates too: it fails when it rose by more
than ``--error-tolerance`` (default: the SLA's whole error budget, ``slo.http_error_rate``). p99 is
recorded and shown but does not gate: it rests on the slowest 1 % and is too noisy for short CI runs.

A check that compares nothing (an empty summary from a misconfigured job, no row with enough
samples on both sides) fails: silence is not a pass. Comparing a server-side run (summary,
Prometheus) with a client-side one (``otel-perf load``, which adds network and queueing) warns.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
DEFAULT_ERROR_TOLERANCE = 0.001  # share of requests: the default SLA's whole error budget
DB_DURATION = catalogue.DB_CLIENT_DURATION.prometheus  # db.client.operation.duration (stable semconv)
DB_SHAPE_LABEL = catalogue.label("db.query.summary")  # on the metric when OTEL_PERF_DB_SHAPE_LABEL=true


# -- reading a run ---------------------------------------------------------------------------------

def read_summary(path: str, what: str = "an otel-perf summary") -> dict[str, Any]:
    """A summary (or load result) JSON file; anything else is one usage error naming the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise click.UsageError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or "routes" not in data:
        raise click.UsageError(f"{path}: not {what} (no 'routes')")
    return data


def from_summaries(paths: tuple[str, ...]) -> dict[str, Any]:
    """A run from local-summary or load-result JSON files (several are merged: see ``_merge``)."""
    runs = []
    for path in paths:
        data = read_summary(path, "an otel-perf summary or load result")
        runs.append({
            "side": "client" if "scenario" in data else "server",  # `otel-perf load` results name their scenario
            "routes": {f"{r['method']} {r['route']}": {"count": r["count"], "p95": r["p95"], "p99": r["p99"],
                                                       **({"errors": r["errors"]} if "errors" in r else {})}
                       for r in data["routes"]},
            "queries": {q["shape"]: {"count": q["count"], "mean": q["mean"]} for q in data.get("queries", [])},
        })
    sides = {run["side"] for run in runs}
    if len(sides) > 1:
        raise click.UsageError("--from-summary mixes local summaries (server side) and load results (client side)")
    return {"source": ", ".join(paths), "side": sides.pop(), **_merge(runs)}


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
                if "errors" in row:
                    acc["errors"] = acc.get("errors", 0) + row["errors"]
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
    status = catalogue.label("http.response.status_code")
    errors = values(f'sum by ({by}) (increase({hist}_count{{{status}=~"5.."}}[{window}]))', method, route)
    quantile = {q: values(f"histogram_quantile({q}, sum by (le, {by}) (rate({hist}_bucket[{window}])))",
                          method, route) for q in (0.95, 0.99)}
    routes = {f"{m} {r}": {"count": round(n), "p95": quantile[0.95].get((m, r), 0.0),
                           "p99": quantile[0.99].get((m, r), 0.0), "errors": round(errors.get((m, r), 0.0))}
              for (m, r), n in counts.items() if n > 0}
    calls = values(f"sum by ({DB_SHAPE_LABEL}) (increase({DB_DURATION}_count[{window}]))", DB_SHAPE_LABEL)
    spent = values(f"sum by ({DB_SHAPE_LABEL}) (increase({DB_DURATION}_sum[{window}]))", DB_SHAPE_LABEL)
    queries = {shape: {"count": round(n), "mean": spent.get((shape,), 0.0) / n}
               for (shape,), n in calls.items() if n > 0 and shape}
    return {"source": f"{url} over {window}", "side": "server", "routes": routes, "queries": queries}


def _read_run(summaries: tuple[str, ...], prometheus: str | None, window: str, at: float | None) -> dict[str, Any]:
    if bool(summaries) == bool(prometheus):
        raise click.UsageError("give either --from-summary FILE (one or more) or --prometheus URL")
    return from_summaries(summaries) if summaries else from_prometheus(prometheus, window, at)


# -- comparing -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    kind: str  # route | query
    key: str
    metric: str  # p95 | mean | errors (the error rate)
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


COMPARED = ("ok", "regression", "improved")  # statuses of rows that were actually compared


def compare(baseline: dict[str, Any], run: dict[str, Any], threshold: float, min_samples: int,
            tolerance: float = DEFAULT_TOLERANCE, query_tolerance: float = DEFAULT_QUERY_TOLERANCE,
            error_tolerance: float = DEFAULT_ERROR_TOLERANCE) -> list[Row]:
    """One row per route and query shape in either run, and one per route's error rate when both
    runs counted errors; ``status`` says whether it regressed."""
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
            if kind == "routes" and (old or {}).get("errors") is not None and (new or {}).get("errors") is not None:
                rows.append(_error_row(key, old, new, min_samples, error_tolerance))
    return rows


def _error_row(key: str, old: dict[str, Any], new: dict[str, Any], min_samples: int, tolerance: float) -> Row:
    """A route's error rate: a rise by more than ``tolerance`` (a share of requests) regresses."""
    bc, nc = int(old["count"]), int(new["count"])
    b, n = old["errors"] / bc if bc else 0.0, new["errors"] / nc if nc else 0.0
    if min(bc, nc) < min_samples:
        status = "few samples"
    elif n - b > tolerance:
        status = "regression"
    elif b - n > tolerance:
        status = "improved"
    else:
        status = "ok"
    return Row("route", key, "errors", b, n, bc, nc, None, None, status)


@dataclass(frozen=True)
class Noise:
    """The settings that decide what counts: printed with every result."""

    threshold: float
    tolerance: float = DEFAULT_TOLERANCE
    query_tolerance: float = DEFAULT_QUERY_TOLERANCE
    error_tolerance: float = DEFAULT_ERROR_TOLERANCE
    min_samples: int = DEFAULT_MIN_SAMPLES

    def __str__(self) -> str:
        return (f"threshold {self.threshold:.0%}, tolerance {self.tolerance * 1000:g} ms "
                f"(query shapes {self.query_tolerance * 1000:g} ms), error-rate tolerance "
                f"{self.error_tolerance:.2%}, minimum samples {self.min_samples}")


def verdict(rows: list[Row], run: dict[str, Any], min_samples: int) -> str | None:
    """Why the check fails (None when it passes): regressions, or nothing compared at all."""
    regressions = [r for r in rows if r.status == "regression"]
    if regressions:
        return f"{len(regressions)} regression(s): " + ", ".join(
            f"{r.key} {r.metric} {_change(r)}" for r in regressions[:5])
    if not any(r.status in COMPARED for r in rows):
        if not run.get("routes") and not run.get("queries"):
            return f"nothing compared: the new run ({run.get('source')}) has no requests and no query shapes"
        return (f"nothing compared: no route or query shape is in both runs with at least {min_samples} "
                "samples on each side (--min-samples)")
    return None


# -- reporting -------------------------------------------------------------------------------------

def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _pct(change: float | None) -> str:
    return "-" if change is None else f"{change:+.0%}"


def _value(row: Row, value: float | None) -> str:
    return ("-" if value is None else f"{value:.2%}") if row.metric == "errors" else _ms(value)


def _change(row: Row) -> str:
    if row.metric == "errors":  # percentage points: a rise from 0 % has no ratio
        return "-" if row.base is None or row.new is None else f"{(row.new - row.base) * 100:+.2f} pp"
    return _pct(row.change)


def markdown(rows: list[Row], noise: Noise, failure: str | None) -> str:
    head = (f"### otel-perf baseline check: {'**FAILED**' if failure else 'passed'}\n\n"
            + (f"{failure}\n\n" if failure else "")
            + f"A route's p95 or a query shape's mean more than {noise.threshold:.0%} worse than the baseline, "
            f"or a route's error rate up by more than {noise.error_tolerance:.2%}, fails. Noise settings: {noise}.\n\n"
            "| | route / query shape | metric | baseline | now | change | samples (base/now) | status |\n"
            "|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        mark = {"regression": ":x:", "improved": ":rocket:"}.get(r.status, "")
        key = r.key.replace("|", "\\|")
        lines.append(f"| {mark} | `{key[:100]}` | {r.metric} | {_value(r, r.base)} | {_value(r, r.new)} | {_change(r)} "
                     f"| {r.base_count}/{r.new_count} | {r.status} |")
    return head + "\n".join(lines) + "\n"


def render(rows: list[Row], noise: Noise, stream: Any) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=stream, width=None if stream.isatty() else 140)
    table = Table(title=f"otel-perf baseline check (fail when > {noise.threshold:.0%} worse)")
    for column in ("route / query shape", "metric", "baseline", "now", "change", "p99 now", "samples", "status"):
        table.add_column(column, justify="left" if column in ("route / query shape", "status") else "right",
                         overflow="fold")
    style = {"regression": "[bold red]REGRESSION[/]", "improved": "[green]improved[/]", "ok": "[green]ok[/]"}
    for r in rows:
        table.add_row(escape(r.key[:80]), r.metric, _value(r, r.base), _value(r, r.new), _change(r),
                      _ms(r.p99_new) if r.kind == "route" else "", f"{r.base_count}/{r.new_count}",
                      style.get(r.status, f"[yellow]{r.status}[/]"))
    console.print(table)
    console.print(f"noise settings: {noise}", markup=False, soft_wrap=True)


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


@click.group(short_help="Record latency baselines and gate on regressions.", epilog="""\b
Examples:
  otel-perf baseline save base.json --from-summary summary.json
  otel-perf baseline check base.json --from-summary new.json --markdown report.md
  otel-perf baseline check base.json --prometheus http://127.0.0.1:9090 --window 10m --json -
""")
def cli() -> None:
    """Record a baseline (`save`) and fail when a later run is slower (`check`)."""


def _open_out(path: str) -> Any:
    """``-`` is stdout, as everywhere in otel-perf."""
    return contextlib.nullcontext(sys.stdout) if path == "-" else open(path, "w", encoding="utf-8")


@cli.command(epilog="""\b
Examples:
  otel-perf baseline save base.json --from-summary summary-*.json
  otel-perf baseline save base.json --prometheus http://127.0.0.1:9090 --window 1h
""")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@_with_source
def save(file: str, summaries: tuple[str, ...], prometheus: str | None, window: str, at: float | None) -> None:
    """Record per-route p95/p99/error counts and per-query-shape means from a run into FILE (JSON; - for stdout)."""
    run = _read_run(summaries, prometheus, window, at)
    if not run["routes"] and not run["queries"]:
        raise click.ClickException("the run has no requests and no queries: nothing to record")
    data = {"otel_perf_baseline": FORMAT, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **run}
    with _open_out(file) as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
    click.echo(f"baseline {file}: {len(run['routes'])} routes, {len(run['queries'])} query shapes ({run['side']} side)",
               err=True)


@cli.command(epilog="""\b
Examples:
  otel-perf baseline check base.json --from-summary new.json
  otel-perf baseline check base.json --from-summary new.json --markdown - >> report.md
  otel-perf baseline check base.json --from-summary w1.json --from-summary w2.json --json result.json
""")
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
@click.option("--error-tolerance", type=click.FloatRange(0, 1),
              help="Share of requests a route's error rate may rise by [default: the SLA's http_error_rate, 0.001].")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write a Markdown report here (- for stdout).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the comparison as JSON here (- for stdout).")
def check(file: str, summaries: tuple[str, ...], prometheus: str | None, window: str, at: float | None,
          threshold: float | None, min_samples: int, tolerance: float, query_tolerance: float,
          error_tolerance: float | None, markdown_path: str | None, json_path: str | None) -> None:
    """Compare a new run with the baseline FILE.

    Exit 1 when a route's p95, a query shape's mean or a route's error rate regressed, or when
    nothing could be compared (e.g. an empty summary). The table goes to stdout (to stderr when
    --markdown or --json writes to stdout); warnings and the verdict go to stderr.
    """
    try:
        with open(file, encoding="utf-8") as fh:
            baseline = json.load(fh)
    except ValueError as exc:
        raise click.UsageError(f"{file}: not JSON ({exc})") from None
    if baseline.get("otel_perf_baseline") != FORMAT:
        raise click.UsageError(f"{file}: not an otel-perf baseline (format {FORMAT})")
    if threshold is None or error_tolerance is None:
        from otel_perf.tools.configuration import load_settings

        slo = load_settings().slo
        threshold = slo.regression if threshold is None else threshold
        error_tolerance = slo.http_error_rate if error_tolerance is None else error_tolerance
    noise = Noise(threshold, tolerance, query_tolerance, error_tolerance, min_samples)
    run = _read_run(summaries, prometheus, window, at)
    sides = {baseline.get("side"), run["side"]} - {None}
    if len(sides) > 1:
        click.echo(f"otel-perf baseline: warning: the baseline is {baseline.get('side')}-side and the new run "
                   f"{run['side']}-side; client-side latencies include the network and the load generator's "
                   "queueing, so the two are not comparable", err=True)
    rows = compare(baseline, run, threshold, min_samples, tolerance, query_tolerance, error_tolerance)
    failure = verdict(rows, run, min_samples)
    render(rows, noise, sys.stderr if "-" in (markdown_path, json_path) else sys.stdout)
    report = markdown(rows, noise, failure)
    if markdown_path:
        with _open_out(markdown_path) as fh:
            fh.write(report)
    if os.environ.get("GITHUB_STEP_SUMMARY"):  # shows on the GitHub Actions run page
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as fh:
            fh.write(report)
    if json_path:
        with _open_out(json_path) as fh:
            json.dump({"passed": failure is None, "reason": failure, **dataclasses.asdict(noise), "baseline": file,
                       "source": run["source"], "side": run["side"], "baseline_side": baseline.get("side"),
                       "rows": [{**r.__dict__, "change": r.change} for r in rows]}, fh, indent=2)
            fh.write("\n")
    if failure:
        click.echo(f"otel-perf baseline: FAILED: {failure} ({noise})", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"otel-perf baseline: passed, {sum(r.status in COMPARED for r in rows)} rows compared, "
               f"no regression ({noise})", err=True)
