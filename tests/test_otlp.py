"""The fast span encoder must produce exactly the message the upstream encoder produces."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
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

from otel_perf._internal.sdk import fast_otlp as otlp


def make_spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "enc", "deployment": "t"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("a", "1.0", schema_url="https://opentelemetry.io/schemas/1.30.0")
    other = provider.get_tracer("b")
    remote = set_span_in_context(NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=True,
                                                              trace_flags=TraceFlags(1))))
    with tracer.start_as_current_span("GET /items/{id}", kind=SpanKind.SERVER, context=remote,
                                      attributes={"http.route": "/items/{id}", "http.response.status_code": 200,
                                                  "ok": True, "ratio": 0.25, "neg": -5, "ünï": "cödé"}):
        with other.start_as_current_span("SELECT patients", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "boom"))
            child.set_attribute("db.query.summary", "SELECT patients")
    with tracer.start_as_current_span("events") as span:
        span.add_event("slow_query", {"threshold": 0.1})
    with tracer.start_as_current_span("arrays", attributes={"tags": ["a", "b"]}):
        pass
    state = set_span_in_context(NonRecordingSpan(SpanContext(1, 2, is_remote=True, trace_flags=TraceFlags(1),
                                                             trace_state=TraceState([("k", "v")]))))
    with tracer.start_as_current_span("stateful", context=state):
        pass
    with tracer.start_as_current_span("ok") as span:
        span.set_status(Status(StatusCode.OK))
    return exporter.get_finished_spans()


def test_fast_encoding_parses_to_the_upstream_message():
    spans = make_spans()
    ours, theirs = ExportTraceServiceRequest(), encode_spans(spans)
    ours.ParseFromString(otlp.encode(spans))
    assert ours == theirs
    assert len(ours.resource_spans[0].scope_spans) == 2


def test_cached_attributes_stay_correct_across_batches():
    spans = make_spans()
    first, second = ExportTraceServiceRequest(), ExportTraceServiceRequest()
    first.ParseFromString(otlp.encode(spans))
    second.ParseFromString(otlp.encode(spans))
    assert first == second == encode_spans(spans)


# -- property: any batch of spans, from the SDK or from LiveSpans, encodes as upstream does ------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from opentelemetry.sdk.trace import SpanLimits  # noqa: E402

from otel_perf._internal.sdk.spans import LiveSpans  # noqa: E402

_VALUES = st.one_of(
    st.text(max_size=10), st.text(min_size=100, max_size=300), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False), st.booleans(), st.lists(st.text(max_size=5), max_size=3),
    st.sampled_from(["/items/{id}", "GET", "http", "ünï/cödé", ""]),
)
_SPANS = st.lists(st.fixed_dictionaries({
    "live": st.booleans(),
    "tracer": st.sampled_from(["a", "b"]),
    "name": st.one_of(st.text(max_size=20), st.text(min_size=130, max_size=200)),
    "kind": st.sampled_from(list(SpanKind)),
    "attributes": st.dictionaries(st.sampled_from(["http.route", "url.path", "k", "ünï", "x" * 70]), _VALUES,
                                  max_size=5),
    "status": st.sampled_from([None, (StatusCode.OK, None), (StatusCode.ERROR, None), (StatusCode.ERROR, "boom")]),
    "parent": st.sampled_from([None, "remote", "local", "state"]),
    "event": st.booleans(),
}), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_SPANS, st.sampled_from([None, 0, 2]))
def test_any_span_batch_encodes_as_upstream(specs, max_events):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "enc"}), shutdown_on_exit=False,
                              span_limits=SpanLimits(max_events=max_events, max_span_attributes=4))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracers = {name: provider.get_tracer(name, "1.0") for name in ("a", "b")}
    live = {name: LiveSpans(tracer) for name, tracer in tracers.items()}
    parents = {
        "remote": set_span_in_context(NonRecordingSpan(SpanContext(0xABC, 0xDEF, True, TraceFlags(1)))),
        "local": set_span_in_context(NonRecordingSpan(SpanContext(0xABC, 0xDE0, False, TraceFlags(1)))),
        "state": set_span_in_context(NonRecordingSpan(SpanContext(0xABC, 0xDE1, True, TraceFlags(1),
                                                                  TraceState([("k", "v")])))),
    }
    for spec in specs:
        start = live[spec["tracer"]].start if spec["live"] else tracers[spec["tracer"]].start_span
        span = start(spec["name"], parents.get(spec["parent"]), spec["kind"], spec["attributes"])
        if spec["status"]:
            span.set_status(Status(*spec["status"]))
        if spec["event"]:
            span.add_event("e", {"n": 1})
        span.end()
    spans = exporter.get_finished_spans()
    theirs = encode_spans(spans)
    ours = ExportTraceServiceRequest()
    ours.ParseFromString(otlp.encode(spans))
    assert ours == theirs
    assert otlp.encode(spans) == theirs.SerializeToString()
