"""Deferred histograms: every queued value reaches the export, memory stays bounded."""

from __future__ import annotations

import os
import threading

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_perf._internal.catalogue import HTTP_SERVER_DURATION
from otel_perf._internal.sdk import deferred


def setup():
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    return reader, deferred.DeferredHistogram(meter, HTTP_SERVER_DURATION, (0.1, 0.2))


def points(reader):
    data = reader.get_metrics_data()
    return [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
            if m.name == HTTP_SERVER_DURATION.name for p in m.data.data_points]


def test_queued_values_land_in_the_next_collection_from_many_threads():
    reader, histogram = setup()
    fast, slow = {"route": "/a"}, {"route": "/b"}

    def work():
        for i in range(2000):
            histogram.record(0.05, fast)
            if i % 10 == 0:
                histogram.record(0.3, slow)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = {p.attributes["route"]: (p.count, list(p.bucket_counts)) for p in points(reader)}
    assert counts == {"/a": (8000, [8000, 0, 0]), "/b": (800, [0, 0, 800])}
    assert histogram.queued == 0


def test_queue_is_bounded(monkeypatch):
    monkeypatch.setattr(deferred, "QUEUE_LIMIT", 100)
    reader, histogram = setup()
    attrs = {"route": "/a"}
    for _ in range(1000):
        histogram.record(0.05, attrs)
    assert histogram.queued == 100  # the rest went straight to the SDK
    (point,) = points(reader)
    assert point.count == 1000


def test_forked_child_forgets_the_parents_queue():
    reader, histogram = setup()
    histogram.record(0.05, {"route": "/a"})
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, str(histogram.queued).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(r, 16) == b"0"
    assert histogram.queued == 1
