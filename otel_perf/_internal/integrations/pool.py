"""psycopg_pool metrics from the pools' own statistics.

Counts (idle/used, max, pending requests) are read from ``pool.get_stats()`` when the SDK collects,
so they cost nothing per query. Only a checkout is timed (``db.client.connection.wait_time``) and a
checkout that times out is counted: both need the moment itself.
"""

from __future__ import annotations

import weakref
from time import perf_counter
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from otel_perf._internal import catalogue
from otel_perf._internal.patching import restore, wrap

POOL_NAME = "db.client.connection.pool.name"
STATE = "db.client.connection.state"
ACTIVE: PoolMetrics | None = None
_POOLS: weakref.WeakSet = weakref.WeakSet()
_ORIGINALS: list[tuple[type, str, Any]] = []

WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PoolMetrics:
    def __init__(self, meter: Any):
        def make(metric: catalogue.Metric, callback: Any) -> None:
            meter.create_observable_up_down_counter(
                metric.name, callbacks=[callback], unit=metric.unit, description=metric.description
            )

        make(catalogue.DB_CONNECTION_COUNT, self._count)
        make(catalogue.DB_CONNECTION_MAX, self._max)
        make(catalogue.DB_CONNECTION_PENDING, self._pending)
        m = catalogue.DB_CONNECTION_WAIT
        self.wait = meter.create_histogram(
            m.name, unit=m.unit, description=m.description, explicit_bucket_boundaries_advisory=list(WAIT_BUCKETS)
        )
        m = catalogue.DB_CONNECTION_TIMEOUTS
        self.timeouts = meter.create_counter(m.name, unit=m.unit, description=m.description)

    @staticmethod
    def _stats() -> list[tuple[str, dict[str, int]]]:
        out = []
        for pool in list(_POOLS):
            if getattr(pool, "closed", False):
                continue
            try:
                out.append((pool.name, pool.get_stats()))
            except Exception:  # a pool being closed: skip it this time
                continue
        return out

    def _count(self, options: CallbackOptions) -> list[Observation]:
        points = []
        for name, s in self._stats():
            idle = s.get("pool_available", 0)
            points.append(Observation(idle, {POOL_NAME: name, STATE: "idle"}))
            points.append(Observation(max(s.get("pool_size", 0) - idle, 0), {POOL_NAME: name, STATE: "used"}))
        return points

    def _max(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(s.get("pool_max", 0), {POOL_NAME: name}) for name, s in self._stats()]

    def _pending(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(s.get("requests_waiting", 0), {POOL_NAME: name}) for name, s in self._stats()]


def _init(original: Any) -> Any:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        original(self, *args, **kwargs)
        _POOLS.add(self)

    return __init__


def _checked_out(pool: Any, start: float, timed_out: bool) -> None:
    metrics = ACTIVE
    if metrics is None:
        return
    try:
        attrs = {POOL_NAME: pool.name}
        metrics.wait.record(perf_counter() - start, attrs)
        if timed_out:
            metrics.timeouts.add(1, attrs)
    except Exception:  # telemetry never breaks a checkout
        pass


def _getconn(original: Any, timeout_error: type) -> Any:
    def getconn(self: Any, timeout: float | None = None) -> Any:
        start = perf_counter()
        try:
            conn = original(self, timeout)
        except timeout_error:
            _checked_out(self, start, True)
            raise
        _checked_out(self, start, False)
        return conn

    return getconn


def _agetconn(original: Any, timeout_error: type) -> Any:
    async def getconn(self: Any, timeout: float | None = None) -> Any:
        start = perf_counter()
        try:
            conn = await original(self, timeout)
        except timeout_error:
            _checked_out(self, start, True)
            raise
        _checked_out(self, start, False)
        return conn

    return getconn


def patch_pool(psycopg_pool: Any) -> None:
    from psycopg_pool.base import BasePool

    timeout_error = psycopg_pool.PoolTimeout
    plan = [(BasePool, "__init__", _init)]
    plan += [(cls, "getconn", lambda o: _getconn(o, timeout_error))
             for cls in (psycopg_pool.ConnectionPool, getattr(psycopg_pool, "NullConnectionPool", None)) if cls]
    plan += [(cls, "getconn", lambda o: _agetconn(o, timeout_error))
             for cls in (psycopg_pool.AsyncConnectionPool, getattr(psycopg_pool, "AsyncNullConnectionPool", None))
             if cls]
    for cls, name, wrapper in plan:
        wrap(cls, name, wrapper, _ORIGINALS)


def unpatch() -> None:
    restore(_ORIGINALS)
