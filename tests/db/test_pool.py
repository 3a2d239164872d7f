"""psycopg_pool metrics under real contention."""

from __future__ import annotations

import asyncio
import threading

import psycopg_pool
import pytest

from otel_perf._internal.catalogue import (
    DB_CONNECTION_COUNT,
    DB_CONNECTION_MAX,
    DB_CONNECTION_PENDING,
    DB_CONNECTION_TIMEOUTS,
    DB_CONNECTION_WAIT,
)
from tests.db.conftest import db_spans
from tests.fixtures.net import wait_for


def by_pool(t, metric, name, **attrs):
    return [p for p in t.points(metric.name) if p.attributes.get("db.client.connection.pool.name") == name
            and all(p.attributes.get(k) == v for k, v in attrs.items())]


def value(t, metric, name, **attrs):
    points = by_pool(t, metric, name, **attrs)
    return points[0].value if points else None


def test_pool_metrics_under_contention(telemetry, postgres):
    t = telemetry()
    release = threading.Event()
    with psycopg_pool.ConnectionPool(postgres.dsn, min_size=2, max_size=2, name="busy", open=True) as pool:
        pool.wait()
        assert value(t, DB_CONNECTION_MAX, "busy") == 2
        wait_for(lambda: value(t, DB_CONNECTION_COUNT, "busy", **{"db.client.connection.state": "idle"}) == 2,
                 timeout=10, what="two idle connections")

        def hold():
            with pool.connection() as conn:
                conn.execute("SELECT 1")
                release.wait(10)

        workers = [threading.Thread(target=hold) for _ in range(4)]
        for w in workers:
            w.start()
        # Two hold the connections, two queue behind them.
        wait_for(lambda: value(t, DB_CONNECTION_PENDING, "busy") == 2, timeout=10, what="2 pending requests")
        assert value(t, DB_CONNECTION_COUNT, "busy", **{"db.client.connection.state": "used"}) == 2
        assert value(t, DB_CONNECTION_COUNT, "busy", **{"db.client.connection.state": "idle"}) == 0

        with pytest.raises(psycopg_pool.PoolTimeout):
            pool.getconn(timeout=0.05)
        (timeouts,) = by_pool(t, DB_CONNECTION_TIMEOUTS, "busy")
        assert timeouts.value == 1

        release.set()
        for w in workers:
            w.join(10)
        wait_for(lambda: value(t, DB_CONNECTION_PENDING, "busy") == 0, timeout=10, what="queue drained")

        (wait,) = by_pool(t, DB_CONNECTION_WAIT, "busy")
        assert wait.count == 5  # four checkouts and the one that timed out
        assert wait.max >= 0.05  # the timed-out checkout waited its full timeout
        assert len(db_spans(t)) == 4  # pooled connections are instrumented too


def test_async_pool_is_measured(telemetry, postgres):
    t = telemetry()

    async def go():
        async with psycopg_pool.AsyncConnectionPool(postgres.dsn, min_size=1, max_size=1, name="apool") as pool:
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")
            return value(t, DB_CONNECTION_MAX, "apool")

    assert asyncio.run(go()) == 1
    (wait,) = by_pool(t, DB_CONNECTION_WAIT, "apool")
    assert wait.count == 1
    assert len(db_spans(t)) == 1
