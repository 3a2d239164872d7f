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
