"""Property-based fuzzing of the beacon endpoint through the real middleware: random methods, paths,
headers, bodies and chunkings never raise, never answer 500, and never grow the series unboundedly."""

from __future__ import annotations

import asyncio
import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_perf._internal.catalogue import (
    RUM_REJECTED,
    WEB_VITAL_CLS,
    WEB_VITAL_FCP,
    WEB_VITAL_INP,
    WEB_VITAL_LCP,
    WEB_VITAL_TTFB,
)
from otel_perf._internal.integrations.rum.beacon import DEVICES, NAVIGATION_TYPES, VITALS
from tests.rum import app as rum_app
from tests.rum.conftest import TRACEPARENT, collect

ANSWERS = {200, 204, 304, 400, 404, 405, 413, 429}
REASONS = {"too_large", "invalid", "rate_limited", "method_not_allowed", "unknown_metric", "out_of_bounds", "duplicate"}
VITAL_METRICS = (WEB_VITAL_LCP, WEB_VITAL_INP, WEB_VITAL_CLS, WEB_VITAL_FCP, WEB_VITAL_TTFB)

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.just(10**400),
    st.floats(min_value=0, max_value=5000),
)
junk = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
metric = st.fixed_dictionaries(
    {"name": st.sampled_from([*VITALS, "FID", "lcp", ""]) | st.text(max_size=8), "value": numbers},
    optional={"navigationType": st.sampled_from([*NAVIGATION_TYPES, "x"]) | junk, "id": junk, "attribution": junk},
)
beacon = st.fixed_dictionaries(
    {"metrics": st.lists(metric, max_size=25) | junk},
    optional={
        "route": st.sampled_from(["/pages/{page_id}", "/api", "/pages/1", None]) | st.text(max_size=300) | junk,
        "device": st.sampled_from([*DEVICES, "tv"]) | junk,
        "traceparent": st.sampled_from([TRACEPARENT, "00-" + "0" * 32 + "-" + "0" * 16 + "-01"]) | junk,
    },
)
bodies = st.one_of(
    beacon.map(lambda b: json.dumps(b).encode()),  # allow_nan: NaN/Infinity literals included
    st.binary(max_size=2048),
    st.binary(min_size=16 * 1024 - 8, max_size=16 * 1024 + 8),
    st.text(max_size=512).map(str.encode),
    st.integers(1, 3000).map(lambda n: b"[" * n),  # deep nesting
)
headers = st.lists(
    st.one_of(
        st.tuples(st.just(b"content-length"), st.sampled_from([b"0", b"12", b"16384", b"99999999", b"-1", b"x", b"", b"\xb2", b" 12 ", b"1e3"])),
        st.tuples(st.just(b"content-type"), st.sampled_from([b"text/plain;charset=UTF-8", b"application/json", b"\xff"])),
        st.tuples(st.binary(min_size=1, max_size=12).map(bytes.lower), st.binary(max_size=40)),
    ),
    max_size=5,
)
request = st.fixed_dictionaries({
    "method": st.sampled_from(["POST"] * 6 + ["GET", "HEAD", "PUT", "OPTIONS", "DELETE", "PATCH", "BREW"]),
    "path": st.sampled_from(["/_otel/vitals"] * 6 + ["/_otel/rum.js", "/_otel/rum.js.LICENSE.txt", "/_otel/", "/_otel/x"]),
    "client": st.sampled_from([("203.0.113.1", 1), ("203.0.113.2", 2), None]),
    "headers": headers,
    "body": bodies,
    "chunks": st.integers(1, 6),
    "query": st.sampled_from([b"", b"v=0", b"v=%ff&&="]),
})


async def call(app, r: dict) -> list[dict]:
    body, n = r["body"], r["chunks"]
    size = max(1, math.ceil(len(body) / n))
    parts = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
    incoming = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
    incoming.append({"type": "http.disconnect"})
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop(0) if len(incoming) > 1 else incoming[0]

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": r["method"], "scheme": "http",
        "path": r["path"], "raw_path": r["path"].encode(), "query_string": r["query"], "root_path": "",
        "headers": r["headers"], "client": r["client"], "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    return sent


def test_random_requests_never_fail_and_series_stay_bounded(rum):
    c = rum(rum_rate_limit=3000)  # high enough that most beacons get through, low enough to see 429s
    c.get("/pages/1")  # from now on the server knows the app's routes
    known = {r.path_format for r in rum_app.app.routes} | {"_OTHER"}
    statuses: set[int] = set()

    @settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(request)
    def one(r: dict) -> None:
        sent = asyncio.run(call(c.app, r))  # an exception here fails the example
        starts = [m for m in sent if m["type"] == "http.response.start"]
        assert len(starts) == 1 and sent[0] is starts[0], sent
        assert starts[0]["status"] in ANSWERS, starts[0]
        assert sent[-1]["type"] == "http.response.body" and not sent[-1].get("more_body")
        assert sent[-1]["body"] != b"error", "an internal failure (see the logged traceback)"
        statuses.add(starts[0]["status"])

    one()
    assert {204, 400, 405, 413} <= statuses  # the fuzzer reached every kind of answer that matters

    data = collect(c.t)
    # Attribute values come from closed sets: routes (the app's + _OTHER) x devices (3 + unknown)
    # x navigation types (7 + _OTHER) x ratings (3).
    bound = len(known) * (len(DEVICES) + 1) * (len(NAVIGATION_TYPES) + 1) * 3
    for m in VITAL_METRICS:
        points = data.get(m.name, [])
        assert len(points) <= bound
        for p in points:
            assert p.attributes["http.route"] in known
            assert 0 <= p.min and p.max <= 600
    assert {p.attributes["reason"] for p in data[RUM_REJECTED.name]} <= REASONS | {"error"}
    assert "error" not in {p.attributes["reason"] for p in data[RUM_REJECTED.name]}  # no internal failure
