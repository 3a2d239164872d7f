"""A small unmodified Starlette app the HTTP tests drive (no otel_perf import)."""

import asyncio
import logging

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route


async def fast(request):
    return PlainTextResponse("ok")


async def slow(request):
    await asyncio.sleep(float(request.query_params.get("s", "0.25")))
    return PlainTextResponse("slow")


async def item(request):
    return JSONResponse({"id": request.path_params["item_id"]})


async def boom(request):
    raise RuntimeError("boom")


async def server_error(request):
    logging.getLogger("app").warning("backend unavailable for %s", request.url.path)
    return PlainTextResponse("nope", status_code=503)


async def user_post(request):
    return JSONResponse(dict(request.path_params))


app = Starlette(
    routes=[
        Route("/fast", fast),
        Route("/slow", slow),
        Route("/items/{item_id:int}", item),
        Route("/boom", boom),
        Route("/unavailable", server_error),
        Mount("/users/{user_id}", routes=[Route("/posts/{post_id}", user_post)]),
    ]
)
