"""Deferred histograms: the points the SDK would have produced, collection work per series.

Every comparison is against the SDK's own explicit-bucket histogram fed the same values."""

from __future__ import annotations

import math
import os
import threading

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

from otel_perf._internal.catalogue import HTTP_SERVER_DURATION
from otel_perf._internal.config.sla import DEFAULT
from otel_perf._internal.sdk import deferred

NAME = HTTP_SERVER_DURATION.name
BOUNDS = DEFAULT.http_buckets
DELTA = {Histogram: AggregationTemporality.DELTA}


def pair(views=(), temporality=None):
    """A DeferredHistogram and a plain SDK histogram, each with its own reader."""
    ours_reader = InMemoryMetricReader(preferred_temporality=temporality)
    sdk_reader = InMemoryMetricReader(preferred_temporality=temporality)
    ours = deferred.DeferredHistogram(
        MeterProvider(metric_readers=[ours_reader], views=list(views)).get_meter("t"), HTTP_SERVER_DURATION, BOUNDS)
    sdk = MeterProvider(metric_readers=[sdk_reader], views=list(views)).get_meter("t").create_histogram(
        NAME, unit=HTTP_SERVER_DURATION.unit, explicit_bucket_boundaries_advisory=list(BOUNDS))
    return ours, ours_reader, sdk, sdk_reader


def points(reader):
    data = reader.get_metrics_data()
    found = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == NAME:
                    for p in m.data.data_points:
                        found[tuple(sorted(p.attributes.items()))] = (
                            p.count, p.sum, p.min, p.max, tuple(p.bucket_counts), tuple(p.explicit_bounds))
    return found


# A handful of series, as the middleware makes them (one shared dict per attribute set).
SERIES = [{"http.request.method": m, "http.route": r, "http.response.status_code": s}
          for m in ("GET", "POST") for r in ("/a", "/b/{id}") for s in (200, 404)]
values = st.one_of(
    st.sampled_from(BOUNDS),  # exactly on a boundary: bucket (lower, upper] as the SDK counts it
    st.floats(min_value=0, max_value=30, allow_nan=False, allow_infinity=False),
)
recordings = st.lists(st.tuples(st.integers(0, len(SERIES) - 1), values), max_size=300)


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(recordings, min_size=1, max_size=3), delta=st.booleans())
def test_points_equal_the_sdk_histogram_over_many_collections(batches, delta):
    ours, ours_reader, sdk, sdk_reader = pair(temporality=DELTA if delta else None)
    for batch in batches:
        for series, value in batch:
            ours.record(value, SERIES[series])
            sdk.record(value, SERIES[series])
        assert points(ours_reader) == points(sdk_reader)


@settings(max_examples=40, deadline=None)
@given(batch=recordings)
def test_views_still_apply(batch):
    views = [View(instrument_name=NAME, name="renamed", attribute_keys={"http.route"})]
    ours, ours_reader, sdk, sdk_reader = pair(views)
    for series, value in batch:
        ours.record(value, SERIES[series])
        sdk.record(value, SERIES[series])
    assert not ours.direct
    got, want = _named(ours_reader, "renamed"), _named(sdk_reader, "renamed")
    # A View that merges several of our series adds their sums in another order: equal up to
    # floating-point rounding; everything else is exact.
    assert [(a, c, mn, mx, b) for a, c, _, mn, mx, b in got] == [(a, c, mn, mx, b) for a, c, _, mn, mx, b in want]
    assert all(math.isclose(g[2], w[2], rel_tol=1e-12, abs_tol=1e-12) for g, w in zip(got, want, strict=True))


def test_a_view_with_other_buckets_gets_every_value():
    views = [View(instrument_name=NAME, aggregation=ExplicitBucketHistogramAggregation((0.5, 1.0)))]
    ours, ours_reader, sdk, sdk_reader = pair(views)
    for value in (0.1, 0.7, 3.0):
        ours.record(value, SERIES[0])
        sdk.record(value, SERIES[0])
    assert ours.direct  # pre-aggregation off: our buckets are not the View's
    assert points(ours_reader) == points(sdk_reader)


def _named(reader, name):
    data = reader.get_metrics_data()
    if data is None:
        return []
    return sorted((tuple(sorted(p.attributes.items())), p.count, p.sum, p.min, p.max, tuple(p.bucket_counts))
                  for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                  if m.name == name for p in m.data.data_points)


def test_values_from_many_threads_all_counted():
    ours, ours_reader, _, _ = pair()
    fast, slow = SERIES[0], SERIES[1]

    def work():
        for i in range(2000):
            ours.record(0.05, fast)
            if i % 10 == 0:
                ours.record(0.3, slow)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = {dict(k)["http.response.status_code"]: v[0] for k, v in points(ours_reader).items()}
    assert counts == {200: 8000, 404: 800}
    assert ours.pending == 0


def test_collection_work_does_not_grow_with_traffic():
    """The SDK is handed one merge per series, however many values were recorded."""
    ours, ours_reader, _, _ = pair()
    calls = []
    original = ours.histogram.record
    ours.histogram.record = lambda *a, **k: (calls.append(1), original(*a, **k))
    for i in range(50_000):
        ours.record((i % 100) / 100, SERIES[i % 3])
    merges = []
    real_merge = deferred._merge
    deferred._merge = lambda *a: (merges.append(1), real_merge(*a))
    try:
        total = sum(v[0] for v in points(ours_reader).values())
    finally:
        deferred._merge = real_merge
    assert calls == []  # nothing recorded value by value
    assert len(merges) == 3
    assert total == 50_000


def test_series_are_bounded(monkeypatch):
    monkeypatch.setattr(deferred, "MAX_SERIES", 10)
    ours, ours_reader, sdk, sdk_reader = pair()
    many = [{"http.route": f"/r{i}"} for i in range(50)]
    for attrs in many * 3:
        ours.record(0.01, attrs)
        sdk.record(0.01, attrs)
    assert len(ours.series) == 10  # the rest went straight to the SDK
    assert points(ours_reader) == points(sdk_reader)


def test_exemplars_kept_for_values_recorded_with_a_context():
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    ours, ours_reader, _, _ = pair()
    with TracerProvider().get_tracer("t").start_as_current_span("slow request") as span:
        from opentelemetry import context

        ours.record(2.5, SERIES[0], context.get_current())
    ours.record(0.01, SERIES[0])
    data = ours_reader.get_metrics_data()
    (point,) = [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                if m.name == NAME for p in m.data.data_points]
    assert point.count == 2
    assert [e.span_id for e in point.exemplars] == [span.get_span_context().span_id]
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_shutdown_hands_over_every_value_in_time(otlp_http):
    """The exit flush exports everything counted, within its bound, however many values."""
    from otel_perf._internal import lifecycle
    from otel_perf._internal.config.settings import Settings
    from otel_perf._internal.sdk import providers

    settings = Settings.resolve({"endpoint": otlp_http.endpoint, "metric_export_interval": 600_000,
                                 "traces_exporter": "none", "logs_exporter": "none"}, environ={})
    telemetry = providers.start(settings)
    try:
        histogram = deferred.DeferredHistogram(telemetry.meter_provider.get_meter("t"), HTTP_SERVER_DURATION, BOUNDS)
        attrs = {"http.route": "/exit"}
        for i in range(300_000):
            histogram.record((i % 1000) / 1000, attrs)
    finally:
        providers._current = telemetry
        lifecycle.shutdown(timeout=1.5)
    counts = [p.count for _, p in otlp_http.points(NAME)]
    assert counts == [300_000]


def test_forked_child_forgets_the_parents_counts():
    ours, _, _, _ = pair()
    ours.record(0.05, SERIES[0])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, str(ours.pending).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(r, 16) == b"0"
    assert ours.pending == 1


def test_local_mode_keeps_nothing():
    histogram = deferred.DeferredHistogram(MeterProvider().get_meter("t"), HTTP_SERVER_DURATION, BOUNDS)
    for _ in range(1000):
        histogram.record(0.1, SERIES[0])
    assert histogram.pending == 0 and histogram.idle
