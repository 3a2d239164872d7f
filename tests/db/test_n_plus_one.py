"""N+1 detection inside real ASGI requests (Starlette app, otel_perf's middleware, real PostgreSQL)."""

from __future__ import annotations

import asyncio

import httpx
import psycopg
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from otel_perf._internal.catalogue import DB_N_PLUS_ONE
from tests.db.conftest import db_spans


def make_app(dsn: str, table: str) -> Starlette:
    async def patients(request):
        n = int(request.path_params["n"])
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            ids = [r[0] for r in await (await conn.execute(f"SELECT id FROM {table} ORDER BY id LIMIT %s", (n,)))
                   .fetchall()]
            names = []
            for i in ids:  # the N+1: one query per row
                cur = await conn.execute(f"SELECT name FROM {table} WHERE id = %s", (i,))
                names.append((await cur.fetchone())[0])
        return JSONResponse(names)

    return Starlette(routes=[Route("/patients/{n:int}", patients)])


def get(app, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.get(path)

    return asyncio.run(go())


def fill(conn, table: str, rows: int = 20) -> None:
    conn.cursor().executemany(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", [(i, f"p{i}") for i in range(rows)])


def test_n_plus_one_reported_once_per_request(telemetry, postgres, conn, table):
    fill(conn, table)
    t = telemetry(summary=True)
    app = make_app(postgres.dsn, table)
    assert len(get(app, "/patients/12").json()) == 12
    assert len(get(app, "/patients/5").json()) == 5  # below the default threshold of 10

    servers = [s for s in t.spans() if s.kind is SpanKind.SERVER]
    assert [s.attributes["http.route"] for s in servers] == ["/patients/{n}", "/patients/{n}"]
    (event,) = [e for e in servers[0].events if e.name != "otel_perf.profile"]  # a busy machine may profile it
    assert event.name == "otel_perf.db.n_plus_one"
    assert event.attributes["otel_perf.db.count"] == 12
    assert event.attributes["db.query.text"] == f"SELECT name FROM {table} WHERE id = ?"
    assert event.attributes["db.query.summary"] == f"SELECT {table}"
    assert not [e for e in servers[1].events if e.name != "otel_perf.profile"]
    # the statements belong to the request's trace
    trace_id = servers[0].context.trace_id
    assert sum(1 for s in db_spans(t) if s.context.trace_id == trace_id) == 13

    (point,) = t.points(DB_N_PLUS_ONE.name)
    assert point.value == 1 and dict(point.attributes) == {"http.route": "/patients/{n}"}
    (suspect,) = t.summary.as_dict()["n_plus_one"]
    assert suspect["route"] == "/patients/{n}"
    assert suspect["shape"] == f"SELECT name FROM {table} WHERE id = ?"
    assert (suspect["requests"], suspect["max_count"]) == (1, 12)


def test_threshold_is_configurable(telemetry, postgres, conn, table):
    fill(conn, table)
    t = telemetry(slo={"n_plus_one": 3})
    get(make_app(postgres.dsn, table), "/patients/3")
    (server,) = [s for s in t.spans() if s.kind is SpanKind.SERVER]
    assert [e.attributes["otel_perf.db.count"] for e in server.events if e.name != "otel_perf.profile"] == [3]


def test_no_request_no_n_plus_one(telemetry, conn, table):
    fill(conn, table)
    t = telemetry()
    for i in range(15):
        conn.execute(f"SELECT name FROM {table} WHERE id = %s", (i,))
    assert t.points(DB_N_PLUS_ONE.name) == []
