"""ASGI server telemetry, driven in-process through the real SDK with in-memory exporters."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.trace import SpanKind, StatusCode

from otel_perf import OtelPerfMiddleware
from otel_perf._internal.catalogue import HTTP_SERVER_ACTIVE, HTTP_SERVER_DURATION
from otel_perf._internal.integrations import asgi as http
from tests.apps import raw_asgi, starlette_app


def get(app, path: str, **kwargs) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.get(path, **kwargs)

    return asyncio.run(go())


def server_spans(t):
    return [s for s in t.spans() if s.kind is SpanKind.SERVER]


def test_one_server_span_named_by_route_template(telemetry):
    t = telemetry()
    assert get(starlette_app.app, "/items/42").status_code == 200
    spans = t.spans()
    assert len(spans) == 1, [s.name for s in spans]  # no internal send/receive spans
    span = spans[0]
    assert span.kind is SpanKind.SERVER
    assert span.name == "GET /items/{item_id}"
    assert span.attributes["http.route"] == "/items/{item_id}"
    assert span.attributes["http.request.method"] == "GET"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["url.path"] == "/items/42"


def test_duration_histogram_has_sla_buckets_and_bounded_labels(telemetry):
    t = telemetry()
    for path in ("/fast", "/items/1", "/items/2", "/nope-1", "/nope-2"):
        get(starlette_app.app, path)
    points = t.points(HTTP_SERVER_DURATION.name)
    routes = sorted(str(p.attributes.get("http.route")) for p in points)
    assert routes == ["/fast", "/items/{item_id}", "None"]  # 404 scans collapse into one series
    for boundary in (0.05, 0.1, 0.2, 0.5, 1.0, 2.5):
        assert boundary in points[0].explicit_bounds
    items = next(p for p in points if p.attributes.get("http.route") == "/items/{item_id}")
    assert items.count == 2
    assert set(items.attributes) == {"http.request.method", "url.scheme", "http.response.status_code", "http.route"}


def test_slo_override_moves_the_bucket_boundary(telemetry):
    t = telemetry(slo={"http_latency": 0.3})
    get(starlette_app.app, "/fast")
    assert 0.3 in t.points(HTTP_SERVER_DURATION.name)[0].explicit_bounds


def test_mounted_route_template_keeps_parameters_out(telemetry):
    t = telemetry()
    get(starlette_app.app, "/users/alice/posts/7")
    (span,) = server_spans(t)
    assert span.attributes["http.route"] == "/users/{user_id}/posts/{post_id}"
    assert "alice" not in span.name


def test_raw_asgi_app_never_uses_the_path_as_a_label(telemetry):
    t = telemetry()
    app = OtelPerfMiddleware(raw_asgi.app)
    assert get(app, "/secret/user/123").text == "raw"
    (span,) = server_spans(t)
    assert span.name == "GET"
    assert "http.route" not in span.attributes
    (point,) = t.points(HTTP_SERVER_DURATION.name)
    assert "http.route" not in point.attributes


def test_5xx_response_sets_error_status(telemetry):
    t = telemetry()
    assert get(starlette_app.app, "/unavailable").status_code == 503
    (span,) = server_spans(t)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "503"
    (point,) = t.points(HTTP_SERVER_DURATION.name)
    assert point.attributes["error.type"] == "503"


def test_unhandled_exception_is_recorded_and_reaches_the_server_unchanged(telemetry):
    t = telemetry()
    app = OtelPerfMiddleware(starlette_app.app)

    async def call():
        scope = {"type": "http", "method": "GET", "path": "/boom", "raw_path": b"/boom", "root_path": "",
                 "scheme": "http", "query_string": b"", "headers": [], "http_version": "1.1",
                 "server": ("testserver", 80), "client": ("127.0.0.1", 1)}
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        with pytest.raises(RuntimeError, match="^boom$"):
            await app(scope, receive, send)
        return sent

    sent = asyncio.run(call())
    assert sent[0]["status"] == 500
    (span,) = server_spans(t)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "RuntimeError"
    assert [e.name for e in span.events if e.name != "otel_perf.profile"] == ["exception"]


def test_server_timing_links_the_response_to_the_trace(telemetry):
    t = telemetry()
    response = get(starlette_app.app, "/fast")
    (span,) = server_spans(t)
    ctx = span.get_span_context()
    assert response.headers["server-timing"] == f'traceparent;desc="00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"'


def test_server_timing_can_be_switched_off(telemetry):
    telemetry(server_timing=False)
    assert "server-timing" not in get(starlette_app.app, "/fast").headers


def test_incoming_traceparent_is_continued(telemetry):
    t = telemetry()
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    get(starlette_app.app, "/fast", headers={"traceparent": parent})
    (span,) = server_spans(t)
    assert f"{span.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{span.parent.span_id:016x}" == "b7ad6b7169203331"


def test_secrets_in_headers_and_query_are_never_recorded(telemetry):
    t = telemetry()
    get(starlette_app.app, "/fast?token=SECRET-QUERY",
        headers={"authorization": "Bearer SECRET-AUTH", "cookie": "session=SECRET-COOKIE"})
    recorded = repr([(s.name, dict(s.attributes), [dict(e.attributes or {}) for e in s.events]) for s in t.spans()])
    recorded += repr([dict(p.attributes) for p in t.points(HTTP_SERVER_DURATION.name)])
    for secret in ("SECRET-QUERY", "SECRET-AUTH", "SECRET-COOKIE", "token="):
        assert secret not in recorded


def test_fastapi_route_template_and_no_duplicate_middleware(telemetry):
    t = telemetry()
    api = FastAPI()

    @api.get("/orders/{order_id}")
    async def order(order_id: int):
        return {"id": order_id}

    # Wrapping an already-instrumented app again must not double the telemetry.
    doubled = OtelPerfMiddleware(OtelPerfMiddleware(api))
    assert get(doubled, "/orders/5").json() == {"id": 5}
    (span,) = t.spans()
    assert span.name == "GET /orders/{order_id}"
    (point,) = t.points(HTTP_SERVER_DURATION.name)
    assert point.count == 1


def test_active_requests_count_in_flight_requests(telemetry):
    t = telemetry()

    async def go():
        transport = httpx.ASGITransport(app=starlette_app.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            slow = asyncio.create_task(client.get("/slow", params={"s": "0.5"}))
            for _ in range(200):
                await asyncio.sleep(0.01)
                if any(p.value == 1 for p in t.points(HTTP_SERVER_ACTIVE.name)):
                    break
            during = [p.value for p in t.points(HTTP_SERVER_ACTIVE.name)]
            await slow
            return during

    during = asyncio.run(go())
    assert during == [1]
    assert [p.value for p in t.points(HTTP_SERVER_ACTIVE.name)] == [0]


def test_unknown_method_is_bounded(telemetry):
    t = telemetry()

    async def go():
        transport = httpx.ASGITransport(app=starlette_app.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            await client.request("FOOBAR", "/fast")

    asyncio.run(go())
    (span,) = server_spans(t)
    assert span.attributes["http.request.method"] == "_OTHER"


def test_broken_telemetry_never_breaks_the_request(telemetry):
    t = telemetry()

    class Exploding:
        def record(self, *args, **kwargs):
            raise RuntimeError("metrics backend exploded")

    http.middleware.ACTIVE.duration = Exploding()
    response = get(starlette_app.app, "/fast")
    assert response.status_code == 200 and response.text == "ok"
    assert [s.name for s in server_spans(t)] == ["GET /fast"]  # ended even though recording failed


def test_local_summary_gets_every_request(telemetry):
    t = telemetry(summary=True)
    for path in ("/fast", "/fast", "/unavailable", "/nope"):
        get(starlette_app.app, path)
    routes = {(r["route"], r["count"], r["errors"]) for r in t.summary.as_dict()["routes"]}
    assert routes == {("/fast", 2, 0), ("/unavailable", 1, 1), ("(unmatched)", 1, 0)}


@pytest.fixture
def propagators():
    """Install the propagators OTEL_PROPAGATORS would name (the SDK reads it once, at import)."""
    from opentelemetry import propagate

    saved = propagate.get_global_textmap()

    def use(*names: str) -> None:
        from opentelemetry.propagators.aws import AwsXRayPropagator
        from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
        from opentelemetry.propagators.composite import CompositePropagator
        from opentelemetry.propagators.jaeger import JaegerPropagator

        known = {"b3": B3SingleFormat, "b3multi": B3MultiFormat, "jaeger": JaegerPropagator, "xray": AwsXRayPropagator}
        propagate.set_global_textmap(CompositePropagator([known[n]() for n in names]))

    yield use
    propagate.set_global_textmap(saved)


TRACE = "0af7651916cd43dd8448eb211c80319c"
PROPAGATED = {
    "b3": {"b3": f"{TRACE}-b7ad6b7169203331-1"},
    "b3multi": {"X-B3-TraceId": TRACE, "X-B3-SpanId": "b7ad6b7169203331", "X-B3-Sampled": "1"},
    "jaeger": {"uber-trace-id": f"{TRACE}:b7ad6b7169203331:0:1"},
    "xray": {"X-Amzn-Trace-Id": f"Root=1-{TRACE[:8]}-{TRACE[8:]};Parent=b7ad6b7169203331;Sampled=1"},
}


@pytest.mark.parametrize("name", sorted(PROPAGATED))
def test_configured_propagators_are_honoured_without_w3c_headers(telemetry, propagators, name):
    propagators(name)
    t = telemetry()
    get(starlette_app.app, "/fast", headers=PROPAGATED[name])
    (span,) = server_spans(t)
    assert f"{span.context.trace_id:032x}" == TRACE
    assert f"{span.parent.span_id:016x}" == "b7ad6b7169203331"


def test_cancelled_request_is_not_a_server_error(telemetry):
    t = telemetry(summary=True)
    app = OtelPerfMiddleware(starlette_app.app)

    async def call():  # a server that cancels the request's task when the client goes (hypercorn does)
        scope = {"type": "http", "method": "GET", "path": "/slow", "raw_path": b"/slow", "root_path": "",
                 "scheme": "http", "query_string": b"s=5", "headers": [], "http_version": "1.1",
                 "server": ("testserver", 80), "client": ("127.0.0.1", 1)}

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            pass

        task = asyncio.create_task(app(scope, receive, send))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(call())
    (span,) = server_spans(t)
    assert span.attributes["error.type"] == "CancelledError"
    assert "http.response.status_code" not in span.attributes  # no response was sent
    (point,) = t.points(HTTP_SERVER_DURATION.name)
    assert point.attributes["error.type"] == "CancelledError" and "http.response.status_code" not in point.attributes
    (row,) = t.summary.as_dict()["routes"]
    assert (row["route"], row["count"], row["errors"]) == ("/slow", 1, 0)


class _QuietOnStart:
    """Does nothing, but overrides on_start: the middleware must then take the SDK's own path."""

    def on_start(self, span, parent_context=None):
        pass

    def _on_ending(self, span):
        pass

    def on_end(self, span):
        pass

    def shutdown(self):
        pass

    def force_flush(self, timeout_millis=30000):
        return True


class _Enriching(_QuietOnStart):
    """A span processor with an on_start: the middleware must hand it the SDK's own span."""

    def __init__(self):
        self.started = []

    def on_start(self, span, parent_context=None):
        self.started.append(span)
        span.set_attribute("enriched", True)


@pytest.mark.parametrize("enriching", [False, True], ids=["fast path", "processor with on_start"])
def test_user_code_and_child_spans_reach_the_server_span(telemetry, enriching):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import Span as SdkSpan

    from otel_perf._internal.sdk.live_spans import LiveSpan

    t = telemetry()
    processor = _Enriching()
    if enriching:
        t.tracer_provider.add_span_processor(processor)
    tracer = t.tracer_provider.get_tracer("app")
    seen = []

    async def app(scope, receive, send):
        current = trace.get_current_span()
        seen.append(current)
        current.set_attribute("app.user", "u-1")
        current.set_attributes({"app.tier": "gold", "app.items": [1, 2]})
        current.add_event("app.checkpoint", {"step": 1})
        current.record_exception(ValueError("handled"))
        with tracer.start_as_current_span("child") as child:
            child.set_attribute("inner", True)
            with tracer.start_as_current_span("grandchild"):
                pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    assert get(OtelPerfMiddleware(app), "/x").status_code == 200
    (server,) = server_spans(t)
    spans = {s.name: s for s in t.spans()}
    assert isinstance(seen[0], SdkSpan) and isinstance(seen[0], LiveSpan) is not enriching
    assert processor.started[:1] == ([seen[0]] if enriching else [])  # then the children
    assert spans["child"].parent.span_id == server.context.span_id
    assert spans["child"].context.trace_id == server.context.trace_id
    assert spans["grandchild"].parent.span_id == spans["child"].context.span_id
    assert server.attributes["app.user"] == "u-1" and server.attributes["app.items"] == (1, 2)
    assert server.attributes.get("enriched") is (True if enriching else None)
    assert [e.name for e in server.events if e.name != "otel_perf.profile"] == ["app.checkpoint", "exception"]
    assert server.events[1].attributes["exception.type"] == "ValueError"
    assert server.start_time <= spans["child"].start_time <= spans["child"].end_time <= server.end_time


def _server_span_values(span):
    return (
        span.name, span.kind, span.context.trace_flags, span.context.trace_state, span.context.is_remote,
        span.parent.span_id if span.parent else None, span.parent.is_remote if span.parent else None,
        list(span.attributes.items()), span.dropped_attributes,
        [(e.name, sorted((k, v) for k, v in e.attributes.items() if k != "exception.stacktrace"))
         for e in span.events if e.name != "otel_perf.profile"],
        span.dropped_events, span.status.status_code, span.status.description, span.resource,
        span.instrumentation_scope, span.start_time <= span.end_time,
    )


@pytest.mark.parametrize("path,headers", [
    ("/items/42", {}), ("/nope", {}), ("/unavailable", {}), ("/boom", {}),
    ("/users/alice/posts/7", {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                              "tracestate": "vendor=v1"}),
    ("/fast", {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}),
])
def test_middleware_span_on_the_fast_path_equals_the_sdk_path(telemetry, path, headers):
    """The same requests with the fast path and with the SDK's start_span (a processor with an
    on_start forces it): the exported SERVER spans agree in everything but ids and times."""
    exported = []
    for force_sdk in (False, True):
        t = telemetry()
        if force_sdk:
            t.tracer_provider.add_span_processor(_QuietOnStart())
        get(starlette_app.app, path, headers=headers)
        assert http.middleware.ACTIVE.spans.fast() is not force_sdk
        exported.append([_server_span_values(s) for s in server_spans(t)])
    fast, sdk = exported
    assert fast == sdk
    assert len(fast) == (0 if headers.get("traceparent", "").endswith("-00") else 1)
