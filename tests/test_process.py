"""Process metrics: the same instruments, attributes and values as the upstream system-metrics
instrumentation configured for the seven metrics otel-perf ships, without its start-up cost."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading

import pytest
from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_perf._internal.integrations import process

UPSTREAM_CONFIG = {
    "process.cpu.time": ["user", "system"],
    "process.memory.usage": None,
    "process.memory.virtual": None,
    "process.thread.count": None,
    "process.open_file_descriptor.count": None,
    "process.context_switches": ["involuntary", "voluntary"],
    "cpython.gc.collections": None,
}
# Values that cannot move between the two reads (counters of this quiet test process may: compared loosely).
EXACT = {"process.memory.virtual", "process.thread.count", "process.open_file_descriptor.count", "cpython.gc.collections"}


class _Telemetry:
    def __init__(self, meter_provider):
        self.meter_provider = meter_provider


def metrics(reader: InMemoryMetricReader) -> dict:
    out = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                points = {tuple(sorted(p.attributes.items())): p.value for p in m.data.data_points}
                out[m.name] = (sm.scope.name, m.unit, m.description, type(m.data).__name__,
                               getattr(m.data, "is_monotonic", None), points)
    return out


def test_same_instruments_attributes_and_values_as_upstream():
    ours_reader, theirs_reader = InMemoryMetricReader(), InMemoryMetricReader()
    process.install(_Telemetry(MeterProvider(metric_readers=[ours_reader])))
    instrumentor = SystemMetricsInstrumentor(config=UPSTREAM_CONFIG)
    instrumentor.instrument(meter_provider=MeterProvider(metric_readers=[theirs_reader]))
    worker = threading.Thread(target=threading.Event().wait, args=(5,), daemon=True)  # a second OS thread
    worker.start()
    gc.collect()
    gc.disable()  # a collection between the two reads would move cpython.gc.collections
    try:
        ours, theirs = metrics(ours_reader), metrics(theirs_reader)
    finally:
        gc.enable()
        instrumentor.uninstrument()
    assert set(theirs) == set(UPSTREAM_CONFIG)
    assert set(ours) == set(theirs) | {"otel_perf.process.cpu.limit", "otel_perf.process.memory.limit"}
    for name, (scope, unit, description, kind, monotonic, points) in theirs.items():
        o_scope, o_unit, o_description, o_kind, o_monotonic, o_points = ours[name]
        assert (o_scope, o_unit, o_description, o_kind, o_monotonic) == (scope, unit, description, kind, monotonic)
        assert set(o_points) == set(points), name
        for attributes, value in points.items():
            if name in EXACT:
                assert o_points[attributes] == value, (name, attributes)
            else:  # read a moment apart: the same magnitude
                assert o_points[attributes] == pytest.approx(value, rel=0.2, abs=2 * 1024 * 1024), (name, attributes)
    assert ours["process.thread.count"][5][()] >= 2


def test_run_does_not_import_the_upstream_system_metrics_instrumentation():
    program = ("import sys; import otel_perf._internal.sdk.providers as p; assert p.current() is not None; "
               "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.instrumentation.system_metrics')))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_PERF_SUMMARY="false", PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{env.get('PATH', '')}")
    script = os.path.join(os.path.dirname(sys.executable), "otel-perf")
    result = subprocess.run([script, "run", "python", "-c", program], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
