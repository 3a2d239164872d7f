"""Core Web Vitals real-user monitoring: the browser script, its beacon endpoint, HTML injection.

The ASGI middleware (otel_perf.http) hands every request under ``settings.rum_prefix`` to
``RUM.endpoint`` and, with ``rum_inject``, wraps ``send`` with ``RUM.wrap_send`` so HTML pages get
``<script src="{prefix}/rum.js?v=<hash>" defer>`` plus their route template in a meta tag.

``GET {prefix}/rum.js``   the bundled script (web-vitals attribution build), cached for a year
                          under its content-hash URL, ETag/304, gzip when accepted.
``POST {prefix}/vitals``  beacons -> ``browser.web_vital.*`` histograms (attributes: page route,
                          device class, navigation type, rating) and one span per beacon linked to
                          the page load's backend trace; the histogram records carry that trace as
                          their context, so exemplars point at the backend trace too.

Bad input is answered, never raised: 413 over 16 KiB, 400 for non-JSON or a wrong schema, 405 for
a wrong method, 429 past the per-client rate; each rejection is counted by reason in
``otel_perf.rum.rejected``.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from importlib import resources
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from otel_perf._internal import VERSION, catalogue
from otel_perf._internal.integrations.rum import beacon as beacons
from otel_perf._internal.integrations.rum import inject

log = logging.getLogger("otel_perf")

Send = Callable[[dict], Awaitable[None]]
Receive = Callable[[], Awaitable[dict]]

MAX_ROUTES = 1000  # distinct page routes known; beyond them (and for unknown ones) _OTHER
MAX_CLIENTS = 10_000  # rate-limit buckets kept (oldest evicted)
_METRICS = {
    "lcp": catalogue.WEB_VITAL_LCP,
    "inp": catalogue.WEB_VITAL_INP,
    "cls": catalogue.WEB_VITAL_CLS,
    "fcp": catalogue.WEB_VITAL_FCP,
    "ttfb": catalogue.WEB_VITAL_TTFB,
}


class RUM:
    """The RUM endpoints and injector of one Telemetry."""

    def __init__(self, telemetry: Any):
        settings = telemetry.settings
        self.prefix: str = "/" + (settings.rum_prefix.strip("/") or "_otel")
        self.inject: bool = settings.rum_inject
        self.slo = settings.slo
        self._script = _Asset("rum.js", "text/javascript; charset=utf-8")
        self._licence = _Asset("rum.js.LICENSE.txt", "text/plain; charset=utf-8")
        self.script_url = f"{self.prefix}/rum.js?v={self._script.version}"
        self._routes: set[str] = set()  # page routes beacons may name: the app's templates
        self._router_seen = False
        self._limiter = _RateLimiter(settings.rum_rate_limit)

        meter = telemetry.meter_provider.get_meter("otel_perf.rum", VERSION)
        self._histograms = {
            key: meter.create_histogram(
                m.name, unit=m.unit, description=m.description,
                explicit_bucket_boundaries_advisory=list(self.slo.vital_buckets(key)),
            )
            for key, m in _METRICS.items()
        }
        self._rejected = meter.create_counter(
            catalogue.RUM_REJECTED.name, unit=catalogue.RUM_REJECTED.unit, description=catalogue.RUM_REJECTED.description
        )
        self._tracer = telemetry.tracer_provider.get_tracer("otel_perf.rum", VERSION)

    # -- HTML injection ---------------------------------------------------------------------------

    def wrap_send(self, scope: dict, send: Send) -> Send:
        """``send`` that inserts the script tag into this request's HTML response (if it is one)."""
        if scope.get("method") == "HEAD":
            return send

        def make_tag() -> bytes | None:
            try:
                from otel_perf._internal.routes import route_template

                if not self._router_seen and scope.get("router") is not None:
                    self._router_seen = True  # any worker that served a page knows every route
                    self._known(_templates(getattr(scope["router"], "routes", ())))
                route = route_template(scope)
                if route is not None:
                    self._known((route,))  # beacons may name it from now on
                return inject.tag(self.script_url, route)
            except Exception:
                log.debug("otel-perf: RUM injection skipped", exc_info=True)
                return None

        return inject.wrap(send, make_tag)

    def _known(self, routes: Iterable[str]) -> None:
        for route in routes:
            if len(self._routes) >= MAX_ROUTES:
                return
            self._routes.add(route)

    # -- endpoints ------------------------------------------------------------------------------------

    async def endpoint(self, scope: dict, receive: Receive, send: Send) -> None:
        """Serve ``{prefix}/rum.js`` (+ its licence) and ingest ``{prefix}/vitals``; never raises."""
        started = False
        raw_send = send

        async def tracked(message: dict) -> None:
            nonlocal started
            started = True
            await raw_send(message)

        send = tracked
        try:
            path = scope.get("path", "")[len(self.prefix):]
            method = scope.get("method", "GET")
            if path == "/vitals":
                if method != "POST":
                    return await self._reject(send, 405, "method_not_allowed", allow=b"POST")
                return await self._ingest(scope, receive, send)
            asset = self._script if path == "/rum.js" else self._licence if path == "/rum.js.LICENSE.txt" else None
            if asset is None:
                return await _respond(send, 404, b"not found")
            if method not in ("GET", "HEAD"):
                return await _respond(send, 405, b"method not allowed", [(b"allow", b"GET, HEAD")])
            return await asset.serve(scope, send)
        except OSError:
            return  # the client went away
        except Exception:
            log.warning("otel-perf: RUM endpoint failed", exc_info=True)
            if not started:  # a bug of ours must not look like a server error to the page
                try:
                    await self._reject(send, 400, "error")
                except Exception:
                    pass

    async def _ingest(self, scope: dict, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if not self._limiter.allow(client[0] if client else ""):
            return await self._reject(send, 429, "rate_limited")
        declared = _header(scope, b"content-length")
        if declared is not None and (not (declared.isascii() and declared.isdigit()) or int(declared) > beacons.MAX_BODY):
            return await self._reject(send, 413, "too_large")
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # disconnected
            body += message.get("body", b"")
            if len(body) > beacons.MAX_BODY:
                return await self._reject(send, 413, "too_large")
            if not message.get("more_body", False):
                break
        try:
            beacon = beacons.parse(bytes(body))
        except beacons.Invalid:
            return await self._reject(send, 400, "invalid")
        self._record(beacon)
        await _respond(send, 204, b"", cache=b"no-store")

    async def _reject(self, send: Send, status: int, reason: str, allow: bytes | None = None) -> None:
        self._rejected.add(1, {"reason": reason})
        headers = [(b"allow", allow)] if allow else []
        await _respond(send, status, reason.replace("_", " ").encode(), headers)

    def _record(self, beacon: beacons.Beacon) -> None:
        for reason, count in beacon.dropped.items():
            self._rejected.add(count, {"reason": reason})
        if not beacon.vitals:
            return
        route = beacon.route if beacon.route in self._routes else beacons.OTHER
        backend = None
        if beacon.trace_id is not None:
            backend = SpanContext(
                beacon.trace_id, beacon.span_id, is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED if beacon.sampled else TraceFlags.DEFAULT),
            )
        # The backend span as the records' context: exemplars then point at the page's backend trace.
        # Never the ambient context: whatever wraps this endpoint is not the page's trace.
        context = trace.set_span_in_context(NonRecordingSpan(backend), Context()) if backend is not None else Context()
        span_attributes: dict[str, Any] = {"http.route": route, "browser.device.class": beacon.device}
        for vital in beacon.vitals:
            rating = self.slo.vital_rating(vital.key, vital.value)
            attributes = {
                "http.route": route,
                "browser.device.class": beacon.device,
                "browser.navigation.type": vital.navigation_type,
                "browser.web_vital.rating": rating,
            }
            self._histograms[vital.key].record(vital.value, attributes, context=context)
            span_attributes[f"browser.web_vital.{vital.key}"] = vital.value
            span_attributes[f"browser.web_vital.{vital.key}.rating"] = rating
            span_attributes["browser.navigation.type"] = vital.navigation_type
            if vital.attribution:
                span_attributes[f"browser.web_vital.{vital.key}.attribution"] = vital.attribution
        # A root span of its own (the page load's trace is finished), linked to the backend span.
        links = [Link(backend)] if backend is not None else None
        self._tracer.start_span("browser.web_vitals", Context(), SpanKind.INTERNAL, span_attributes, links).end()


class _Asset:
    """A packaged static file, hashed and gzipped once."""

    def __init__(self, name: str, content_type: str):
        self.body = resources.files(__package__).joinpath("static", name).read_bytes()
        self.gzipped = gzip.compress(self.body, mtime=0)
        self.version = hashlib.sha256(self.body).hexdigest()[:16]
        self.etag = f'"{self.version}"'.encode()
        self.content_type = content_type.encode()

    async def serve(self, scope: dict, send: Send) -> None:
        # The versioned URL never changes content: cache it for a year; the bare URL briefly.
        versioned = f"v={self.version}".encode() in scope.get("query_string", b"").split(b"&")
        headers = [
            (b"content-type", self.content_type),
            (b"cache-control", b"public, max-age=31536000, immutable" if versioned else b"public, max-age=3600"),
            (b"etag", self.etag),
            (b"vary", b"accept-encoding"),
            (b"x-content-type-options", b"nosniff"),
        ]
        if self.etag in (_header(scope, b"if-none-match") or "").encode():
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        body = self.body
        if "gzip" in (_header(scope, b"accept-encoding") or ""):
            body = self.gzipped
            headers.append((b"content-encoding", b"gzip"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body})


class _RateLimiter:
    """A token bucket per client address: ``per_minute`` beacons, bursts of ten seconds' worth."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.burst = max(1.0, per_minute / 6.0)
        self.buckets: dict[str, list[float]] = {}

    def allow(self, client: str) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        bucket = self.buckets.pop(client, None)  # re-inserted last: the dict stays in LRU order
        if bucket is None:
            if len(self.buckets) >= MAX_CLIENTS:
                del self.buckets[next(iter(self.buckets))]
            bucket = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        allowed = tokens >= 1.0
        self.buckets[client] = [tokens - 1.0 if allowed else tokens, now]
        return allowed


def _templates(routes: Iterable[Any], prefix: str = "", depth: int = 0) -> Iterator[str]:
    """The route templates of a Starlette router, Mounts expanded (as ``route_template`` names them)."""
    for route in routes:
        path = getattr(route, "path_format", None) or getattr(route, "path", None)
        if not isinstance(path, str):
            continue
        children = getattr(route, "routes", None)
        if children and depth < 8:  # a Mount: its prefix without the "/{path}" it compiles
            yield from _templates(children, prefix + path.removesuffix("/{path}"), depth + 1)
        else:
            yield prefix + path


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1").strip()
    return None


async def _respond(send: Send, status: int, body: bytes, headers: list | None = None, cache: bytes = b"no-store") -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", cache),
            *(headers or ()),
        ],
    })
    await send({"type": "http.response.body", "body": body})
