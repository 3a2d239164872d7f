"""The end-to-end test app: fast, slow, failing and database routes, instrumented by otel_perf.configure().

Run with uvicorn; configuration from the environment (OTEL_METRICS_EXPORTER=prometheus,
OTEL_EXPORTER_PROMETHEUS_HOST/PORT, OTEL_PERF_DB_STAT_STATEMENTS_DSN) and APP_DSN for the queries.
"""

import asyncio
import os

import otel_perf

otel_perf.configure(service_name="e2e-app")

import psycopg  # noqa: E402  (imported after configure so the database instrumentation sees it)
from starlette.applications import Starlette  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

DSN = os.environ["APP_DSN"]


async def fast(request):
    return PlainTextResponse("ok")


async def slow(request):
    await asyncio.sleep(0.25)
    return PlainTextResponse("slow")


async def fail(request):
    return PlainTextResponse("unavailable", status_code=500)


def db_slow(request):
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("SELECT pg_sleep(0.11)")  # slow (> 100 ms), with room below the 200 ms route SLA
    return PlainTextResponse("db")


def n_plus_one(request):
    with psycopg.connect(DSN, autocommit=True) as conn:
        for i in range(12):
            conn.execute("SELECT %s::int AS id", (i,))
    return PlainTextResponse("n+1")


app = Starlette(routes=[Route("/fast", fast), Route("/slow", slow), Route("/fail", fail),
                        Route("/db/slow", db_slow), Route("/db/n-plus-one", n_plus_one)])
