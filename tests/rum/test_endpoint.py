"""The RUM script endpoint, HTML injection and beacon ingest, in-process through the real middleware."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path

from opentelemetry.trace import SpanKind

from otel_perf._internal.catalogue import (
    HTTP_SERVER_DURATION,
    WEB_VITAL_CLS,
    WEB_VITAL_INP,
    WEB_VITAL_LCP,
    WEB_VITAL_TTFB,
)
from tests.rum.conftest import TRACEPARENT, beacon, collect

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "otel_perf" / "_internal" / "integrations" / "rum" / "static"
TAG = re.compile(rb'<meta name="otel-perf-route" content="([^"]*)"><script src="(/_otel/rum\.js\?v=[0-9a-f]{16})" defer></script>')


def test_script_is_served_with_long_lived_versioned_caching(rum):
    c = rum()
    page = c.get("/pages/1")
    url = TAG.search(page.content)[2].decode()
    body = STATIC.joinpath("rum.js").read_bytes()
    assert url.endswith(hashlib.sha256(body).hexdigest()[:16])

    r = c.get(url, headers={"accept-encoding": "identity"})
    assert r.status_code == 200 and r.content == body
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "web-vitals" in r.text[:200] and "rum.js.LICENSE.txt" in r.text[:200]
    assert c.get("/_otel/rum.js").headers["cache-control"] == "public, max-age=3600"  # unversioned: short

    etag = r.headers["etag"]
    assert c.get(url, headers={"if-none-match": etag}).status_code == 304
    zipped = c.get(url, headers={"accept-encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == body  # httpx decodes
    assert int(zipped.headers["content-length"]) == len(gzip.compress(body, mtime=0))

    licence = c.get("/_otel/rum.js.LICENSE.txt")
    assert licence.status_code == 200 and "Apache License" in licence.text and "web-vitals" in licence.text
    assert c.get("/_otel/nothing").status_code == 404
    assert c.request("POST", "/_otel/rum.js").status_code == 405


def test_rum_endpoints_make_no_request_spans_or_metrics(rum):
    c = rum()
    c.get("/_otel/rum.js")
    c.beacon(beacon(lcp=1000))
    assert not [s for s in c.t.spans() if s.kind is SpanKind.SERVER]
    assert not c.t.points(HTTP_SERVER_DURATION.name)


def test_html_gets_script_and_route_template_with_fixed_length(rum):
    r = rum().get("/pages/7")
    match = TAG.search(r.content)
    assert match and match[1] == b"/pages/{page_id}"  # the template, never /pages/7
    assert r.content.index(match[0]) < r.content.index(b"</head>")
    assert int(r.headers["content-length"]) == len(r.content)
    assert b"Order 7" in r.content


def test_streamed_html_is_injected_and_still_streamed(rum):
    r = rum().get("/stream")
    assert r.status_code == 200 and "content-length" not in r.headers
    assert TAG.search(r.content)[1] == b"/stream"
    assert r.content.endswith(b"<p>chunk 2</p></body></html>")
    assert r.content.index(b"<script") < r.content.index(b"</HEAD>")  # case-insensitive match


def test_compressed_non_html_and_error_pages_are_left_alone(rum):
    c = rum()
    zipped = c.get("/compressed")
    assert zipped.content == b"<html><head></head><body>zipped</body></html>"  # decoded by httpx, untouched
    assert c.get("/api").json() == {"ok": True}
    assert b"<script" not in c.get("/missing").content
    headless = c.get("/headless")
    assert headless.content == b"<p>no head element here</p>"
    assert int(headless.headers["content-length"]) == len(headless.content)


def test_injection_off_leaves_pages_alone(rum):
    assert b"rum.js" not in rum(rum_inject=False).get("/pages/1").content


def test_beacon_records_vitals_with_route_rating_and_trace_link(rum):
    c = rum()
    c.get("/pages/1")  # the server injected this route: beacons may name it
    r = c.beacon(beacon(lcp=1800.0, inp=350.0, cls=0.3, ttfb=120.0))
    assert r.status_code == 204

    points = collect(c.t)
    trace_id = int(TRACEPARENT.split("-")[1], 16)
    for metric in (WEB_VITAL_LCP, WEB_VITAL_INP, WEB_VITAL_CLS, WEB_VITAL_TTFB):  # exemplars: the backend trace
        assert [e.trace_id for p in points[metric.name] for e in p.exemplars] == [trace_id], metric.name
    (lcp,) = c.t.points(WEB_VITAL_LCP.name)
    assert lcp.sum == 1.8 and lcp.count == 1
    assert dict(lcp.attributes) == {
        "http.route": "/pages/{page_id}", "browser.device.class": "desktop",
        "browser.navigation.type": "navigate", "browser.web_vital.rating": "good",
    }
    assert {2.5, 4.0} <= set(lcp.explicit_bounds)
    assert c.t.points(WEB_VITAL_INP.name)[0].attributes["browser.web_vital.rating"] == "needs-improvement"
    (cls,) = c.t.points(WEB_VITAL_CLS.name)
    assert cls.sum == 0.3 and cls.attributes["browser.web_vital.rating"] == "poor"
    assert {0.1, 0.25} <= set(cls.explicit_bounds)
    assert {0.8, 1.8} <= set(c.t.points(WEB_VITAL_TTFB.name)[0].explicit_bounds)

    (span,) = [s for s in c.t.spans() if s.name == "browser.web_vitals"]
    (link,) = span.links
    assert link.context.trace_id == trace_id and link.context.span_id == int(TRACEPARENT.split("-")[2], 16)
    assert span.context.trace_id != trace_id  # its own trace, linked
    assert span.attributes["browser.web_vital.lcp"] == 1.8
    assert span.attributes["http.route"] == "/pages/{page_id}"


def test_unknown_routes_devices_and_navigation_types_collapse(rum):
    c = rum()
    c.get("/pages/1")
    for i in range(20):
        payload = beacon(route=f"/users/{i}/secret", lcp=1000.0)
        payload["device"] = f"fridge-{i}"
        payload["metrics"][0]["navigationType"] = f"teleport-{i}"
        assert c.beacon(payload).status_code == 204
    (point,) = c.t.points(WEB_VITAL_LCP.name)
    assert point.count == 20
    assert dict(point.attributes) == {
        "http.route": "_OTHER", "browser.device.class": "unknown",
        "browser.navigation.type": "_OTHER", "browser.web_vital.rating": "good",
    }


def test_any_served_page_teaches_the_apps_route_table(rum):
    """With several workers, a beacon may reach one that never served that page: it still knows the route."""
    c = rum()
    assert c.beacon(beacon(lcp=900.0)).status_code == 204  # nothing served yet: unknown
    c.get("/stream")  # some other page
    assert c.beacon(beacon(lcp=900.0)).status_code == 204
    assert c.beacon(beacon(route="/api", lcp=900.0)).status_code == 204
    routes = sorted((p.attributes["http.route"], p.count) for p in c.t.points(WEB_VITAL_LCP.name))
    assert routes == [("/api", 1), ("/pages/{page_id}", 1), ("_OTHER", 1)]


def test_bad_input_rules_and_rejections_counted_by_reason(rum):
    c = rum()
    c.get("/pages/1")
    assert c.beacon(b"x" * (16 * 1024 + 1)).status_code == 413
    assert c.beacon(b"{not json").status_code == 400
    assert c.beacon(b"\xff\xfe\x00garbage").status_code == 400
    assert c.beacon([1, 2]).status_code == 400
    assert c.beacon({"metrics": "LCP"}).status_code == 400
    assert c.beacon({"metrics": [{"name": "LCP", "value": "fast"}]}).status_code == 400
    assert c.beacon({"metrics": [{"name": "LCP", "value": True}]}).status_code == 400
    assert c.beacon({"metrics": [{"name": "LCP", "value": 1}] * 21}).status_code == 400
    assert c.get("/_otel/vitals").status_code == 405
    assert c.request("PUT", "/_otel/vitals").headers["allow"] == "POST"
    # Accepted, but the bad values inside are dropped (and counted), not recorded.
    payload = beacon(lcp=-1.0, cls=101.0, fcp=600_001.0)
    payload["metrics"] += [{"name": "FID", "value": 10}, {"name": "TTFB", "value": 10**400},
                           {"name": "INP", "value": 100}, {"name": "INP", "value": 100}]
    assert c.beacon(payload).status_code == 204
    assert c.beacon(b'{"metrics":[{"name":"LCP","value":NaN}]}').status_code == 204
    assert c.rejected() == {
        "too_large": 1, "invalid": 7, "method_not_allowed": 2,
        "out_of_bounds": 5, "unknown_metric": 1, "duplicate": 1,
    }
    assert not c.t.points(WEB_VITAL_LCP.name)
    assert c.t.points(WEB_VITAL_INP.name)[0].count == 1


def test_declared_oversize_body_is_refused_before_reading(rum):
    c = rum()
    r = c.request("POST", "/_otel/vitals", content=b"{}", headers={"content-length": str(10**9)})
    assert r.status_code == 413
    assert c.rejected() == {"too_large": 1}


def test_per_client_rate_limit_answers_429(rum):
    c = rum(rum_rate_limit=60)  # 1/s, bursts of 10
    codes = [c.beacon(beacon(lcp=1000.0)).status_code for _ in range(15)]
    assert codes[:10] == [204] * 10 and set(codes[10:]) == {429}
    c.client = ("198.51.100.1", 1)  # another address has its own bucket
    assert c.beacon(beacon(lcp=1000.0)).status_code == 204
    assert c.rejected()["rate_limited"] == 5


def test_custom_prefix(rum):
    c = rum(rum_prefix="/telemetry/")
    assert b'src="/telemetry/rum.js?v=' in c.get("/pages/2").content
    assert c.beacon(beacon(lcp=1.0)).status_code == 404  # /_otel is the app's now
    assert c.request("POST", "/telemetry/vitals", content=b"{}").status_code == 400


def test_committed_bundle_is_built_from_the_locked_web_vitals():
    lock = json.loads((ROOT / "rum" / "package-lock.json").read_text())
    locked = lock["packages"]["node_modules/web-vitals"]["version"]
    assert int(locked.split(".")[0]) >= 5  # the current major's attribution build
    banner = STATIC.joinpath("rum.js").read_text().splitlines()[0]
    assert f"bundles web-vitals {locked} " in banner
    assert f"bundles web-vitals {locked}" in STATIC.joinpath("rum.js.LICENSE.txt").read_text()
