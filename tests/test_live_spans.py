"""LiveSpan (the SERVER span's fast path) against the SDK's own Tracer.start_span, value for value.

The same generated inputs (attributes, operations on the live span, span limits, sampler, parent,
id generator) drive both paths on twin TracerProviders; the exported ReadableSpans must be the
same: name, kind, ids and flags, trace state, parent, attributes (values and order, after the
limits), dropped counts, events, links, status, resource, scope, times, their JSON, their OTLP
bytes, and the warnings the SDK logs on the way.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from otel_perf._internal.sdk import live_spans as live_spans
from otel_perf._internal.sdk.live_spans import LiveSpan, LiveSpans

# -- twin providers -------------------------------------------------------------------------------


class CountingIds(IdGenerator):
    """Deterministic ids, the same sequence for both providers."""

    def __init__(self, random: bool):
        self.n = 0
        self.random = random

    def generate_span_id(self) -> int:
        self.n += 1
        return 0x1000 + self.n

    def generate_trace_id(self) -> int:
        self.n += 1
        return 0xABC0000 + self.n

    def is_trace_id_random(self) -> bool:
        return self.random


class Tagging(sampling.Sampler):
    """A sampler that adds attributes, rewrites the trace state and decides from its inputs."""

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
        parent = trace.get_current_span(parent_context).get_span_context()
        state = (parent.trace_state if parent.is_valid else TraceState()).add("tag", f"n{len(name)}")
        decision = [sampling.Decision.RECORD_AND_SAMPLE, sampling.Decision.RECORD_ONLY,
                    sampling.Decision.DROP][trace_id % 3]
        seen = ",".join(sorted(str(k) for k in (attributes or {})))
        return sampling.SamplingResult(decision, {"sampler.kind": str(kind), "sampler.seen": seen,
                                                  "sampler.links": len(links or ())}, state)

    def get_description(self) -> str:
        return "Tagging"


SAMPLERS = {
    "always_on": lambda: sampling.ALWAYS_ON,
    "always_off": lambda: sampling.ALWAYS_OFF,
    "parent_on": lambda: sampling.ParentBased(sampling.ALWAYS_ON),
    "parent_ratio": lambda: sampling.ParentBased(sampling.TraceIdRatioBased(0.5)),
    "parent_off": lambda: sampling.ParentBased(sampling.ALWAYS_OFF),
    "ratio": lambda: sampling.TraceIdRatioBased(0.3),
    "tagging": Tagging,
    "parent_tagging": lambda: sampling.ParentBased(Tagging(), remote_parent_sampled=Tagging()),
    "parent_mixed": lambda: sampling.ParentBased(sampling.TraceIdRatioBased(0.7), local_parent_not_sampled=sampling.ALWAYS_ON),
    "record_off": lambda: sampling.AlwaysRecordSampler(sampling.ALWAYS_OFF),
    "record_parent_ratio": lambda: sampling.AlwaysRecordSampler(sampling.ParentBased(sampling.TraceIdRatioBased(0.5))),
}
RESOURCE = Resource({"service.name": "twin", "service.instance.id": "i-1"})


def providers(sampler: str, limits: dict, random_ids: bool) -> tuple[Any, Any]:
    made = []
    for _ in range(2):
        exporter = InMemorySpanExporter()
        provider = TracerProvider(sampler=SAMPLERS[sampler](), resource=RESOURCE, id_generator=CountingIds(random_ids),
                                  span_limits=SpanLimits(**limits), shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        made.append((provider.get_tracer("otel_perf.http", "1.2.3"), exporter))
    return made[0], made[1]


# -- generated inputs -----------------------------------------------------------------------------


class Shown:
    def __str__(self) -> str:
        return "shown"

    __repr__ = __str__


OPAQUE = object()  # no __str__ of its own: the SDK replaces it with None
KEYS = st.sampled_from(["a", "b", "c", "http.route", "http.response.status_code", "url.path", "k.long.name"])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False),
    st.text(max_size=12), st.text(min_size=10, max_size=40), st.binary(max_size=8),
    st.sampled_from([Shown(), OPAQUE, StatusCode.ERROR]),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(st.one_of(st.text(max_size=20), st.integers(0, 9), st.booleans()), max_size=4),
    st.tuples(st.text(max_size=20), st.integers(0, 9)),
    st.dictionaries(st.text(max_size=4), st.one_of(st.text(max_size=20), st.integers(0, 9)), max_size=3),
)
ODD_KEYS = st.sampled_from(["", 7, None, Shown(), OPAQUE, ("t",)])
MAPPINGS = st.one_of(
    st.dictionaries(KEYS, VALUES, max_size=6),
    st.dictionaries(st.one_of(KEYS, ODD_KEYS), VALUES, max_size=6),  # invalid and non-str keys
)
LIMITS = st.fixed_dictionaries({}, optional={
    "max_attributes": st.one_of(st.just(SpanLimits.UNSET), st.integers(0, 6)),
    "max_span_attributes": st.one_of(st.just(SpanLimits.UNSET), st.integers(0, 6)),
    "max_events": st.one_of(st.just(SpanLimits.UNSET), st.integers(0, 3)),
    "max_links": st.one_of(st.just(SpanLimits.UNSET), st.integers(0, 3)),
    "max_event_attributes": st.integers(0, 4),
    "max_link_attributes": st.integers(0, 4),
    "max_attribute_length": st.integers(0, 16),
    "max_span_attribute_length": st.integers(0, 16),
})
REMOTE = st.builds(
    lambda t, s, sampled, remote, state: SpanContext(t, s, remote, TraceFlags(1 if sampled else 0),
                                                     TraceState([("vendor", state)]) if state else None),
    st.integers(1, 2**64), st.integers(1, 2**32), st.booleans(), st.booleans(), st.sampled_from(["", "x1", "y2"]),
)
PARENTS = st.one_of(
    st.just(("none", None)),  # no context given and nothing current
    st.tuples(st.just("given"), REMOTE),  # a context built from the span context (remote or local)
    st.tuples(st.just("current"), REMOTE),  # no context given: the current span is the parent
    st.just(("invalid", None)),  # a context holding the invalid span
)
TIMES = st.integers(1_700_000_000_000_000_000, 1_700_000_000_100_000_000)
ERRORS = st.sampled_from([ValueError("bad value"), KeyError("k"), RuntimeError(""), ZeroDivisionError("x")])
OPS = st.one_of(
    st.tuples(st.just("set_attribute"), st.one_of(KEYS, ODD_KEYS), VALUES),
    st.tuples(st.just("set_attributes"), MAPPINGS),
    st.tuples(st.just("add_event"), st.text(max_size=8), st.one_of(st.none(), MAPPINGS), st.one_of(st.none(), TIMES)),
    st.tuples(st.just("add_link"), st.one_of(REMOTE, st.just(trace.INVALID_SPAN_CONTEXT)),
              st.one_of(st.none(), MAPPINGS)),
    st.tuples(st.just("set_status"), st.sampled_from(list(StatusCode)), st.one_of(st.none(), st.text(max_size=8)),
              st.booleans()),
    st.tuples(st.just("update_name"), st.text(max_size=12)),
    st.tuples(st.just("record_exception"), ERRORS, st.one_of(st.none(), MAPPINGS), TIMES, st.booleans()),
)
CASES = st.fixed_dictionaries({
    "name": st.text(max_size=12),
    "kind": st.sampled_from(list(SpanKind)),
    "attributes": st.one_of(st.none(), MAPPINGS),
    "sampler": st.sampled_from(sorted(SAMPLERS)),
    "limits": LIMITS,
    "random_ids": st.booleans(),
    "parent": PARENTS,
    "start": st.one_of(st.none(), TIMES),
    "ops": st.lists(OPS, max_size=10),
    "end": st.one_of(st.none(), TIMES),
    "after_end": st.lists(OPS, max_size=2),
})


# -- driving both paths ---------------------------------------------------------------------------


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.name, record.levelno, record.getMessage()))


def apply(span: Any, op: tuple) -> None:
    name, *args = op
    if name == "set_status":
        code, description, as_status = args
        span.set_status(Status(code, description) if as_status else code, None if as_status else description)
    elif name == "record_exception":
        error, attributes, timestamp, escaped = args
        span.record_exception(error, attributes, timestamp, escaped)
    else:
        getattr(span, name)(*args)


class Clock:
    """``time_ns`` for both paths: the same readings in the same order."""

    def __init__(self):
        self.now = 1_700_000_000_050_000_000

    def __call__(self) -> int:
        self.now += 1000
        return self.now


def drive(make: Any, case: dict) -> tuple[list[tuple], Any, list]:
    """Start a span with ``make``, apply the operations, end it; returns (what the live span showed,
    its class, log records)."""
    with pytest.MonkeyPatch.context() as mp:
        clock = Clock()
        mp.setattr(sdk_trace, "time_ns", clock)
        mp.setattr(live_spans, "time_ns", clock)
        return _drive(make, case)


def _drive(make: Any, case: dict) -> tuple[list[tuple], Any, list]:
    kind, parent = case["parent"]
    ctx = None
    token = None
    if kind == "given":
        ctx = trace.set_span_in_context(NonRecordingSpan(parent))
    elif kind == "current":
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    elif kind == "invalid":
        ctx = trace.set_span_in_context(trace.INVALID_SPAN)
    records = Records()
    root = logging.getLogger("opentelemetry")
    root.addHandler(records)
    try:
        span = make(case["name"], ctx, case["kind"], case["attributes"], case["start"])
        shown = [(span.is_recording(), span.get_span_context())]
        for op in case["ops"]:
            apply(span, op)
        if span.is_recording():
            shown.append((span.name, list(span.attributes.items()), span.dropped_attributes,
                          [(e.name, e.timestamp, dict(e.attributes or {})) for e in span.events],
                          span.status.status_code, span.status.description))
        span.end(case["end"])
        shown.append(span.is_recording())
        for op in case["after_end"]:
            apply(span, op)
        span.end()
    finally:
        root.removeHandler(records)
        if token is not None:
            otel_context.detach(token)
    return shown, type(span), records.seen


def exported(span: ReadableSpan) -> tuple:
    return (
        span.name, span.kind, span.context, span.get_span_context().trace_state, span.parent,
        list(span.attributes.items()), span.dropped_attributes,
        [(e.name, e.timestamp, list((e.attributes or {}).items()), e.dropped_attributes) for e in span.events],
        span.dropped_events,
        [(link.context, list((link.attributes or {}).items()), link.dropped_attributes) for link in span.links],
        span.dropped_links, span.status.status_code, span.status.description, span.resource,
        span.instrumentation_scope, span.start_time, span.end_time, span.start_time <= span.end_time,
    )


def as_json(span: ReadableSpan) -> Any:
    try:
        return span.to_json()
    except Exception as exc:  # noqa: BLE001 - bytes values: then both must fail alike
        return type(exc)


def otlp(spans: list[ReadableSpan]) -> Any:
    try:
        return encode_spans(spans).SerializeToString(deterministic=True)
    except Exception as exc:  # noqa: BLE001 - then both must fail alike
        return type(exc)


def twin_run(case: dict) -> tuple[Any, Any]:
    (sdk_tracer, sdk_exporter), (fast_tracer, fast_exporter) = providers(case["sampler"], case["limits"],
                                                                        case["random_ids"])
    live = LiveSpans(fast_tracer)
    assert live.fast()

    def sdk_start(name, ctx, kind, attributes, start):
        return sdk_tracer.start_span(name, ctx, kind, attributes, start_time=start)

    sdk = drive(sdk_start, case)
    fast = drive(live.start, case)
    return (sdk, sdk_exporter.get_finished_spans()), (fast, fast_exporter.get_finished_spans())


# -- the property ---------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CASES)
def test_live_span_exports_what_the_sdk_exports(case):
    (sdk, sdk_spans), (fast, fast_spans) = twin_run(case)
    (sdk_shown, sdk_class, sdk_logs), (fast_shown, fast_class, fast_logs) = sdk, fast
    assert fast_shown == sdk_shown
    assert fast_logs == sdk_logs
    assert issubclass(fast_class, LiveSpan) == (sdk_class is not NonRecordingSpan)
    assert len(fast_spans) == len(sdk_spans)
    assert [exported(s) for s in fast_spans] == [exported(s) for s in sdk_spans]
    assert [as_json(s) for s in fast_spans] == [as_json(s) for s in sdk_spans]
    assert otlp(list(fast_spans)) == otlp(list(sdk_spans))


def test_server_span_with_limits_and_events_equals_the_sdk():
    """One worked example of what the property covers, readable on its own."""
    case = {
        "name": "GET", "kind": SpanKind.SERVER, "sampler": "parent_on", "random_ids": True,
        "attributes": {"http.request.method": "GET", "url.path": "/items/" + "9" * 40, "url.scheme": "http"},
        "limits": {"max_span_attributes": 4, "max_span_attribute_length": 8, "max_events": 1},
        "parent": ("given", SpanContext(0xA1, 0xB2, True, TraceFlags(1), TraceState([("v", "1")]))),
        "start": None, "end": None, "after_end": [("set_attribute", "late", 1)],
        "ops": [("set_attributes", {"http.route": "/items/{id}", "http.response.status_code": 200,
                                    "http.request.method": "GET"}),
                ("add_event", "first", {"n": 1}, None), ("add_event", "second", {"n": 2}, 1_700_000_000_000_000_000),
                ("set_status", StatusCode.ERROR, None, False), ("update_name", "GET /items/{id}")],
    }
    (_, sdk_spans), (_, fast_spans) = twin_run(case)
    (sdk_span,), (fast_span,) = sdk_spans, fast_spans
    assert exported(fast_span) == exported(sdk_span)
    # 3 at start, 2 more: the two oldest go (url.path, then the method, which is set again last)
    assert fast_span.dropped_attributes == sdk_span.dropped_attributes == 2
    assert list(fast_span.attributes) == ["url.scheme", "http.route", "http.response.status_code",
                                          "http.request.method"]
    assert fast_span.attributes["http.route"] == "/items/{"  # truncated to the length limit
    assert fast_span.dropped_events == 1 and [e.name for e in fast_span.events] == ["second"]
    assert fast_span.parent.span_id == 0xB2 and fast_span.context.trace_state.get("v") == "1"
    assert otlp([fast_span]) == otlp([sdk_span])


# -- when the fast path steps aside ---------------------------------------------------------------


class Enriching(SpanProcessor):
    def __init__(self):
        self.started: list[Any] = []
        self.ending: list[Any] = []

    def on_start(self, span, parent_context=None):
        self.started.append(span)
        span.set_attribute("enriched", True)

    def _on_ending(self, span):
        self.ending.append(span)


def test_a_processor_with_an_on_start_gets_the_sdk_path():
    exporter, enriching = InMemorySpanExporter(), Enriching()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    live = LiveSpans(provider.get_tracer("t"))
    assert live.fast()
    assert isinstance(live.start("quiet", kind=SpanKind.SERVER), LiveSpan)
    provider.add_span_processor(enriching)
    assert not live.fast()
    span = live.start("loud", kind=SpanKind.SERVER)
    assert not isinstance(span, LiveSpan) and enriching.started == [span]
    span.end()
    assert exporter.get_finished_spans()[-1].attributes["enriched"] is True


def test_a_hook_set_on_a_processor_instance_gets_the_sdk_path():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    processor = SimpleSpanProcessor(exporter)
    started = []
    processor.on_start = lambda span, parent_context=None: started.append(span)
    provider.add_span_processor(processor)
    live = LiveSpans(provider.get_tracer("t"))
    assert not live.fast()
    span = live.start("x")
    assert started == [span] and not isinstance(span, LiveSpan)


def test_a_processor_added_while_a_span_is_open_sees_it_ending():
    exporter, enriching = InMemorySpanExporter(), Enriching()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    live = LiveSpans(provider.get_tracer("t"))
    span = live.start("open", kind=SpanKind.SERVER)
    provider.add_span_processor(enriching)
    span.end()
    assert enriching.ending == [span] and enriching.started == []
    assert [s.name for s in exporter.get_finished_spans()] == ["open"]


def test_a_disabled_tracer_and_internal_metrics_are_the_sdks():
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import _TracerConfig

    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    tracer = provider.get_tracer("t")
    live = LiveSpans(tracer)
    tracer._set_tracer_config(_TracerConfig(is_enabled=False))  # noqa: SLF001 - what a configurator does
    assert not live.start("off").is_recording()
    tracer._set_tracer_config(_TracerConfig(is_enabled=True))  # noqa: SLF001
    assert live.start("on").is_recording()

    def span_counts(make_span) -> list:
        reader = InMemoryMetricReader()
        meters = MeterProvider(metric_readers=[reader])
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
            p = TracerProvider(shutdown_on_exit=False, sampler=sampling.ALWAYS_ON, meter_provider=meters)
            tracer = p.get_tracer("t")  # reads the variable
        p.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        make_span(tracer)
        data = reader.get_metrics_data()
        return sorted((m.name, tuple(sorted(pt.attributes.items())), pt.value)
                      for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                      for pt in m.data.data_points)

    def sdk(t):
        t.start_span("a").end()
        t.start_span("b")

    def fast(t):
        spans = LiveSpans(t)
        spans.start("a").end()
        spans.start("b")

    assert span_counts(fast) == span_counts(sdk) != []


def test_other_processors_and_tracers_get_the_sdk_path():
    from opentelemetry.sdk.trace import ConcurrentMultiSpanProcessor

    provider = TracerProvider(active_span_processor=ConcurrentMultiSpanProcessor(), shutdown_on_exit=False)
    assert not LiveSpans(provider.get_tracer("t")).fast()
    assert not LiveSpans(trace.NoOpTracer()).fast()
    assert not LiveSpans(trace.NoOpTracer()).start("x").is_recording()


@pytest.mark.parametrize("max_links", [0, 1, 2, None])
def test_link_limits_equal_the_sdk(max_links):
    remote = [SpanContext(0xA0 + n, 0xB0 + n, True, TraceFlags(1)) for n in range(3)]
    case = {
        "name": "linked", "kind": SpanKind.SERVER, "sampler": "always_on", "random_ids": False, "attributes": None,
        "limits": {"max_links": SpanLimits.UNSET if max_links is None else max_links, "max_link_attributes": 1},
        "parent": ("none", None), "start": None, "end": None, "after_end": [("add_link", remote[0], None)],
        "ops": [("add_link", ctx, {"n": n, "m": "x"}) for n, ctx in enumerate(remote)],
    }
    (_, sdk_spans), (_, fast_spans) = twin_run(case)
    assert exported(fast_spans[0]) == exported(sdk_spans[0])
    assert fast_spans[0].dropped_links == (3 - max_links if max_links is not None else 0)
    assert otlp(list(fast_spans)) == otlp(list(sdk_spans))
