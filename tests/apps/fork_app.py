"""A program that serves requests in-process, then in a forked multiprocessing child."""

import asyncio
import multiprocessing
import sys

import httpx
from opentelemetry import metrics
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def fast(request):
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/fast", fast)])


def serve(n: int) -> None:
    async def go() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fork") as client:
            for _ in range(n):
                assert (await client.get("/fast")).status_code == 200

    asyncio.run(go())
    # work counted through the global API, in whichever process runs this
    metrics.get_meter("fork_app").create_counter("fork_app.work").add(n)


def child() -> None:
    serve(2)


if __name__ == "__main__":
    from otel_perf._internal.integrations.asgi.middleware import OtelPerfMiddleware

    app = OtelPerfMiddleware(app)  # httpx's in-process transport has no server to patch
    serve(3)
    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join()
    sys.exit(process.exitcode)
