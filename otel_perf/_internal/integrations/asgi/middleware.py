"""The ASGI middleware: one SERVER span and one duration record per request, nothing else hot.

A marker in the ASGI scope makes a second layer pass straight through. Work that can wait is done
at collection time (active requests are a plain dict observed by the SDK), and headers are decoded
only when a request carries one the configured propagators read. A request ends with the last
byte of its response (background tasks run after it); one whose client went away is recorded
with ``error.type`` and no 5xx status, outside the error rate. The route template is filled in by
the framework integrations (``routes``, ``django``) as the request's routes match.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import perf_counter, time_ns
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_perf._internal import VERSION, catalogue
from otel_perf._internal.context import REQUEST, Request
from otel_perf._internal.scrub import exception_attributes
from otel_perf._internal.sdk.deferred import DeferredHistogram
from otel_perf._internal.sdk.live_spans import LiveSpans

log = logging.getLogger("otel_perf")

_SCOPE_KEY = "otel_perf.request"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})




class _HeaderGetter(Getter):
    """Reads propagation headers straight from the ASGI header list (keys are lower-case bytes)."""

    def get(self, carrier: list, key: str) -> list[str] | None:
        wanted = key.lower().encode("latin-1")  # X-Ray asks for "X-Amzn-Trace-Id"
        values = [v.decode("latin-1") for k, v in carrier if k == wanted]
        return values or None

    def keys(self, carrier: list) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


_GETTER = _HeaderGetter()
_SERVER_TIMING = b'traceparent;desc="00-%032x-%016x-%02x"'


def _propagation_headers() -> frozenset[bytes]:
    """The header names the configured propagators (OTEL_PROPAGATORS: W3C, B3, Jaeger, X-Ray...)
    read: requests carrying none of them skip extraction altogether."""
    try:
        fields = propagate.get_global_textmap().fields
    except Exception:
        fields = {"traceparent", "tracestate", "baggage"}
    return frozenset(f.lower().encode("latin-1") for f in fields)


# Disconnected or cancelled: the client went away, not a server error (no 5xx, no error rate).
_ERROR = Status(StatusCode.ERROR)
_GONE = ("CancelledError", "ClientDisconnect", "ClientDisconnected", "ConnectionResetError", "BrokenPipeError")


class Series:
    """What requests of one method, scheme, status, route and error type share: the duration's
    attributes, the attributes the span gets at its end (method and scheme it has from its start)
    and the span's name."""

    __slots__ = ("attributes", "span_attributes", "name")

    def __init__(self, key: tuple[str, str], status: int | None, route: str | None, error_type: str | None):
        method, scheme = key
        self.attributes: dict[str, Any] = {"http.request.method": method, "url.scheme": scheme}
        self.span_attributes: dict[str, Any] = {}
        if status is not None:
            self.span_attributes["http.response.status_code"] = status
        if route is not None:
            self.span_attributes["http.route"] = route
        if error_type is not None:
            self.span_attributes["error.type"] = error_type
        self.attributes.update(self.span_attributes)
        self.name = f"{method} {route}" if route is not None else None


class Instruments:
    """The instruments of one Telemetry; rebuilt when configure() runs in a new process."""

    def __init__(self, telemetry: Any):
        settings = telemetry.settings
        self.tracer = telemetry.tracer_provider.get_tracer("otel_perf.http", VERSION)
        self.spans = LiveSpans(self.tracer)  # the SDK's span semantics without its per-span cost
        self.propagation = _propagation_headers()
        meter = telemetry.meter_provider.get_meter("otel_perf.http", VERSION)
        self.duration = DeferredHistogram(meter, catalogue.HTTP_SERVER_DURATION, settings.slo.http_buckets)
        self.slow = settings.slo.http_latency
        self.active: dict[tuple[str, str], int] = {}
        self._series: dict[tuple, Series] = {}
        meter.create_observable_up_down_counter(
            catalogue.HTTP_SERVER_ACTIVE.name,
            callbacks=[self._observe_active],
            unit=catalogue.HTTP_SERVER_ACTIVE.unit,
            description=catalogue.HTTP_SERVER_ACTIVE.description,
        )
        self.server_timing = settings.server_timing
        self.summary = telemetry.summary
        self.profiler = None  # stack samples of slow requests only (see profiler.py)
        if settings.profile:
            from otel_perf._internal.profiler import Profiler

            self.profiler = Profiler(settings.slo.http_latency, settings.profile_interval, self.summary)
        self.rum = None
        if settings.rum:
            from otel_perf._internal.integrations.rum import RUM

            self.rum = RUM(telemetry)
            self.rum_root = self.rum.prefix + "/"  # "/_otel/..." but not "/_otelfoo"

    def series(self, key: tuple[str, str], status: int | None, route: str | None, error_type: str | None) -> Series:
        """One shared ``Series`` per combination: no dict built per request, and the deferred
        histogram groups queued values by its attributes dict."""
        lookup = (key, status, route, error_type)
        series = self._series.get(lookup)
        if series is None:
            if len(self._series) >= 10_000:  # bounded: route templates and codes are, exception types may not be
                self._series.clear()
            series = self._series[lookup] = Series(key, status, route, error_type)
        return series

    def _observe_active(self, options: CallbackOptions) -> list[Observation]:
        return [
            Observation(n, {"http.request.method": m, "url.scheme": s}) for (m, s), n in list(self.active.items())
        ]


ACTIVE: Instruments | None = None  # set by install(); None: every request passes through


class OtelPerfMiddleware:
    """ASGI middleware; add it yourself (``app = OtelPerfMiddleware(app)``) where otel-perf cannot
    patch the server or framework that builds the app. Passes requests through until configure()."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        instruments = ACTIVE
        if instruments is None or scope["type"] != "http" or _SCOPE_KEY in scope:
            return await self.app(scope, receive, send)
        return await _handle(instruments, self.app, scope, receive, send)


async def _handle(ins: Instruments, app: Any, scope: dict, receive: Callable, send: Callable) -> None:
    rum = ins.rum
    if rum is not None and (scope["path"].startswith(ins.rum_root) or scope["path"] == rum.prefix):
        scope[_SCOPE_KEY] = None
        return await rum.endpoint(scope, receive, send)
    start = perf_counter()
    try:
        method = scope["method"]
        if method not in _METHODS:
            method = "_OTHER"
        scheme = scope.get("scheme", "http")
        headers = scope["headers"]
        # Most requests carry no trace context: skip the propagators unless one of their headers is there.
        propagation = ins.propagation
        parent = None
        for name, _ in headers:
            if name in propagation:
                parent = propagate.extract(headers, getter=_GETTER)
                break
        span = ins.spans.start(
            method, parent, SpanKind.SERVER, {"http.request.method": method, "url.path": scope["path"], "url.scheme": scheme}
        )
        request = Request(span, method)
        scope[_SCOPE_KEY] = request
        token = context.attach(trace.set_span_in_context(span, parent))
        request_token = REQUEST.set(request)
        key = (method, scheme)
        ins.active[key] = ins.active.get(key, 0) + 1
    except Exception:
        _warn_once("could not start request telemetry")
        return await app(scope, receive, send)
    if ins.profiler is not None:
        try:
            ins.profiler.begin(request, start)
        except Exception:
            _warn_once("could not watch the request for the profiler")

    status: int | None = None
    ended: tuple[float, int] | None = None  # (duration, end time) at the last byte
    finished = False
    disconnected = False

    async def receive_wrapper() -> dict:
        nonlocal disconnected
        message = await receive()
        if message["type"] == "http.disconnect":
            disconnected = True
        return message

    async def send_wrapper(message: dict) -> None:
        nonlocal status, finished, ended
        kind = message["type"]
        if kind == "http.response.start":
            try:
                status = message["status"]
                if ins.server_timing:
                    ctx = span.get_span_context()
                    value = _SERVER_TIMING % (ctx.trace_id, ctx.span_id, ctx.trace_flags)
                    message = {**message, "headers": [*message.get("headers", ()), (b"server-timing", value)]}
            except Exception:
                _warn_once("could not annotate the response")
            await send(message)
            return
        await send(message)
        # The request ends with the response's last byte: background tasks run after it.
        if ended is None and (kind == "http.response.body" and not message.get("more_body", False)
                              or kind == "http.response.pathsend"):
            ended = (perf_counter() - start, time_ns())
            if status is None or status < 500:
                finished = True
                _end(ins, request, status, None, False, ended, key)
            # a 5xx waits for the app to return: the exception behind it may follow

    inner_send = send_wrapper
    if rum is not None and rum.inject:
        try:
            inner_send = rum.wrap_send(scope, send_wrapper)
        except Exception:
            _warn_once("could not set up RUM injection")
    error: BaseException | None = None
    try:
        await app(scope, receive_wrapper, inner_send)
    except BaseException as exc:
        error = exc
        raise
    finally:
        try:
            if not finished:
                finished = True
                gone = ended is None and (disconnected or (error is not None and type(error).__name__ in _GONE))
                _end(ins, request, status, error, gone, ended or (perf_counter() - start, None), key)
        finally:
            REQUEST.reset(request_token)
            context.detach(token)


def _end(ins: Instruments, request: Request, status: int | None, error: BaseException | None, gone: bool,
         ended: tuple[float, int | None], key: tuple[str, str]) -> None:
    try:
        _finish(ins, request, status, error, gone, ended, key)
    except Exception:
        _warn_once("could not finish request telemetry")
        request.span.end()  # never leave a span open (ending twice is a no-op)


def _finish(ins: Instruments, request: Request, status: int | None, error: BaseException | None, gone: bool,
            ended: tuple[float, int | None], key: tuple[str, str]) -> None:
    duration, end_time = ended
    ins.active[key] -= 1
    span = request.span
    route = request.route
    error_type = None
    if error is not None and not isinstance(error, GeneratorExit):
        error_type = type(error).__qualname__
        # Not record_exception: database errors quote values (DETAIL: Key (email)=(...)).
        span.add_event("exception", exception_attributes(error, escaped=True))
    elif gone:  # the client left before the last byte, without an exception reaching us
        error_type = "ClientDisconnected"
    elif status is not None and status >= 500:
        error_type = str(status)
    elif status is None:  # the app returned without a response: the server answers 500
        error_type = "_OTHER"
    series = ins.series(key, status, route, error_type)
    if series.name is not None:
        span.update_name(series.name)
    if error_type is not None:
        span.set_status(_ERROR)
    span.set_attributes(series.span_attributes)  # method and scheme are set at the start
    attributes = series.attributes
    # Slow and failed requests are recorded at once, as exemplars of their trace; the rest wait.
    exemplar = error_type is not None or duration > ins.slow
    ins.duration.record(duration, attributes, trace.set_span_in_context(span) if exemplar else None)
    if ins.profiler is not None:  # first, as it always was: its event precedes the integrations'
        try:
            ins.profiler.end(request)
        except Exception:
            _warn_once("the profiler failed at the end of a request")
    for callback in request.on_end:
        try:
            callback(request)
        except Exception:
            _warn_once("a request-end callback failed")
    span.end(end_time)
    if ins.summary is not None:
        # A client that went away is no server error: counted, never in the error rate.
        server_error = not gone and (error is not None or status is None)
        ins.summary.request(key[0], route, status if not server_error else (status or 500), duration)


_warned: set[str] = set()


def _warn_once(what: str) -> None:
    if what not in _warned:
        _warned.add(what)
        log.warning("otel-perf: %s; the request is served without it", what, exc_info=True)
