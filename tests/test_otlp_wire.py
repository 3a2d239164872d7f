"""The protobuf-free OTLP path: the same bytes as the upstream encoders over generated data, the
same configuration as the upstream OTLP/HTTP exporters."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._internal import (
    _encode_attributes,
    _encode_instrumentation_scope,
    _encode_resource,
)
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.metrics import Observation
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PB2Resource
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_perf._internal.sdk import otlp_wire
from otel_perf._internal.sdk.lazy import otlp_preferences

INT64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
PRIMITIVE = st.one_of(st.text(max_size=12), st.booleans(), INT64, st.floats(allow_nan=False, width=64),
                      st.binary(max_size=8))
VALUE = st.one_of(PRIMITIVE, st.none(), st.lists(PRIMITIVE, max_size=4),
                  st.dictionaries(st.text(max_size=5), PRIMITIVE, max_size=3),
                  st.integers(min_value=1 << 63, max_value=1 << 70))  # out of range: left out, as upstream
ATTRIBUTES = st.dictionaries(st.text(max_size=10), VALUE, max_size=6)


@settings(max_examples=300, deadline=None)
@given(ATTRIBUTES)
def test_attributes_and_resources_are_the_upstream_bytes(attributes):
    theirs = PB2Resource(attributes=_encode_attributes(attributes)).SerializeToString()
    assert otlp_wire.attributes(1, attributes) == theirs
    resource = Resource(attributes)  # (which drops what the SDK does not accept)
    assert otlp_wire.resource(resource) == _encode_resource(resource).SerializeToString()


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=8), st.one_of(st.none(), st.text(max_size=5)), st.dictionaries(st.text(max_size=5), PRIMITIVE, max_size=3))
def test_scopes_are_the_upstream_bytes(name, version, attributes):
    scope = InstrumentationScope(name, version, None, attributes)
    assert otlp_wire.scope(scope) == _encode_instrumentation_scope(scope).SerializeToString()
    assert otlp_wire.scope(None) == _encode_instrumentation_scope(None).SerializeToString()


SMALL_ATTRIBUTES = st.dictionaries(st.sampled_from(["route", "method", "code", "ok", "ratio"]),
                                   st.one_of(st.sampled_from(["/a", "/b/{id}", "GET"]), st.integers(-3, 600),
                                             st.booleans(), st.floats(-5, 5, allow_nan=False)), max_size=3)
RECORDS = st.lists(st.tuples(st.sampled_from(["counter", "updown", "histogram", "exponential", "gauge"]),
                             st.one_of(st.integers(0, 10_000), st.floats(0, 1e6, allow_nan=False)),
                             SMALL_ATTRIBUTES, st.booleans()), max_size=40)


INSTRUMENT_CLASSES = (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter, ObservableGauge)


def _metrics_data(records, temporality, observed):
    reader = InMemoryMetricReader(preferred_temporality={kind: temporality for kind in INSTRUMENT_CLASSES})
    provider = MeterProvider(
        resource=Resource({"service.name": "wire", "n": 1}, schema_url="https://opentelemetry.io/schemas/1.30.0"),
        metric_readers=[reader], views=[View(instrument_name="exp", aggregation=ExponentialBucketHistogramAggregation()),
                                        View(instrument_name="*")],
        shutdown_on_exit=False,
    )
    tracer = TracerProvider().get_tracer("t")
    meter = provider.get_meter("wire.scope", "1.2", schema_url="https://x/s", attributes={"scope.attr": "v"})
    other = provider.get_meter("other")
    instruments = {
        "counter": meter.create_counter("requests", unit="1", description="all requests"),
        "updown": other.create_up_down_counter("active"),
        "histogram": meter.create_histogram("duration", unit="s", explicit_bucket_boundaries_advisory=[0.1, 1, 10]),
        "exponential": meter.create_histogram("exp"),
        "gauge": other.create_gauge("temperature"),
    }
    meter.create_observable_gauge("observed", callbacks=[lambda options: [Observation(v, a) for v, a in observed]])
    def record(kind, value, attributes):
        instrument = instruments[kind]
        if kind == "gauge":
            instrument.set(value, attributes)
        elif kind in ("histogram", "exponential"):
            instrument.record(value, attributes)
        else:
            instrument.add(-value if kind == "updown" and isinstance(value, float) else value, attributes)

    for kind, value, attributes, sampled in records:
        if sampled:  # recorded inside a sampled span: an exemplar with a trace and span id
            with tracer.start_as_current_span("s"):
                record(kind, value, attributes)
        else:
            record(kind, value, attributes)
    data = reader.get_metrics_data()
    provider.shutdown()
    return data


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RECORDS, st.sampled_from([AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA]),
       st.lists(st.tuples(st.one_of(st.integers(-5, 5), st.floats(-1, 1, allow_nan=False)), SMALL_ATTRIBUTES), max_size=3))
def test_metrics_are_the_upstream_bytes(records, temporality, observed):
    data = _metrics_data(records, temporality, observed)
    if data is None:
        return
    assert otlp_wire.encode_metrics(data) == encode_metrics(data).SerializeToString()


def test_histogram_extremes_and_empty_metrics():
    data = _metrics_data([("histogram", 0.0, {}, False), ("histogram", 1e300, {"ok": True}, False),
                          ("exponential", 0, {}, False), ("exponential", 5e-5, {}, True)],
                         AggregationTemporality.CUMULATIVE, [(math.inf, {}), (-0.0, {"route": "/a"})])
    assert otlp_wire.encode_metrics(data) == encode_metrics(data).SerializeToString()


TEMPORALITY = ["", "cumulative", "DELTA", "lowmemory", " Delta ", "bogus"]
AGGREGATION = ["", "explicit_bucket_histogram", "base2_exponential_bucket_histogram", "bogus"]


@pytest.mark.parametrize("temporality", TEMPORALITY)
@pytest.mark.parametrize("aggregation", AGGREGATION)
def test_metric_preferences_are_the_otlp_exporters(monkeypatch, temporality, aggregation):
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    for name, value in (("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", temporality),
                        ("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", aggregation)):
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    theirs = OTLPMetricExporter()
    ours_temporality, ours_aggregation = otlp_preferences()
    assert ours_temporality == theirs._preferred_temporality
    assert {k: type(v) for k, v in ours_aggregation.items()} == {k: type(v) for k, v in theirs._preferred_aggregation.items()}


ENVIRONMENTS = [
    {},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/x",
     "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "https://m:2/y"},
    {"OTEL_EXPORTER_OTLP_HEADERS": "a=b,Api-Key=s%20e", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x=y",
     "OTEL_EXPORTER_OTLP_TIMEOUT": "3", "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "7.5",
     "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION": "deflate"},
    {"OTEL_EXPORTER_OTLP_TIMEOUT": "soon", "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"},
]


@pytest.mark.parametrize("environ", ENVIRONMENTS)
def test_exporter_configuration_is_the_upstream_exporters(monkeypatch, environ):
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from otel_perf._internal.sdk.fast_otlp import FastOTLPSpanExporter
    from otel_perf._internal.sdk.otlp_http import metric_exporter

    for name in [n for n in __import__("os").environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    for ours, theirs in ((FastOTLPSpanExporter(), OTLPSpanExporter()), (metric_exporter(), OTLPMetricExporter())):
        assert ours._endpoint == theirs._endpoint
        assert ours._compression == theirs._compression
        assert ours._max_request_size == theirs._max_request_size
        for attribute in ("_endpoint", "_timeout", "_compression", "_headers", "_kind"):
            if hasattr(theirs._client, attribute):
                assert getattr(ours._client, attribute) == getattr(theirs._client, attribute), attribute
        assert vars(ours._client).keys() == vars(theirs._client).keys()
