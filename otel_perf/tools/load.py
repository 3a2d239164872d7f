"""``otel-perf load``: run a Locust scenario against one URL, with hard bounds and a summary.

Locust (a maintained load-testing library) does the work: the scenario is an ordinary locustfile
(``HttpUser``/``FastHttpUser`` classes with tasks) and runs in-process on Locust's local runner. This
module adds what a CI job needs around it: a target check (loopback, or hosts named with
``--allow-host``), bounds on users, requests and time that always hold, a progress bar, exact
per-endpoint quantiles and a JSON result in the shape ``otel-perf baseline`` reads.

Bounds: the run stops at ``--duration`` seconds or once ``--requests`` requests were answered,
whichever comes first. The request bound is exact: each Locust HTTP client takes a slot from the
budget before it sends, and a user that finds none left stops. At most ``--users`` users run
(spawned at ``--spawn-rate``). Requests in flight when the time is up are cut off, not waited for.
"""

from __future__ import annotations

import ipaddress
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import click

MAX_USERS = 1000
MAX_DURATION = 3600.0
RESERVOIR = 10_000  # response times kept per endpoint: quantiles within ~0.5 % rank error


def check_target(url: str, allowed: tuple[str, ...] = ()) -> str | None:
    """Why ``url`` may not be load-tested (None when it may): only loopback unless allowed by name."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL"
    return check_host(parts.hostname, allowed)


def check_host(host: str, allowed: tuple[str, ...] = ()) -> str | None:
    host = host.lower().strip("[]")
    if host in {h.lower() for h in allowed} or host == "localhost" or host.endswith(".localhost"):
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return f"{host} is not a loopback address; name it with --allow-host {host} to load-test it"


def guard_resolution(allowed: tuple[str, ...], on_refused: Any = None) -> None:
    """Refuse, before any packet is sent, connections a scenario opens to hosts not allowed.

    Every HTTP client Locust uses (requests, geventhttpclient) resolves the host through
    ``getaddrinfo``, even for a literal address; a refused host fails that request instead.
    """
    import socket

    import gevent.socket

    original = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        refused = check_host(name, allowed) if name else None
        if refused:
            if on_refused is not None:
                on_refused(refused)
            raise socket.gaierror(f"otel-perf load refused: {refused}")
        return original(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    gevent.socket.getaddrinfo = getaddrinfo


@dataclass
class Endpoint:
    """Response times (s) of one ``METHOD name``: a bounded uniform sample plus exact counts.

    Kept here rather than read from Locust's statistics, which round response times.
    """

    count: int = 0
    errors: int = 0
    total: float = 0.0
    maximum: float = 0.0
    samples: list[float] = field(default_factory=list)

    def add(self, seconds: float, failed: bool) -> None:
        self.count += 1
        self.errors += failed
        self.total += seconds
        self.maximum = max(self.maximum, seconds)
        if len(self.samples) < RESERVOIR:
            self.samples.append(seconds)
        elif (slot := random.randrange(self.count)) < RESERVOIR:  # reservoir sampling
            self.samples[slot] = seconds

    def row(self, method: str, name: str, elapsed: float) -> dict[str, Any]:
        ordered = sorted(self.samples)

        def pick(q: float) -> float:  # nearest rank, as in the local summary
            return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] if ordered else 0.0

        return {
            "method": method, "route": name, "count": self.count, "errors": self.errors,
            "error_rate": self.errors / self.count if self.count else 0.0,
            "throughput": self.count / elapsed if elapsed > 0 else 0.0,
            "mean": self.total / self.count if self.count else 0.0,
            "p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "max": self.maximum,
        }


@click.command(short_help="Run a Locust scenario against a URL, bounded.")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False))
@click.option("--url", required=True, help="Base URL of the service (loopback unless --allow-host).")
@click.option("--users", default=10, show_default=True, type=click.IntRange(1, MAX_USERS),
              help="Concurrent simulated users.")
@click.option("--spawn-rate", type=click.FloatRange(min=0.1), help="Users started per second [default: all at once].")
@click.option("--requests", "max_requests", default=0, type=click.IntRange(min=0),
              help="Stop after this many responses (0: only the duration bounds the run).")
@click.option("--duration", default=30.0, show_default=True, type=click.FloatRange(0.1, MAX_DURATION),
              help="Stop after this many seconds.")
@click.option("--allow-host", multiple=True, metavar="HOST", help="A non-loopback host that may be targeted.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the result as JSON here (- for stdout).")
@click.option("--max-error-rate", type=click.FloatRange(0, 1),
              help="Exit 1 when the share of failed requests is above this (e.g. 0.01).")
@click.option("--seed", type=int, help="Seed Python's random module, for a repeatable request mix.")
@click.option("--find-capacity", is_flag=True,
              help="Step the offered load up until a route breaks the SLA; report the sustainable throughput, "
                   "the knee and the route that broke first (--users defaults to 50).")
@click.option("--step", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="--find-capacity: requests/s added at each step (the first step offers this much).")
@click.option("--step-duration", default=10.0, show_default=True, type=click.FloatRange(1, 600),
              help="--find-capacity: seconds per step.")
@click.option("--chart", "chart_path", type=click.Path(dir_okay=False),
              help="--find-capacity: also write the chart as an SVG image here.")
def cli(scenario: str, url: str, users: int, spawn_rate: float | None, max_requests: int, duration: float,
        allow_host: tuple[str, ...], json_path: str | None, max_error_rate: float | None,
        seed: int | None, find_capacity: bool, step: float, step_duration: float, chart_path: str | None) -> None:
    """Run the Locust SCENARIO file against --url and print per-endpoint results.

    Example: otel-perf load examples/patient_timeline/locustfile.py --url http://127.0.0.1:8000
    --users 20 --duration 30 --json load.json
    """
    refused = check_target(url, allow_host)
    if refused:
        raise click.UsageError(refused)
    if seed is not None:
        random.seed(seed)
    if find_capacity:
        return _find_capacity(scenario, url, users, step, step_duration, duration, max_requests, allow_host,
                              json_path, chart_path)
    result = run(scenario, url, users, spawn_rate or float(users), max_requests, duration, allow_host)
    render(result, sys.stderr if json_path == "-" else sys.stdout)
    if json_path:
        if json_path == "-":
            click.echo(json.dumps(result, indent=2))
        else:
            with open(json_path, "w", encoding="utf-8") as fh:
                json.dump(result, fh, indent=2)
    if result["violation"]:
        raise click.ClickException(result["violation"])
    if max_error_rate is not None and result["error_rate"] > max_error_rate:
        click.echo(f"otel-perf load: error rate {result['error_rate']:.2%} is above {max_error_rate:.2%}", err=True)
        raise click.exceptions.Exit(1)


def users_of(scenario: str) -> tuple[Any, dict[str, Any]]:
    """Locust (imported only here: it monkey-patches the process for gevent) and the scenario's
    User classes; a missing Locust or an empty scenario is one clear error."""
    try:
        import locust
    except ModuleNotFoundError as exc:
        if exc.name != "locust":
            raise
        raise click.ClickException("otel-perf load needs Locust: pip install 'otel-perf[load]'") from None
    from locust.util.load_locustfile import load_locustfile

    user_classes, _shapes = load_locustfile(scenario)
    if not user_classes:
        raise click.UsageError(f"{scenario}: no Locust User class found")
    return locust, user_classes


def run(scenario: str, url: str, users: int, spawn_rate: float, max_requests: int, duration: float,
        allowed: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run the scenario on Locust's local runner within the bounds; return the result dict."""
    import gevent
    from locust.env import Environment
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    locust, user_classes = users_of(scenario)
    env = Environment(user_classes=list(user_classes.values()), host=url.rstrip("/"), events=locust.events)
    endpoints: dict[tuple[str, str], Endpoint] = {}
    state = {"counted": 0, "started": 0, "violation": None, "scenario_errors": 0}
    failures: dict[str, int] = {}  # first few distinct failure messages, with counts
    runner = env.create_local_runner()

    def refused(reason: str) -> None:  # the scenario tried another host: stop the whole run
        state["violation"] = f"the scenario requested a host that is not allowed: {reason}"

    guard_resolution(allowed, refused)
    if max_requests:
        _limit_requests(max_requests, state)

    def on_request(request_type: str, name: str, response_time: float, exception: Any = None, **_: Any) -> None:
        state["counted"] += 1
        if exception is not None:
            reason = f"{request_type} {name}: {exception}"[:200]
            if reason in failures or len(failures) < 10:
                failures[reason] = failures.get(reason, 0) + 1
        endpoints.setdefault((request_type, name), Endpoint()).add(response_time / 1000.0, exception is not None)

    def on_user_error(user_instance: Any, exception: Exception, tb: Any) -> None:
        state["scenario_errors"] += 1

    env.events.request.add_listener(on_request)
    env.events.user_error.add_listener(on_user_error)
    env.events.test_start.fire(environment=env)
    started = time.monotonic()
    deadline = started + duration
    runner.start(users, spawn_rate=spawn_rate)
    console = Console(stderr=True)
    total = max_requests or duration
    with Progress(TextColumn("[bold]load[/]"), BarColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=console, auto_refresh=False, transient=False) as progress:
        task = progress.add_task("", total=total)
        while runner.state not in ("stopped", "stopping") and time.monotonic() < deadline:
            if max_requests and state["counted"] >= max_requests or state["violation"]:
                break  # every budgeted request has completed (or the scenario broke the rules)
            gevent.sleep(0.1)
            errors = sum(e.errors for e in endpoints.values())
            progress.update(task, completed=state["counted"] if max_requests else time.monotonic() - started,
                            description=f"{state['counted']} requests, {errors} failed, {runner.user_count} users")
            progress.refresh()
        runner.quit()
        elapsed = time.monotonic() - started
        progress.update(task, completed=total, description=f"{state['counted']} requests in {elapsed:.1f} s")
        progress.refresh()
    env.events.test_stop.fire(environment=env)

    rows = [e.row(method, name, elapsed) for (method, name), e in sorted(endpoints.items(), key=lambda kv: kv[0][1])]
    count = sum(r["count"] for r in rows)
    errors = sum(r["errors"] for r in rows)
    return {
        "url": url, "scenario": scenario, "users": users, "duration": elapsed,
        "limits": {"requests": max_requests, "duration": duration, "users": users},
        "requests": count, "errors": errors, "error_rate": errors / count if count else 0.0,
        "throughput": count / elapsed if elapsed > 0 else 0.0, "scenario_errors": state["scenario_errors"],
        "violation": state["violation"], "failures": failures, "routes": rows,
    }


def _find_capacity(scenario: str, url: str, users: int, step: float, step_duration: float, duration: float,
                   max_requests: int, allowed: tuple[str, ...], json_path: str | None, chart_path: str | None) -> None:
    from otel_perf._internal.config.settings import Settings
    from otel_perf.tools import capacity

    if click.get_current_context().get_parameter_source("users") is click.core.ParameterSource.DEFAULT:
        users = capacity.DEFAULT_USERS
    slo = Settings.resolve().slo  # the SLA spec: OTEL_PERF_CONFIG, OTEL_PERF_SLO_*
    result = capacity.find(scenario, url, users, step, step_duration, duration, max_requests, allowed,
                           slo.http_latency, slo.http_error_rate, guard_resolution, _limit_requests, users_of)
    capacity.render(result, sys.stderr if json_path == "-" else sys.stdout)
    if chart_path:
        with open(chart_path, "w", encoding="utf-8") as fh:
            fh.write(capacity.svg(result))
    if json_path == "-":
        click.echo(json.dumps(result, indent=2))
    elif json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    if result["stopped"].startswith("the scenario requested"):
        raise click.ClickException(result["stopped"])


def _limit_requests(limit: int, state: dict[str, Any]) -> None:
    """Make every Locust HTTP client take a slot before sending: no request beyond ``limit`` leaves."""
    from locust.clients import HttpSession
    from locust.contrib.fasthttp import FastHttpSession
    from locust.exception import StopUser

    for session in (HttpSession, FastHttpSession):
        original = session.request

        def request(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            if state["started"] >= limit:
                raise StopUser()  # Locust ends this user quietly
            state["started"] += 1
            return _original(self, *args, **kwargs)

        session.request = request


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def render(result: dict[str, Any], stream: Any) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=stream, width=None if stream.isatty() else 120)
    table = Table(title=escape(f"otel-perf load: {result['url']}"), caption=(
        f"{result['requests']} requests in {result['duration']:.1f} s = {result['throughput']:.1f} req/s, "
        f"{result['error_rate']:.2%} failed, {result['users']} users"))
    for column in ("endpoint", "requests", "req/s", "errors", "p50", "p95", "p99", "max"):
        table.add_column(column, justify="left" if column == "endpoint" else "right")
    for r in result["routes"]:
        errors = f"{r['error_rate']:.1%}"
        table.add_row(escape(f"{r['method']} {r['route']}"), str(r["count"]), f"{r['throughput']:.1f}",
                      f"[red]{errors}[/]" if r["errors"] else errors,
                      _ms(r["p50"]), _ms(r["p95"]), _ms(r["p99"]), _ms(r["max"]))
    console.print(table)
    diagnostics = Console(stderr=True, width=None if sys.stderr.isatty() else 120)  # failures are diagnostics
    for reason, n in sorted(result["failures"].items(), key=lambda kv: -kv[1])[:5]:
        diagnostics.print(f"[red]{n} x[/] {escape(reason)}")
    if result["scenario_errors"]:
        diagnostics.print(f"[yellow]{result['scenario_errors']} exceptions in the scenario's tasks[/]")
