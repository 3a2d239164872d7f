"""``otel-perf report``: performance over weeks as one self-contained HTML file plus a Markdown summary.

From Prometheus (``--prometheus URL --window 30d``) or from saved runs (``--from-baseline`` /
``--from-summary`` files, one point each). Per route p50/p95/p99 over time against the SLA line,
error rate and budget remaining, week-over-week regressions above the spec's ``regression``
threshold, the slowest query shapes and their trend, Core Web Vitals p75 per page.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from typing import Any

import click

from otel_perf.tools.report import html, markdown, model

__all__ = ["cli", "html", "markdown", "model"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]},
               short_help="Performance trend report (HTML + Markdown) from Prometheus or saved runs.")
@click.option("--prometheus", metavar="URL", help="Prometheus holding otel-perf's metrics.")
@click.option("--window", default="30d", show_default=True, help="How far back to report (PromQL duration).")
@click.option("--end", "end", type=float, help="End of the window, Unix seconds [default: now].")
@click.option("--job", help="Only this service (the Prometheus job label) [default: every service].")
@click.option("--from-baseline", "baselines", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A saved `otel-perf baseline save` file; repeatable, one point in time each.")
@click.option("--from-summary", "summaries", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A local summary JSON (OTEL_PERF_SUMMARY_FILE) or load result; repeatable.")
@click.option("--config", type=click.Path(exists=True, dir_okay=False),
              help="YAML file with an `slo:` section (default: OTEL_PERF_CONFIG, else the built-in spec).")
@click.option("--html", "html_path", default="otel-perf-report.html", show_default=True,
              help="Where to write the HTML report (- for stdout).")
@click.option("--markdown", "markdown_path", default="otel-perf-report.md", show_default=True,
              help="Where to write the Markdown summary (- for stdout).")
@click.option("--fail-on-regression", is_flag=True, help="Exit 1 when a regression is found (CI gate).")
def cli(prometheus: str | None, window: str, end: float | None, job: str | None, baselines: tuple[str, ...],
        summaries: tuple[str, ...], config: str | None, html_path: str, markdown_path: str,
        fail_on_regression: bool) -> None:
    """Write a performance trend report: an HTML file with charts and a Markdown summary.

    \b
    Examples:
      otel-perf report --prometheus http://localhost:9090 --window 30d
      otel-perf report --from-baseline week1.json --from-baseline week2.json --markdown - --html report.html
    """
    slo = _spec(config)
    files = baselines + summaries
    if bool(files) == bool(prometheus):
        raise click.UsageError("give either --prometheus URL or saved runs (--from-baseline / --from-summary)")
    try:
        if prometheus:
            from otel_perf.tools.report import prometheus as source

            report = source.gather(prometheus, window, slo, end, job)
        else:
            from otel_perf.tools.report import snapshots

            report = snapshots.gather(files, slo)
    except (ValueError, OSError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    report["generated"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    if not report["latency"] and not report["queries"]:
        click.echo("otel-perf report: no requests and no statements in the source", err=True)
    summary = markdown.render(report)
    _write(html_path, html.render(report))
    _write(markdown_path, summary)
    if os.environ.get("GITHUB_STEP_SUMMARY"):  # shows on the GitHub Actions run page
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as fh:
            fh.write(summary)
    click.echo(f"otel-perf report: {model.verdict(report)}"
               + "".join(f"; {p}" for p in (html_path, markdown_path) if p != "-"), err=True)
    if fail_on_regression and report["regressions"]:
        raise click.exceptions.Exit(1)


def _write(path: str, text: str) -> None:
    if path == "-":
        sys.stdout.write(text)
        return
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def _spec(config: str | None) -> Any:
    from otel_perf._internal.config.errors import ConfigError
    from otel_perf._internal.config.settings import Settings

    try:
        return Settings.resolve({"config": config} if config else {}).slo
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
