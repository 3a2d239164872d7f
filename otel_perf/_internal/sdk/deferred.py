"""Histograms recorded when metrics are collected, not on the hot path.

A synchronous ``histogram.record`` costs 6–10 µs here (attribute cleaning and hashing in the
SDK); a deque append costs a fraction of one. Values wait in a bounded queue and are recorded by an
observable instrument's callback, which the SDK runs at every collection before it reads the
histogram, so every export carries every value. Values worth an exemplar (a slow request, a
failed statement) are recorded at once, in their span's context, so the exemplar points at the
trace. With no reader collecting (local mode) the queue fills up to ``QUEUE_LIMIT`` and values
are then recorded directly: memory stays bounded either way.
"""

from __future__ import annotations

import os
import threading
import weakref
from array import array
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_perf._internal.catalogue import Metric

QUEUE_LIMIT = 200_000  # values waiting for the next collection: 8 bytes each, ~1.6 MB at most
_ALL: weakref.WeakSet[DeferredHistogram] = weakref.WeakSet()


class DeferredHistogram:
    """Pass the *same* attributes dict for the same series: values are grouped by its identity."""

    def __init__(self, meter: Meter, metric: Metric, buckets: tuple[float, ...]):
        self.histogram = meter.create_histogram(
            metric.name, unit=metric.unit, description=metric.description,
            explicit_bucket_boundaries_advisory=list(buckets),
        )
        self.pending: dict[int, tuple[Any, array]] = {}
        self.queued = 0
        self._lock = threading.Lock()
        # Emits no points of its own: it exists for the callback that drains the queue.
        meter.create_observable_gauge(f"otel_perf.flush.{metric.name}", callbacks=[self._drain])
        _ALL.add(self)

    def record(self, value: float, attributes: Any, context: Context | None = None) -> None:
        """Queue ``value``; record it now, as an exemplar of ``context``, when a context is given."""
        if context is not None or self.queued >= QUEUE_LIMIT:
            self.histogram.record(value, attributes, context=context)
            return
        with self._lock:  # sync database calls record from worker threads
            entry = self.pending.get(id(attributes))
            if entry is None:
                self.pending[id(attributes)] = (attributes, array("d", (value,)))
            else:
                entry[1].append(value)
            self.queued += 1

    def _drain(self, options: CallbackOptions) -> list[Observation]:
        with self._lock:
            pending, self.pending, self.queued = self.pending, {}, 0
        record = self.histogram.record
        for attributes, values in pending.values():
            for value in values:
                record(value, attributes)
        return []


def _forget_parent_values() -> None:
    """A forked child must not record its parent's queued values a second time."""
    for histogram in list(_ALL):
        histogram.pending, histogram.queued, histogram._lock = {}, 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_parent_values)
