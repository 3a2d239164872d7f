"""``otel-perf load --find-capacity``: how much load the service takes before it breaks the SLA.

The scenario's users are paced by one shared clock, so the *offered* load is a rate we set (an
open model: a task starts at each tick whether or not the service kept up), not whatever the
service lets closed-loop users do. The rate steps up (``--step`` tasks/s every
``--step-duration`` s) until a route's p95 passes the SLA (``slo.http_latency``) or its error
rate passes the budget (``slo.http_error_rate``). Routes already over the SLA at the lightest
step are reported and not judged: they are slow at any load, a latency problem, not a capacity one.

Reported, in the terms of R. Jain (*The Art of Computer Systems Performance Analysis*): the
highest sustainable throughput (usable capacity: the last step within the SLA); the knee (the
highest step whose throughput / mean response time, Kleinrock's *power*, is within 10 % of its
peak: beyond it each request/s more costs more latency than it brings; "within 10 %" so that noise
at light load, where power is small and flat, does not pick an early step); the route that broke first; a chart (text on the terminal,
SVG with ``--chart``). With random arrivals the knee comes before saturation, as queueing theory
says it must. The bounds of ``otel-perf load`` hold: ``--duration`` for the whole run,
``--requests``, ``--users``, and the target check.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

KEEP_UP = 0.9  # a step where fewer than this share of the offered tasks found a free user: generator-bound
MIN_SAMPLES = 20  # responses of a route in a step before its p95 is judged
MIN_LIGHT = 3  # responses of a route at the lightest step before it counts as slow at any load
NEAR_PEAK = 0.9  # the knee: the highest step with power within 10 % of the peak
SETTLE = 1.0  # seconds at the first rate before measuring (users start all at once)
DEFAULT_USERS = 50


@dataclass
class Endpoint:
    """Response times (s) of one endpoint within one step (steps are short: every sample is kept)."""

    count: int = 0
    errors: int = 0
    samples: list[float] = field(default_factory=list)

    def add(self, seconds: float, failed: bool) -> None:
        self.count += 1
        self.errors += failed
        self.samples.append(seconds)


    def quantile(self, q: float) -> float:
        ordered = sorted(self.samples)  # nearest rank, as everywhere in otel-perf
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else 0.0

    def p95(self) -> float:
        return self.quantile(0.95)

    def mean(self) -> float:
        return sum(self.samples) / len(self.samples) if self.samples else 0.0

    def row(self, method: str, name: str, seconds: float) -> dict[str, Any]:
        return {"method": method, "route": name, "count": self.count, "errors": self.errors,
                "error_rate": self.errors / self.count if self.count else 0.0,
                "throughput": self.count / seconds if seconds else 0.0, "p95": self.p95()}


@dataclass
class Step:
    offered: float
    seconds: float = 0.0
    endpoints: dict[tuple[str, str], Endpoint] = field(default_factory=dict)

    def row(self, sla: float, budget: float, unjudged: set[str], min_samples: int = MIN_SAMPLES) -> dict[str, Any]:
        routes = [e.row(m, n, self.seconds) for (m, n), e in sorted(self.endpoints.items(), key=lambda kv: kv[0][1])]
        count = sum(r["count"] for r in routes)
        errors = sum(r["errors"] for r in routes)
        judged = [e for (m, n), e in self.endpoints.items() if f"{m} {n}" not in unjudged]
        everything = Endpoint(samples=[s for e in judged for s in e.samples])  # slow-at-any-load routes apart
        p95, mean = everything.p95(), everything.mean()
        broke = []
        for r in routes:
            name = f"{r['method']} {r['route']}"
            if name in unjudged or r["count"] < min_samples:
                continue
            over = max(r["p95"] / sla, r["error_rate"] / budget if budget else 0.0)
            if over > 1:
                broke.append((over, name))
        return {
            "offered": self.offered, "achieved": count / self.seconds if self.seconds else 0.0,
            "requests": count, "errors": errors, "error_rate": errors / count if count else 0.0, "p95": p95,
            "mean": mean,
            "routes": routes, "broke": [name for _, name in sorted(broke, reverse=True)],
        }


class Pacer:
    """One clock for every user: a ticker hands out ``rate`` permits per second and a user starts
    a task only with one. A tick no user is free to take is counted as missed (the generator,
    not the service, is then the limit), never saved up for a burst."""

    def __init__(self, rate: float):
        from gevent.queue import Queue

        self.rate = rate
        self.permits: Any = Queue(maxsize=1)
        self.ticks = self.missed = 0

    def wait(self) -> float:
        self.permits.get()
        return 0.0

    def run(self) -> None:
        import gevent
        from gevent.queue import Full

        due = time.monotonic()
        while True:
            due += 1.0 / self.rate
            now = time.monotonic()
            if due < now - 1.0:  # fell behind (a stalled process): restart the schedule
                due = now
            gevent.sleep(max(0.0, due - now))
            self.ticks += 1
            try:
                self.permits.put_nowait(None)
            except Full:
                self.missed += 1


def find(scenario: str, url: str, users: int, step: float, step_duration: float, duration: float,
         max_requests: int, allowed: tuple[str, ...], sla: float, budget: float,
         guard: Callable[..., None], limit: Callable[[int, dict], None],
         users_of: Callable[[str], tuple[Any, dict[str, Any]]]) -> dict[str, Any]:
    """Run the stepped load (within ``duration`` seconds in all) and return the capacity result.

    ``guard``, ``limit`` and ``users_of`` are ``otel-perf load``'s host guard, request bound and
    scenario loader (passed in, so this module does not import the command that calls it)."""
    locust, user_classes = users_of(scenario)
    import gevent
    from locust.env import Environment

    pacer = Pacer(step)
    for cls in user_classes.values():
        cls.wait_time = lambda user: pacer.wait()  # the scenario's own waits would close the loop
        original = cls.on_start

        def on_start(user: Any, _original: Any = original) -> None:  # no burst of first tasks
            _original(user)
            pacer.wait()

        cls.on_start = on_start
    env = Environment(user_classes=list(user_classes.values()), host=url.rstrip("/"), events=locust.events)
    state: dict[str, Any] = {"counted": 0, "started": 0, "violation": None, "in_flight": 0}
    current: list[Step | None] = [None]

    def refused(reason: str) -> None:
        state["violation"] = f"the scenario requested a host that is not allowed: {reason}"

    guard(allowed, refused)
    if max_requests:
        limit(max_requests, state)

    def on_request(request_type: str, name: str, response_time: float, exception: Any = None, **_: Any) -> None:
        state["counted"] += 1
        if current[0] is not None:
            current[0].endpoints.setdefault((request_type, name), Endpoint()).add(response_time / 1000.0,
                                                                                  exception is not None)

    env.events.request.add_listener(on_request)
    runner = env.create_local_runner()
    env.events.test_start.fire(environment=env)
    started = time.monotonic()
    deadline = started + duration
    ticker = gevent.spawn(pacer.run)
    runner.start(users, spawn_rate=users)
    rows: list[dict[str, Any]] = []
    unjudged: set[str] = set()
    stopped = ""
    try:
        gevent.sleep(min(SETTLE, duration / 10))
        rate = step
        while True:
            if time.monotonic() + step_duration > deadline:
                stopped = "time bound reached"
                break
            pacer.rate = rate
            current[0] = Step(rate)
            ticks, missed = pacer.ticks, pacer.missed
            begin = time.monotonic()
            while time.monotonic() - begin < step_duration:
                gevent.sleep(0.1)
                if state["violation"] or (max_requests and state["counted"] >= max_requests):
                    break
            current[0].seconds = time.monotonic() - begin
            row = current[0].row(sla, budget, unjudged, MIN_LIGHT if not rows else MIN_SAMPLES)
            if not rows and row["broke"]:  # the lightest step: routes already over the SLA are set apart
                unjudged = set(row["broke"])
                row = current[0].row(sla, budget, unjudged, MIN_LIGHT)
            row["missed"] = (pacer.missed - missed) / max(1, pacer.ticks - ticks)  # offered, but no user free
            current[0] = None
            if not rows:
                row["unjudged"] = sorted(unjudged)
            rows.append(row)
            click.echo(_progress(row, sla), err=True)
            if state["violation"]:
                stopped = state["violation"]
                break
            if max_requests and state["counted"] >= max_requests:
                stopped = "request bound reached"
                break
            if row["broke"]:
                stopped = f"SLA broken at {row['offered']:g} req/s offered"
                break
            rate += step
    finally:
        ticker.kill()
        runner.quit()
        env.events.test_stop.fire(environment=env)
    return summarize(rows, sla, budget, users, stopped, url, scenario, time.monotonic() - started)


def summarize(rows: list[dict[str, Any]], sla: float, budget: float, users: int, stopped: str,
              url: str = "", scenario: str = "", elapsed: float = 0.0) -> dict[str, Any]:
    """Sustainable throughput, knee and first broken route from the step rows."""
    sustainable = None
    broke_first = None
    for row in rows:
        if row["broke"]:
            broke_first = {"route": row["broke"][0], "offered": row["offered"], "routes": row["broke"]}
            break
        sustainable = row
    measured = [r for r in rows if r["requests"] >= MIN_SAMPLES and r["mean"] > 0]
    peak = max((r["achieved"] / r["mean"] for r in measured), default=0.0)
    near = [r for r in measured if r["achieved"] / r["mean"] >= NEAR_PEAK * peak]
    knee = max(near, key=lambda r: r["offered"]) if near else None
    # users all busy while the service still met the SLA: the generator, not the service, was the limit
    generator_bound = any(r["missed"] > 1 - KEEP_UP for r in rows if not r["broke"] and r["p95"] <= sla)
    return {
        "url": url, "scenario": scenario, "users": users, "duration": elapsed,
        "sla": {"http_latency_p95": sla, "http_error_rate": budget},
        "steps": rows, "stopped": stopped,
        "sustainable_throughput": sustainable["achieved"] if sustainable else None,
        "knee": {"offered": knee["offered"], "throughput": knee["achieved"], "p95": knee["p95"]} if knee else None,
        "broke_first": broke_first,
        "unjudged": rows[0].get("unjudged", []) if rows else [],
        "generator_bound": generator_bound,
    }


def _progress(row: dict[str, Any], sla: float) -> str:
    verdict = f"broke: {', '.join(row['broke'])}" if row["broke"] else "ok"
    return (f"capacity step: {row['offered']:g} req/s offered, {row['achieved']:.1f} req/s done, "
            f"p95 {row['p95'] * 1000:.0f} ms (SLA {sla * 1000:.0f} ms), {row['error_rate']:.2%} errors: {verdict}")


def render(result: dict[str, Any], stream: Any, width: int = 40) -> None:
    """The result and a text chart: one line per step, p95 as a bar with the SLA marked ``|``."""
    sla = result["sla"]["http_latency_p95"]
    rows = result["steps"]
    out = [f"otel-perf load --find-capacity: {result['url']}"]
    top = max([sla * 1.5, *(r["p95"] for r in rows)]) if rows else sla
    scale = min(top, sla * 4)
    sla_at = round(sla / scale * width)
    out.append(f"{'offered':>9} {'done':>9} {'p95':>9}  p95 (| = SLA {sla * 1000:.0f} ms); offered: tasks/s, "
               "done: requests/s")
    for r in rows:
        n = min(width, round(r["p95"] / scale * width))
        bar = "".join("#" if i < n else ("|" if i == sla_at else " ") for i in range(width + 1))
        if n > sla_at:
            bar = bar[:sla_at] + "|" + bar[sla_at + 1:]
        flag = "  broke: " + ", ".join(r["broke"]) if r["broke"] else ""
        out.append(f"{r['offered']:7.1f}/s {r['achieved']:7.1f}/s {r['p95'] * 1000:6.0f} ms  {bar}"
                   f"{'>' if r['p95'] > scale else ''}{flag}")
    sustainable = result["sustainable_throughput"]
    out.append(f"highest sustainable throughput: {sustainable:.1f} req/s" if sustainable is not None
               else "highest sustainable throughput: none (the SLA broke at the first step)")
    knee = result["knee"]
    out.append(f"knee: {knee['throughput']:.1f} req/s (p95 {knee['p95'] * 1000:.0f} ms at {knee['offered']:g} req/s offered)"
               if knee else "knee: not found (the service did not keep up even at the first step)")
    if result["broke_first"]:
        b = result["broke_first"]
        out.append(f"broke first: {b['route']} at {b['offered']:g} req/s offered")
    else:
        out.append(f"not broken within the bounds ({result['stopped']}): raise --duration or --step")
    if result["unjudged"]:
        out.append(f"over the SLA at the lightest load (not judged): {', '.join(result['unjudged'])}")
    if result["generator_bound"]:
        out.append(f"the load generator ran out of users ({result['users']}): raise --users")
    stream.write("\n".join(out) + "\n")
    stream.flush()


def svg(result: dict[str, Any]) -> str:
    """The chart as an SVG image: throughput done against offered, and p95 with the SLA line."""
    rows = result["steps"]
    sla = result["sla"]["http_latency_p95"]
    w, h, pad = 640, 360, 50
    max_rate = max([1.0, *(r["offered"] for r in rows), *(r["achieved"] for r in rows)])
    max_p95 = max([sla * 1.5, *(min(r["p95"], sla * 4) for r in rows)])

    def x(v: float) -> float:
        return pad + v / max_rate * (w - 2 * pad)

    def y_rate(v: float) -> float:
        return h - pad - v / max_rate * (h - 2 * pad)

    def y_p95(v: float) -> float:
        return h - pad - min(v, max_p95) / max_p95 * (h - 2 * pad)

    def line(points: list[tuple[float, float]], colour: str) -> str:
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        dots = "".join(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>' for px, py in points)
        return f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>{dots}'

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>',
        f'<text x="{w / 2}" y="{h - 15}" text-anchor="middle">offered load (req/s), max {max_rate:.0f}</text>',
        f'<text x="{w / 2}" y="20" text-anchor="middle">otel-perf capacity: {_xml(result["url"])}</text>',
        f'<line x1="{pad}" y1="{y_p95(sla):.1f}" x2="{w - pad}" y2="{y_p95(sla):.1f}" stroke="red" stroke-dasharray="6 4"/>',
        f'<text x="{w - pad}" y="{y_p95(sla) - 4:.1f}" text-anchor="end" fill="red">p95 SLA {sla * 1000:.0f} ms</text>',
        line([(x(r["offered"]), y_rate(r["achieved"])) for r in rows], "#1f77b4"),
        line([(x(r["offered"]), y_p95(r["p95"])) for r in rows], "#ff7f0e"),
        f'<text x="{pad + 5}" y="{pad - 8}" fill="#1f77b4">throughput done (req/s)</text>',
        f'<text x="{pad + 200}" y="{pad - 8}" fill="#ff7f0e">p95 latency (max {max_p95 * 1000:.0f} ms)</text>',
    ]
    if result["knee"]:
        kx = x(result["knee"]["offered"])
        parts.append(f'<line x1="{kx:.1f}" y1="{pad}" x2="{kx:.1f}" y2="{h - pad}" stroke="gray" stroke-dasharray="2 3"/>'
                     f'<text x="{kx + 4:.1f}" y="{pad + 14}" fill="gray">knee {result["knee"]["throughput"]:.0f} req/s</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
