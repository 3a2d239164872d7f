"""Spans born finished (sdk/finished_spans) are the spans the SDK's start_span + end would build.

Every comparison runs both paths from the same random state (so the same ids) under the same
current context, sampler and span limits, over generated cases: the sampler decision and trace
state against ``should_sample``, then the finished span field by field and its OTLP bytes against
the SDK's span and the upstream encoder.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    AlwaysRecordSampler,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from otel_perf._internal.sdk import fast_otlp
from otel_perf._internal.sdk.finished_spans import FinishedSpan, FinishedSpans, current_parent, decider

# -- strategies ----------------------------------------------------------------------------------

leaf_samplers = st.one_of(
    st.sampled_from([ALWAYS_ON, ALWAYS_OFF, StaticSampler(Decision.RECORD_ONLY)]),
    st.sampled_from([0.0, 1.0, 0.5]).map(TraceIdRatioBased),
    st.floats(0, 1).map(TraceIdRatioBased),
)
samplers = st.recursive(
    leaf_samplers,
    lambda inner: st.one_of(st.builds(ParentBased, inner, inner, inner, inner, inner),
                            st.builds(ParentBased, inner), st.builds(AlwaysRecordSampler, inner)),
    max_leaves=5,
)
trace_states = st.sampled_from([None, TraceState(), TraceState([("k", "v")]), TraceState([("a", "1"), ("vendor@x", "y")])])
trace_ids = st.one_of(st.integers(1, (1 << 128) - 1), st.integers(1, 1 << 64), st.sampled_from([1, (1 << 128) - 1]))
parents = st.one_of(
    st.none(),
    st.builds(SpanContext, trace_ids, st.integers(1, (1 << 64) - 1), st.booleans(),
              st.integers(0, 255).map(TraceFlags), trace_states),
    st.builds(SpanContext, st.just(0), st.integers(1, 5), st.booleans(), st.just(TraceFlags(1))),  # invalid
)
scalars = st.one_of(st.text(max_size=20), st.booleans(), st.integers(-(1 << 63), (1 << 63) - 1),
                    st.floats(allow_nan=False), st.integers(-(1 << 70), 1 << 70))
attribute_values = st.one_of(
    scalars, st.lists(st.text(max_size=5), max_size=3), st.lists(st.integers(-5, 5), max_size=3),
    st.lists(st.booleans(), max_size=2), st.lists(st.floats(allow_nan=False), max_size=2),
    st.lists(st.one_of(st.none(), st.text(max_size=3)), max_size=3),  # None inside a sequence is kept
    st.just(None), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),  # both dropped by the SDK
    st.tuples(st.integers(), st.text()),  # mixed types: dropped by the SDK too
)
attribute_sets = st.dictionaries(st.text(max_size=12), attribute_values, max_size=8)
limits = st.builds(SpanLimits, max_span_attributes=st.sampled_from([None, 0, 1, 3, 128]),
                   max_span_attribute_length=st.sampled_from([None, 0, 2, 10]),
                   max_events=st.sampled_from([None, 0, 1, 5]),
                   max_event_attributes=st.sampled_from([None, 0, 1, 5]),
                   max_attribute_length=st.sampled_from([None, 1, 8]))
events = st.lists(st.builds(lambda n, a, t: Event(n, a, t), st.text(max_size=10), attribute_sets,
                            st.integers(1, 1 << 62)), max_size=4)
statuses = st.one_of(st.just(Status(StatusCode.UNSET)), st.just(Status(StatusCode.OK)),
                     st.builds(Status, st.just(StatusCode.ERROR), st.one_of(st.none(), st.text(max_size=10))))
times = st.tuples(st.integers(1, 1 << 62), st.integers(0, 1 << 40))
RESOURCE = Resource.create({"service.name": "finished", "deployment.environment.name": "test"})


class Capture(SpanProcessor):
    def __init__(self):
        self.spans = []

    def on_end(self, span):
        self.spans.append(span)


def provider(sampler, span_limits=None):
    capture = Capture()
    tp = TracerProvider(sampler=sampler, resource=RESOURCE, span_limits=span_limits, shutdown_on_exit=False)
    tp.add_span_processor(capture)
    return tp.get_tracer("otel_perf.db", "1.2.3", schema_url="https://opentelemetry.io/schemas/1.30.0"), capture


def under(parent):
    """Attach ``parent`` as the current span (None: an empty context); returns the token."""
    ctx = set_span_in_context(NonRecordingSpan(parent)) if parent is not None else Context()
    return otel_context.attach(ctx)


def fields(span):
    return {
        "name": span.name, "context": span.context, "trace_state": dict(span.context.trace_state),
        "parent": span.parent, "resource": span.resource, "attributes": dict(span.attributes),
        "dropped_attributes": span.dropped_attributes,
        "events": [(e.name, dict(e.attributes or {}), e.timestamp, e.dropped_attributes) for e in span.events],
        "dropped_events": span.dropped_events, "links": list(span.links), "dropped_links": span.dropped_links,
        "kind": span.kind, "status": (span.status.status_code, span.status.description),
        "start": span.start_time, "end": span.end_time, "scope": span.instrumentation_scope,
        "info": span._instrumentation_info, "json": span.to_json(),  # noqa: SLF001
    }


def sdk_span(tracer, name, attributes, start, end, span_events=(), status=None):
    span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes, start_time=start)
    for event in span_events:
        span.add_event(event.name, event.attributes, event.timestamp)
    if status is not None and status.status_code is not StatusCode.UNSET:
        span.set_status(status)
    span.end(end_time=end)


def assert_same_spans(ours, theirs):
    assert [fields(s) for s in ours] == [fields(s) for s in theirs]
    expected = encode_spans(theirs).SerializeToString()
    assert fast_otlp.encode(ours) == expected
    assert fast_otlp.encode(ours) == expected  # again, from the prepared template encodings
    assert fast_otlp.encode(theirs) == expected


# -- the sampler's decision ----------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(samplers, parents, trace_ids)
def test_decisions_are_the_samplers(sampler, parent, trace_id):
    decide = decider(sampler)
    assert decide is not None
    ctx = set_span_in_context(NonRecordingSpan(parent)) if parent is not None else None
    expected = sampler.should_sample(ctx, trace_id, "SELECT", SpanKind.CLIENT, {"a": 1})
    token = under(parent)
    try:
        valid_parent = current_parent()
    finally:
        otel_context.detach(token)
    assert valid_parent == (parent if parent is not None and parent.is_valid else None)
    decision, kept = decide(valid_parent, trace_id)
    assert decision is expected.decision
    assert kept == bool(expected.attributes)  # a DROP turned into RECORD_ONLY keeps no attributes
    assert expected.trace_state == (parent.trace_state if valid_parent is not None else None)


class Custom(Sampler):
    """A sampler of its own: called as the SDK calls it; its attributes become the span's."""

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
        if trace_id % 3 == 0:
            return SamplingResult(Decision.DROP)
        decision = Decision.RECORD_AND_SAMPLE if trace_id % 3 == 1 else Decision.RECORD_ONLY
        return SamplingResult(decision, {"sampled.by": "custom", "seen": len(attributes or {})},
                              TraceState([("custom", str(trace_id % 7))]))

    def get_description(self):
        return "Custom"


def test_unknown_samplers_are_called():
    assert decider(Custom()) is None
    assert decider(ParentBased(Custom())) is None


# -- the spans -----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.one_of(samplers, st.just(Custom())), st.one_of(st.none(), limits), parents, st.text(max_size=15),
       attribute_sets, st.lists(times, min_size=1, max_size=4), st.integers(0, 1 << 30))
def test_template_spans_are_the_sdks(sampler, span_limits, parent, name, attributes, when, seed):
    ours_tracer, ours = provider(sampler, span_limits)
    sdk_tracer, theirs = provider(sampler, span_limits)
    spans = FinishedSpans(ours_tracer)
    template = spans.template(name, attributes)
    token = under(parent)
    try:  # one random state for the whole sequence: dropped spans draw their ids too
        random.seed(seed)
        for start, duration in when:
            sdk_span(sdk_tracer, name, attributes, start, start + duration)
        random.seed(seed)
        for start, duration in when:
            context = spans.emit(template, start, start + duration)
            assert (context is not None) == (bool(ours.spans) and ours.spans[-1].context == context)
    finally:
        otel_context.detach(token)
    assert len(ours.spans) == len(theirs.spans)
    assert_same_spans(ours.spans, theirs.spans)


@settings(max_examples=300, deadline=None)
@given(samplers, st.one_of(st.none(), limits), parents, st.text(max_size=15), attribute_sets, times, events, statuses,
       st.booleans(), st.integers(0, 1 << 30))
def test_spans_with_events_and_status_are_the_sdks(sampler, span_limits, parent, name, attributes, when, span_events,
                                                    status, force, seed):
    """``emit_span`` (slow and failed statements); ``force_sample`` keeps the span whatever the
    sampler says, as the SDK would with ALWAYS_ON (the parent's trace state, sampled)."""
    ours_tracer, ours = provider(sampler, span_limits)
    sdk_tracer, theirs = provider(ALWAYS_ON if force else sampler, span_limits)
    start, duration = when
    token = under(parent)
    try:
        random.seed(seed)
        sdk_span(sdk_tracer, name, attributes, start, start + duration, span_events, status)
        random.seed(seed)
        context = FinishedSpans(ours_tracer).emit_span(name, attributes, start, start + duration, span_events,
                                                       status, force_sample=force)
    finally:
        otel_context.detach(token)
    assert (context is not None) == bool(ours.spans)
    assert_same_spans(ours.spans, theirs.spans)


def test_the_default_samplers_take_the_template_path():
    for sampler in (ParentBased(ALWAYS_ON), ALWAYS_ON, ParentBased(TraceIdRatioBased(1.0))):
        tracer, captured = provider(sampler)
        spans = FinishedSpans(tracer)
        assert spans.emit(spans.template("SELECT", {"db.system.name": "postgresql"}), 1, 2) is not None
        (span,) = captured.spans
        assert type(span) is FinishedSpan


def test_a_disabled_tracer_records_nothing():
    tracer, captured = provider(ALWAYS_ON)
    spans = FinishedSpans(tracer)
    tracer._tracer_config.is_enabled = False  # noqa: SLF001 - what the tracer configurator sets
    try:
        assert spans.emit(spans.template("x", {}), 1, 2) is None
        assert spans.emit_span("x", {}, 1, 2) is None
    finally:
        tracer._tracer_config.is_enabled = True  # noqa: SLF001
    assert captured.spans == []


def test_processors_get_what_the_sdk_gives_them():
    """A BatchSpanProcessor gets the sampled spans, any other processor every recorded span, and
    a processor added later is called from then on."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    sampler = ParentBased(ALWAYS_ON, local_parent_not_sampled=StaticSampler(Decision.RECORD_ONLY))
    tracer, first = provider(sampler)
    exported = InMemorySpanExporter()
    tracer.span_processor.add_span_processor(BatchSpanProcessor(exported))
    spans = FinishedSpans(tracer)
    template = spans.template("SELECT", {"db.system.name": "postgresql"})
    unsampled = SpanContext(5, 6, False, TraceFlags(0))
    assert spans.emit(template, 1, 2) is not None
    token = under(unsampled)
    try:
        assert spans.emit(template, 3, 4) is not None  # recorded, not sampled
    finally:
        otel_context.detach(token)
    later = Capture()
    tracer.span_processor.add_span_processor(later)
    assert spans.emit(template, 5, 6) is not None
    tracer.span_processor.force_flush()
    assert [s.start_time for s in first.spans] == [1, 3, 5]
    assert [s.start_time for s in exported.get_finished_spans()] == [1, 5]
    assert [s.start_time for s in later.spans] == [5]


def test_a_tracer_that_is_not_the_sdks_gets_the_api():
    """No sampler or processors to reach: start_span + end, as any instrumentation would."""
    from opentelemetry.trace import NoOpTracer

    spans = FinishedSpans(NoOpTracer())
    assert not spans.fast
    assert spans.emit(spans.template("SELECT", {"a": 1}), 1, 2) is None
    assert spans.emit_span("SELECT", {"a": 1}, 1, 2, [Event("e", {"b": 2}, 2)], Status(StatusCode.ERROR, "x"),
                           force_sample=True) is None
