"""Process and runtime metrics (semantic conventions) plus the limits the CPU/memory SLA uses."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from otel_perf._internal import catalogue

# The process metrics the dashboards and alerts use; the stock default set has dozens more.
_CONFIG = {
    "process.cpu.time": ["user", "system"],
    "process.memory.usage": None,
    "process.memory.virtual": None,
    "process.thread.count": None,
    "process.open_file_descriptor.count": None,
    "process.context_switches": ["involuntary", "voluntary"],
    "cpython.gc.collections": None,
}

_instrumentor: Any = None


def install(telemetry: Any) -> None:
    global _instrumentor
    from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor

    if _instrumentor is not None:
        _instrumentor.uninstrument()
    _instrumentor = SystemMetricsInstrumentor(config=_CONFIG)
    _instrumentor.instrument(meter_provider=telemetry.meter_provider)
    meter = telemetry.meter_provider.get_meter("otel_perf.runtime")
    for metric, read in ((catalogue.PROCESS_CPU_LIMIT, cpu_limit), (catalogue.PROCESS_MEMORY_LIMIT, memory_limit)):
        meter.create_observable_up_down_counter(
            metric.name, callbacks=[_observe(read)], unit=metric.unit, description=metric.description
        )


def uninstall() -> None:
    global _instrumentor
    if _instrumentor is not None:
        _instrumentor.uninstrument()
        _instrumentor = None


def _observe(read):
    def callback(options: CallbackOptions) -> list[Observation]:
        value = read()
        return [Observation(value)] if value else []

    return callback


def cpu_limit() -> float:
    """CPU cores this process may use: the cgroup v2 quota, else the CPUs it is allowed to run on."""
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as fh:
            quota, period = fh.read().split()
        if quota != "max":
            return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        return float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return float(os.cpu_count() or 1)


def memory_limit() -> int:
    """Bytes this process may use: the cgroup v2/v1 limit, else physical memory."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as fh:
                raw = fh.read().strip()
            if raw != "max" and int(raw) < 1 << 60:
                return int(raw)
        except (OSError, ValueError):
            continue
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0
