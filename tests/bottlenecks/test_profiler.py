"""Profiles of slow requests: the sampler names the function that made a request slow.

The slow handlers spin (or sleep) until a deadline, so they are slow on any machine; the SLA is
lowered to 100 ms so the tests stay short. Nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from otel_perf._internal.integrations.asgi import middleware
from otel_perf._internal.profiler import EVENT
from tests.bottlenecks.conftest import wait_for

SLA = {"http_latency": 0.1}


def build_rows(seconds: float) -> int:
    """Deliberately CPU-bound: the function the profiler must name."""
    deadline = time.perf_counter() + seconds
    total = 0
    while time.perf_counter() < deadline:
        total += sum(i * i for i in range(200))
    return total


def format_rows(rows: int) -> str:
    return str(rows)


async def report(request):
    build_rows(0.4)
    return JSONResponse({"rows": format_rows(1)})


async def waits(request):
    await asyncio.sleep(0.4)  # awaiting, not computing: the samples count as waiting
    return JSONResponse({})


def sync_report(request):  # a `def` endpoint: Starlette runs it in a worker thread
    build_rows(0.4)
    return JSONResponse({})


async def fast(request):
    return JSONResponse({})


app = Starlette(routes=[Route("/report", report), Route("/waits", waits), Route("/fast", fast),
                         Route("/sync", sync_report)])


def get(*paths: str) -> None:
    async def go() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for path in paths:
                assert (await client.get(path)).status_code == 200

    asyncio.run(go())


def server_span(t, route: str):
    return next(s for s in t.spans() if s.kind is SpanKind.SERVER and s.attributes.get("http.route") == route)


def test_cpu_bound_slow_request_names_its_function(telemetry):
    t = telemetry(summary=True, slo=SLA)
    get("/report")
    span = server_span(t, "/report")
    event = next(e for e in span.events if e.name == EVENT)
    assert event.attributes["otel_perf.profile.samples"] > 0
    top = event.attributes["otel_perf.profile.top"][0]
    assert top.endswith("test_profiler.py:build_rows"), event.attributes["otel_perf.profile.top"]
    assert int(top.split("%")[0]) >= 50
    assert span.attributes["otel_perf.profile.hot_frame"] == "test_profiler.py:build_rows"
    assert event.attributes["otel_perf.profile.waiting"] < 0.5
    profile = t.summary.as_dict()["profiles"][0]
    assert profile["route"] == "GET /report" and profile["top"][0]["frame"] == "test_profiler.py:build_rows"


def test_sync_endpoint_in_a_worker_thread_names_its_function(telemetry):
    t = telemetry(slo=SLA)
    get("/sync")
    event = next(e for e in server_span(t, "/sync").events if e.name == EVENT)
    assert event.attributes["otel_perf.profile.top"][0].endswith("test_profiler.py:build_rows"), event.attributes
    assert event.attributes["otel_perf.profile.waiting"] < 0.5


def test_waiting_request_is_charged_to_its_await(telemetry):
    t = telemetry(slo=SLA)
    get("/waits")
    event = next(e for e in server_span(t, "/waits").events if e.name == EVENT)
    assert event.attributes["otel_perf.profile.top"][0].endswith("test_profiler.py:waits (awaiting)")
    assert event.attributes["otel_perf.profile.waiting"] > 0.5


def test_fast_requests_are_never_sampled(telemetry):
    t = telemetry(slo=SLA)
    profiler = middleware.ACTIVE.profiler
    get(*["/fast"] * 50)
    assert profiler.samples_taken == 0
    assert not [e for s in t.spans() for e in s.events if e.name == EVENT]
    assert profiler.inflight == {}
    wait_for(lambda: profiler._idle, what="the sampler to go idle")  # nothing in flight: it sleeps


def test_switched_off_with_one_setting(telemetry):
    t = telemetry(slo=SLA, profile=False)
    assert middleware.ACTIVE.profiler is None
    get("/report")
    assert not [e for e in server_span(t, "/report").events if e.name == EVENT]
