"""Process and runtime metrics (semantic conventions) plus the limits the CPU/memory SLA uses.

The same instruments, names and attributes as opentelemetry-instrumentation-system-metrics
configured for the seven the dashboards and alerts use, read straight from ``/proc/self`` and the
interpreter: that package (with psutil, wrapt and its instrumentor machinery) is half of a
program's start-up under ``otel-perf run``, for seven numbers.
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import threading
from collections.abc import Iterator
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from otel_perf._internal import catalogue

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_HAS_PROC = sys.platform.startswith("linux") and os.path.isdir("/proc/self")


def install(telemetry: Any) -> None:
    meter = telemetry.meter_provider.get_meter("opentelemetry.instrumentation.system_metrics")
    meter.create_observable_counter(
        "process.cpu.time", callbacks=[_cpu_time], unit="s",
        description="Total CPU seconds broken down by different states.",
    )
    meter.create_observable_counter(
        "process.context_switches", callbacks=[_context_switches],
        description="Number of times the process has been context switched.",
    )
    meter.create_observable_up_down_counter(
        "process.memory.usage", callbacks=[_memory(1)], unit="By", description="The amount of physical memory in use."
    )
    meter.create_observable_up_down_counter(
        "process.memory.virtual", callbacks=[_memory(0)], unit="By",
        description="The amount of committed virtual memory.",
    )
    meter.create_observable_up_down_counter(
        "process.open_file_descriptor.count", callbacks=[_open_fds],
        description="Number of file descriptors in use by the process.",
    )
    meter.create_observable_up_down_counter(
        "process.thread.count", callbacks=[_threads], description="Process threads count."
    )
    meter.create_observable_counter(
        "cpython.gc.collections", callbacks=[_gc_collections], unit="{collection}",
        description="The number of times a generation was collected since interpreter start.",
    )
    limits = telemetry.meter_provider.get_meter("otel_perf.runtime")
    for metric, read in ((catalogue.PROCESS_CPU_LIMIT, cpu_limit), (catalogue.PROCESS_MEMORY_LIMIT, memory_limit)):
        limits.create_observable_up_down_counter(
            metric.name, callbacks=[_observe(read)], unit=metric.unit, description=metric.description
        )


def uninstall() -> None:
    pass  # observable instruments live and die with their meter provider


def _cpu_time(options: CallbackOptions) -> Iterator[Observation]:
    times = os.times()
    yield Observation(times.user, {"type": "user"})
    yield Observation(times.system, {"type": "system"})


def _context_switches(options: CallbackOptions) -> Iterator[Observation]:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # the process's threads together, as /proc reports
    voluntary, involuntary = usage.ru_nvcsw, usage.ru_nivcsw
    status = _status()
    if status:
        voluntary = status.get("voluntary_ctxt_switches", voluntary)
        involuntary = status.get("nonvoluntary_ctxt_switches", involuntary)
    yield Observation(involuntary, {"type": "involuntary"})
    yield Observation(voluntary, {"type": "voluntary"})


def _memory(field: int):
    """``/proc/self/statm`` field 0 (virtual) or 1 (resident), in bytes."""

    def callback(options: CallbackOptions) -> Iterator[Observation]:
        if _HAS_PROC:
            with open("/proc/self/statm", "rb") as fh:
                yield Observation(int(fh.read().split()[field]) * _PAGE)
        elif field == 1:  # peak, not current, where there is no /proc: better than nothing
            scale = 1 if sys.platform == "darwin" else 1024
            yield Observation(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale)

    return callback


def _open_fds(options: CallbackOptions) -> Iterator[Observation]:
    for path in ("/proc/self/fd", "/dev/fd"):
        try:
            yield Observation(len(os.listdir(path)))
            return
        except OSError:
            continue


def _threads(options: CallbackOptions) -> Iterator[Observation]:
    status = _status()  # every OS thread, not only Python's
    yield Observation(status["Threads"] if status and "Threads" in status else threading.active_count())


def _gc_collections(options: CallbackOptions) -> Iterator[Observation]:
    for generation, stat in enumerate(gc.get_stats()):
        yield Observation(stat["collections"], {"cpython.gc.generation": generation,
                                                "generation": str(generation)})


def _status() -> dict[str, int] | None:
    if not _HAS_PROC:
        return None
    out = {}
    with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("Threads", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                out[key] = int(value)
    return out


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
