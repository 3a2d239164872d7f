"""Patient timeline: a small Starlette service on PostgreSQL to show otel-perf at work.

Every request runs in one transaction as role ``timeline_app`` with ``app.provider_id`` set, so
PostgreSQL's row-level security shows a provider only their own patients. The provider comes from
the ``X-Provider-Id`` header (a stand-in for real authentication; the HTML page takes ``?provider=``).

Four endpoints are bad on purpose, so the summary and the dashboards have something to find:
``/api/patients/{id}/authors`` is an N+1 (one query per event), ``/api/reports/activity`` runs a
slow report (``EXAMPLE_SLOW_SECONDS``, default 0.25 s, of ``pg_sleep`` inside the query),
``/api/clinicians/{id}/events`` filters on a column no index covers, and ``/api/reports/trend``
burns CPU in naive Python (``report.build_rows``) -- see docs/bottlenecks.md.

    DATABASE_URL=postgresql://... otel-perf run uvicorn patient_timeline.app:app --app-dir examples
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import html
import os
from collections.abc import AsyncIterator

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

import otel_perf
from patient_timeline import report

PAGE_SIZE = 50
KINDS = ("visit", "lab_result", "prescription", "note", "imaging", "vital_signs", "referral")


async def _configure(conn: psycopg.AsyncConnection) -> None:
    # Never the connecting role's rights: RLS applies to timeline_app, not to an owner or superuser.
    await conn.execute("SET search_path = timeline")
    await conn.execute("SET ROLE timeline_app")




@contextlib.asynccontextmanager
async def as_provider(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    """A pooled connection inside a transaction scoped to the caller's provider."""
    provider = request.headers.get("x-provider-id") or request.query_params.get("provider")
    if not provider or not provider.isdigit():
        raise HTTPException(401, "X-Provider-Id header required")
    async with request.app.state.pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT set_config('app.provider_id', %s, true)", (provider,))
        yield conn


async def can_see(conn: psycopg.AsyncConnection, patient_id: int) -> None:
    """The explicit access (RLS) check: 404, not an empty timeline, for someone else's patient."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM patients WHERE id = %s"
        " AND provider_id = NULLIF(current_setting('app.provider_id', true), '')::int) AS ok", (patient_id,))
    if not (await cur.fetchone())["ok"]:
        raise HTTPException(404, "no such patient")


def _cursor(row: dict) -> str:
    raw = f"{row['occurred_at'].isoformat()}|{row['id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _parse_cursor(value: str) -> tuple[dt.datetime, int]:
    try:
        at, _, ident = base64.urlsafe_b64decode(value.encode()).decode().partition("|")
        return dt.datetime.fromisoformat(at), int(ident)
    except ValueError:
        raise HTTPException(400, "bad cursor") from None


def _event(row: dict) -> dict:
    return {**row, "occurred_at": row["occurred_at"].isoformat()}


async def timeline(request: Request) -> JSONResponse:
    """A page of the patient's events, newest first; ``?before=<cursor>`` continues (keyset paging)."""
    patient_id = request.path_params["patient_id"]
    limit = min(int(request.query_params.get("limit", PAGE_SIZE)), 200)
    before = request.query_params.get("before")
    async with as_provider(request) as conn:
        await can_see(conn, patient_id)
        if before:
            at, ident = _parse_cursor(before)
            cur = await conn.execute(
                "SELECT id, kind, occurred_at, summary, author_id FROM events WHERE patient_id = %s"
                " AND (occurred_at, id) < (%s, %s) ORDER BY occurred_at DESC, id DESC LIMIT %s",
                (patient_id, at, ident, limit))
        else:
            cur = await conn.execute(
                "SELECT id, kind, occurred_at, summary, author_id FROM events WHERE patient_id = %s"
                " ORDER BY occurred_at DESC, id DESC LIMIT %s", (patient_id, limit))
        rows = await cur.fetchall()
    nxt = _cursor(rows[-1]) if len(rows) == limit else None
    return JSONResponse({"patient_id": patient_id, "events": [_event(r) for r in rows], "next": nxt})


async def search(request: Request) -> JSONResponse:
    """Patients whose family name starts with ``?q=`` (case-insensitive), alphabetical."""
    q = request.query_params.get("q", "").strip().lower()
    limit = min(int(request.query_params.get("limit", 20)), 100)
    pattern = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    async with as_provider(request) as conn:
        cur = await conn.execute(
            "SELECT id, mrn, family_name, given_name, birth_date FROM patients"
            " WHERE lower(family_name) LIKE %s ORDER BY family_name, id LIMIT %s", (pattern, limit))
        rows = await cur.fetchall()
    return JSONResponse({"patients": [{**r, "birth_date": r["birth_date"].isoformat()} for r in rows]})


async def create_event(request: Request) -> JSONResponse:
    patient_id = request.path_params["patient_id"]
    try:
        body = await request.json()
        kind, summary = body["kind"], str(body["summary"])[:500]
        author = int(request.headers.get("x-clinician-id") or body["author_id"])
    except (ValueError, KeyError, TypeError):
        raise HTTPException(422, "need JSON {kind, summary, author_id}") from None
    if kind not in KINDS:
        raise HTTPException(422, f"kind must be one of {', '.join(KINDS)}")
    async with as_provider(request) as conn:
        await can_see(conn, patient_id)
        cur = await conn.execute(
            "INSERT INTO events (patient_id, author_id, kind, occurred_at, summary)"
            " VALUES (%s, %s, %s, now(), %s) RETURNING id, kind, occurred_at, summary, author_id",
            (patient_id, author, kind, summary))
        row = await cur.fetchone()
    return JSONResponse(_event(row), status_code=201)


async def authors(request: Request) -> JSONResponse:
    """Recent events with their authors -- deliberately N+1: one clinician query per event.

    The fix is a JOIN (see docs/example.md); it is left like this so the N+1 detector has work.
    """
    patient_id = request.path_params["patient_id"]
    async with as_provider(request) as conn:
        await can_see(conn, patient_id)
        cur = await conn.execute(
            "SELECT id, kind, occurred_at, author_id FROM events WHERE patient_id = %s"
            " ORDER BY occurred_at DESC, id DESC LIMIT 25", (patient_id,))
        events = await cur.fetchall()
        for event in events:
            cur = await conn.execute("SELECT name, role FROM clinicians WHERE id = %s", (event["author_id"],))
            event["author"] = await cur.fetchone()
    return JSONResponse({"patient_id": patient_id, "events": [_event(e) for e in events]})


async def activity(request: Request) -> JSONResponse:
    """Event counts per kind over all the provider's patients -- deliberately slow (a heavy report)."""
    seconds = float(os.environ.get("EXAMPLE_SLOW_SECONDS", "0.25"))
    async with as_provider(request) as conn:
        cur = await conn.execute(
            "SELECT e.kind, count(*) AS events, max(e.occurred_at) AS latest"
            " FROM events e CROSS JOIN (SELECT pg_sleep(%s)) AS heavy GROUP BY e.kind ORDER BY e.kind",
            (seconds,))
        rows = await cur.fetchall()
    return JSONResponse({"activity": [{**r, "latest": r["latest"].isoformat()} for r in rows]})


async def clinician_events(request: Request) -> JSONResponse:
    """A clinician's latest events across the provider's patients -- no index on ``author_id``.

    The dashboard this feeds has a 10 ms budget per statement (a query class of its own), which
    the scan of all 50,000 events overruns; the plan finding names the missing index.
    """
    clinician_id = request.path_params["clinician_id"]
    async with as_provider(request) as conn, otel_perf.query_class("dashboard", threshold=0.01):
        cur = await conn.execute(
            "SELECT id, patient_id, kind, occurred_at, summary FROM events WHERE author_id = %s"
            " ORDER BY occurred_at DESC LIMIT 50", (clinician_id,))
        rows = await cur.fetchall()
    return JSONResponse({"clinician_id": clinician_id, "events": [_event(r) for r in rows]})


async def trend(request: Request) -> JSONResponse:
    """The busiest week per event kind -- deliberately CPU-heavy (``report.build_rows`` is quadratic)."""
    async with as_provider(request) as conn:
        cur = await conn.execute(
            "SELECT kind, occurred_at FROM events ORDER BY occurred_at DESC LIMIT %s",
            (int(os.environ.get("EXAMPLE_TREND_EVENTS", "2000")),))
        events = await cur.fetchall()
    # In a worker thread, as Starlette runs `def` endpoints: the event loop keeps serving others.
    return JSONResponse({"trend": await run_in_threadpool(report.build_rows, events)})


async def page(request: Request) -> HTMLResponse:
    """The provider's patients and the first one's timeline, as plain HTML (where RUM gets injected)."""
    async with as_provider(request) as conn:
        cur = await conn.execute(
            "SELECT id, family_name, given_name FROM patients ORDER BY family_name, id LIMIT 25")
        patients = await cur.fetchall()
        events = []
        if patients:
            cur = await conn.execute(
                "SELECT kind, occurred_at, summary FROM events WHERE patient_id = %s"
                " ORDER BY occurred_at DESC, id DESC LIMIT 10", (patients[0]["id"],))
            events = await cur.fetchall()
    e = html.escape
    items = "".join(f"<li>{e(p['family_name'])}, {e(p['given_name'])} (#{p['id']})</li>" for p in patients)
    rows = "".join(f"<tr><td>{r['occurred_at']:%Y-%m-%d}</td><td>{e(r['kind'])}</td><td>{e(r['summary'])}</td></tr>"
                   for r in events)
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'><title>Patient timeline</title></head><body>"
        f"<h1>Patients</h1><ul>{items}</ul><h2>Latest events</h2><table>{rows}</table>"
        "<button id='more'>More</button></body></html>")


async def healthz(request: Request) -> Response:
    return Response("ok", media_type="text/plain")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        raise RuntimeError("set DATABASE_URL to the seeded database (python -m patient_timeline.seed)")
    app.state.pool = AsyncConnectionPool(
        dsn, min_size=2, max_size=int(os.environ.get("EXAMPLE_POOL_SIZE", "8")), open=False,
        configure=_configure, kwargs={"row_factory": dict_row, "autocommit": True})
    await app.state.pool.open(wait=True, timeout=10)
    try:
        yield
    finally:
        await app.state.pool.close()


app = Starlette(
    routes=[
        Route("/", page),
        Route("/healthz", healthz),
        Route("/api/patients", search),
        Route("/api/patients/{patient_id:int}/timeline", timeline),
        Route("/api/patients/{patient_id:int}/events", create_event, methods=["POST"]),
        Route("/api/patients/{patient_id:int}/authors", authors),
        Route("/api/reports/activity", activity),
        Route("/api/reports/trend", trend),
        Route("/api/clinicians/{clinician_id:int}/events", clinician_events),
    ],
    lifespan=lifespan,
)
