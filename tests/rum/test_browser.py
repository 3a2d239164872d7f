"""End to end: real headless Chromium loads an instrumented page served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

import pytest
import uvicorn
from opentelemetry.trace import SpanKind

from otel_perf import OtelPerfMiddleware
from otel_perf._internal.catalogue import (
    RUM_REJECTED,
    WEB_VITAL_CLS,
    WEB_VITAL_FCP,
    WEB_VITAL_INP,
    WEB_VITAL_LCP,
    WEB_VITAL_TTFB,
)
from otel_perf._internal.config.sla import DEFAULT
from tests.fixtures.net import free_port, wait_for
from tests.fixtures.procs import serve
from tests.rum import app as rum_app
from tests.rum.conftest import collect

ROOT = Path(__file__).resolve().parents[2]
VITALS = {"lcp": WEB_VITAL_LCP, "fcp": WEB_VITAL_FCP, "ttfb": WEB_VITAL_TTFB, "cls": WEB_VITAL_CLS, "inp": WEB_VITAL_INP}


@pytest.fixture
def server(telemetry):
    """The RUM test app behind otel_perf's middleware, under a real uvicorn on a free port."""
    t = telemetry(rum=True)
    config = uvicorn.Config(OtelPerfMiddleware(rum_app.app), host="127.0.0.1", port=free_port(),
                            log_level="warning", lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    wait_for(lambda: uv.started, timeout=15, what="uvicorn to start")
    t.url = f"http://127.0.0.1:{config.port}"
    yield t
    uv.should_exit = True
    thread.join(10)


def test_page_load_and_click_arrive_as_vitals_linked_to_the_backend_trace(server, chromium):
    t = server
    page = chromium.new_page()
    response = page.goto(f"{t.url}/pages/42")
    assert response.status == 200
    assert "traceparent" in response.headers["server-timing"]
    page.wait_for_function("document.querySelector('script[src^=\"/_otel/rum.js\"]') !== null")
    page.wait_for_function("window.__shifts > 0", timeout=10_000)  # the late banner moved the page
    page.click("#buy")
    page.wait_for_selector("text=bought")
    # INP needs the interaction's Event Timing entry; the page's own observer counts them.
    page.wait_for_function("window.__interactions > 0", timeout=10_000)
    # web-vitals processes Event Timing entries in an idle callback (up to 1 s in headless Chromium)
    # and drops an interaction still queued there when the page hides: wait for an idle callback
    # queued after its own (they run in order).
    page.evaluate("new Promise((done) => requestIdleCallback(done, {timeout: 1500}))")
    page.goto("about:blank")  # hides and leaves the page: the queued vitals go out in one beacon

    latest: dict[str, list] = {}
    exemplars: dict[str, set] = {m.name: set() for m in VITALS.values()}

    def arrived() -> bool:
        data = collect(t)  # exemplars are handed out once per collection: keep them
        for metric in VITALS.values():
            latest[metric.name] = [p for p in data.get(metric.name, ()) if p.count]
            exemplars[metric.name].update(e.trace_id for p in latest[metric.name] for e in p.exemplars)
        return all(latest.values())

    try:
        wait_for(arrived, timeout=20, what="LCP, FCP, TTFB, CLS and INP from the browser")
    except AssertionError as exc:
        got = {name: [(p.sum, dict(p.attributes)) for p in points] for name, points in latest.items()}
        raise AssertionError(f"{exc}; got {got}; rejected {t.points(RUM_REJECTED.name)}") from None

    (backend,) = [s for s in t.spans() if s.kind is SpanKind.SERVER and s.name == "GET /pages/{page_id}"]
    trace_id = backend.context.trace_id
    for key, metric in VITALS.items():
        (point,) = latest[metric.name]
        assert point.count == 1, key
        assert point.attributes["http.route"] == "/pages/{page_id}", key
        assert point.attributes["browser.device.class"] == "desktop"
        assert point.attributes["browser.navigation.type"] == "navigate"
        assert point.attributes["browser.web_vital.rating"] in ("good", "needs-improvement", "poor")
        assert exemplars[metric.name] == {trace_id}, key  # the metric points at the backend trace
    assert latest[WEB_VITAL_INP.name][0].sum >= 0.05  # the ~80 ms click handler
    assert latest[WEB_VITAL_CLS.name][0].sum > 0  # the late banner

    (vitals_span,) = [s for s in t.spans() if s.name == "browser.web_vitals"]  # one beacon
    (link,) = vitals_span.links
    assert (link.context.trace_id, link.context.span_id) == (trace_id, backend.context.span_id)
    assert vitals_span.attributes["browser.web_vital.lcp.attribution"].endswith("#hero")
    assert vitals_span.attributes["browser.web_vital.inp.attribution"].endswith("#buy")
    assert not t.points(RUM_REJECTED.name)


def test_unmodified_app_under_otel_perf_run_exports_vitals_to_prometheus(chromium):
    """The product path: ``OTEL_PERF_RUM=true otel-perf run uvicorn ...``, scraped as Prometheus text."""
    port = free_port()
    server = serve("tests.rum.app:app", extra=("--app-dir", str(ROOT)), OTEL_PERF_RUM="true",
                   OTEL_METRICS_EXPORTER="prometheus", OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
                   OTEL_EXPORTER_PROMETHEUS_PORT=str(port), OTEL_TRACES_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    try:
        page = chromium.new_page()
        page.goto(f"{server.url}/pages/3")
        page.wait_for_function("window.__shifts > 0", timeout=10_000)
        page.close()  # leaving by closing the tab flushes the beacon too

        def scraped() -> str | None:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            return body if f"{WEB_VITAL_CLS.prometheus}_count" in body else None

        body = wait_for(scraped, timeout=20, what="web vitals on the Prometheus endpoint")
    finally:
        assert server.stop()
    for metric in (WEB_VITAL_LCP, WEB_VITAL_FCP, WEB_VITAL_TTFB, WEB_VITAL_CLS):
        good = [line for line in body.splitlines() if line.startswith(f"{metric.prometheus}_bucket{{")
                and 'http_route="/pages/{page_id}"' in line and 'browser_device_class="desktop"' in line]
        key = metric.name.rsplit(".", 1)[1]
        threshold = getattr(DEFAULT, key)
        assert any(f'le="{threshold}"' in line and line.endswith(" 1.0") for line in good), (metric.name, good)
