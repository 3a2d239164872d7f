"""The FastAPI/Starlette scenario of the compatibility matrix (run inside a matrix environment).

Prints JSON: per case the SERVER spans of its trace, plus every duration series and the local
summary's routes. tests/matrix/test_matrix.py asserts on it.
"""

from __future__ import annotations

import asyncio
import threading
import time

import harness

harness.configure()  # before the app is built, as `otel-perf run` does

from fastapi import APIRouter, BackgroundTasks, FastAPI  # noqa: E402
from fastapi.responses import PlainTextResponse, StreamingResponse  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.routing import Mount, Route  # noqa: E402
from starlette.websockets import WebSocket  # noqa: E402

app = FastAPI()
items = APIRouter()


@items.get("/items/{item_id}")
async def read_item(item_id: int):
    return {"id": item_id}


app.include_router(items, prefix="/api/v1")
app.include_router(items, prefix="/api/v2")  # the same router under two prefixes

inner = APIRouter()


@inner.get("/inner/{x}")
async def read_inner(x: str):
    return {"x": x}


outer = APIRouter(prefix="/outer")
outer.include_router(inner, prefix="/mid")
app.include_router(outer, prefix="/api")  # nested routers: /api/outer/mid/inner/{x}


async def sub_item(request):
    return PlainTextResponse(str(request.path_params))


sub = Starlette(routes=[Route("/items/{item_id}", sub_item), Route("/api/items/{item_id}", sub_item)])
app.mount("/api/t/{tenant}", sub)  # parameters in the Mount
app.routes.append(Mount("/org/{org}", routes=[Route("/api/items/{item_id}", sub_item)]))


async def plain(request):
    return PlainTextResponse("plain")


app.add_route("/plain", plain)

background_times: dict[str, int] = {}


def slow_background() -> None:
    background_times["start"] = time.time_ns()
    time.sleep(0.3)
    background_times["end"] = time.time_ns()


@app.get("/bg")
async def with_background(tasks: BackgroundTasks):
    tasks.add_task(slow_background)
    return {"ok": True}


first_chunk_read = threading.Event()
stream_times: dict[str, int] = {}


async def chunks(kind: str):
    yield "data: one\n\n" if kind == "sse" else "one;"
    # The client sets the event once it holds the first chunk: had the middleware buffered the
    # stream, this would wait forever (and the client time out).
    await asyncio.get_running_loop().run_in_executor(None, first_chunk_read.wait, 20)
    first_chunk_read.clear()
    yield "data: two\n\n" if kind == "sse" else "two;"
    stream_times[kind] = time.time_ns()


@app.get("/stream")
async def stream():
    return StreamingResponse(chunks("stream"), media_type="text/plain")


@app.get("/sse")
async def sse():
    return StreamingResponse(chunks("sse"), media_type="text/event-stream")


async def endless():
    while True:
        yield "tick;"
        await asyncio.sleep(0.05)


@app.get("/endless")
async def endless_stream():
    return StreamingResponse(endless(), media_type="text/plain")


@app.get("/slow")
async def slow():
    await asyncio.sleep(0.5)
    return {"slow": True}


@app.get("/boom")
async def boom():
    raise RuntimeError("boom")


@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.send_text(f"echo {text}")
    await websocket.close()


def main() -> None:
    server = harness.Server(app)
    port = server.port
    results: dict = {"cases": {}}
    cases = results["cases"]
    plain_requests = {
        "prefix_v1": "/api/v1/items/5",
        "prefix_v2": "/api/v2/items/6",
        "nested": "/api/outer/mid/inner/abc",
        "mount_params": "/api/t/7/items/7",
        "mount_literal": "/org/api/api/items/9",
        "mount_404": "/api/t/7/nope",
        "plain": "/plain",
        "docs": "/docs",
        "openapi": "/openapi.json",
        "not_found": "/no/such/page",
        "boom": "/boom",
    }
    for case, path in plain_requests.items():
        r = harness.request(port, path)
        cases[case] = {"status": r["status"], "spans": harness.server_spans(r["trace_id"]),
                       "server_timing": r["server_timing"]}

    r = harness.request(port, "/bg")
    bg = harness.server_spans(r["trace_id"])
    deadline = time.monotonic() + 20
    while "end" not in background_times and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    cases["background"] = {"status": r["status"], "spans": bg, "all": harness.spans_of(r["trace_id"]),
                           "task": background_times}

    for kind in ("stream", "sse"):
        r = harness.stream(port, f"/{kind}", first_chunk_read.set)
        cases[kind] = {"status": r["status"], "first": r["first"], "rest": r["rest"],
                       "spans": harness.server_spans(r["trace_id"]), "last_chunk": stream_times.get(kind)}

    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{port}/ws") as websocket:
        websocket.send("hi")
        cases["websocket"] = {"echo": websocket.recv()}

    trace_id = harness.disconnect(port, "/endless", after_headers=True)
    cases["disconnect_stream"] = {"spans": harness.server_spans(trace_id)}
    trace_id = harness.disconnect(port, "/slow", after_headers=False)
    cases["disconnect_early"] = {"spans": harness.server_spans(trace_id)}

    results["duration_series"] = harness.duration_series()
    results["summary_routes"] = harness.summary_routes()
    results["span_scopes"] = sorted({s.instrumentation_scope.name for s in harness.EXPORTER.get_finished_spans()})
    harness.emit(results, ("fastapi", "starlette", "uvicorn"))


if __name__ == "__main__":
    main()
