"""A Starlette app for the Collector end-to-end tests: RED traffic, and a route that sends secrets on
purpose (a query-string token, an e-mail, an Authorization header attribute, a raw SQL literal) for the
agent's scrubbing processors to remove. No otel_perf import: it runs under `otel-perf run`."""

import asyncio
import time

from opentelemetry import trace
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

SECRET_TOKEN = "s3cr3t-t0ken"
EMAIL = "jane.doe@example.com"
BEARER = "Bearer eyJhbGciOi.secret.signature"
SQL = "SELECT id, name FROM users WHERE email = 'jane.doe@example.com' AND tenant_id = 4242"

tracer = trace.get_tracer("scrub_app")


async def fast(request):
    return PlainTextResponse("ok")


async def slow(request):
    await asyncio.sleep(0.25)
    return PlainTextResponse("slow")


async def boom(request):
    return PlainTextResponse("nope", status_code=500)


async def item(request):
    return PlainTextResponse(request.path_params["item_id"])


async def scrub(request):
    server = trace.get_current_span()
    server.set_attribute("url.query", request.url.query)
    server.set_attribute("url.full", str(request.url))
    server.set_attribute("http.request.header.authorization", BEARER)
    server.set_attribute("enduser.email", EMAIL)
    with tracer.start_as_current_span("SELECT users", kind=SpanKind.CLIENT) as span:
        span.set_attribute("db.system.name", "postgresql")
        span.set_attribute("db.query.text", SQL)
        span.set_attribute("db.user.password", "hunter2")
        time.sleep(0.001)
    return PlainTextResponse("scrubbed?")


app = Starlette(routes=[Route("/fast", fast), Route("/slow", slow), Route("/boom", boom),
                        Route("/items/{item_id:int}", item), Route("/scrub", scrub)])
