"""The Django-over-ASGI scenario of the compatibility matrix (run inside a matrix environment)."""

from __future__ import annotations

import asyncio
import threading
import time

import harness

harness.configure()

import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(DEBUG=False, SECRET_KEY="matrix-only", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
                   MIDDLEWARE=[], INSTALLED_APPS=[], LOGGING_CONFIG=None)
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpResponse, StreamingHttpResponse  # noqa: E402
from django.urls import include, path, re_path  # noqa: E402


def text(request, **kwargs):
    return HttpResponse(repr(sorted(kwargs.items())))


async def async_view(request, **kwargs):
    return HttpResponse("async")


def boom(request):
    raise RuntimeError("boom")


first_chunk_read = threading.Event()
stream_times: dict[str, int] = {}


async def chunks():
    yield "one;"
    await asyncio.get_running_loop().run_in_executor(None, first_chunk_read.wait, 20)
    yield "two;"
    stream_times["stream"] = time.time_ns()


async def stream(request):
    return StreamingHttpResponse(chunks(), content_type="text/plain")


async def endless_chunks():
    while True:
        yield "tick;"
        await asyncio.sleep(0.05)


async def endless(request):
    return StreamingHttpResponse(endless_chunks(), content_type="text/plain")


items = [
    path("items/<int:item_id>", text),
    path("nested/", include([path("deep/<slug:s>", text)])),
]
urlpatterns = [
    path("", text),
    path("articles/<int:year>/", async_view),
    path("api/v1/", include(items)),
    path("api/v2/", include(items)),  # one URLconf under two prefixes
    path("t/<int:tenant>/", include(items)),  # parameters before the include
    path("org/<str:org>/", include([path("api/items/<int:item_id>", text)])),
    re_path(r"^old/(?P<n>[0-9]+)/$", text),
    path("boom", boom),
    path("stream", stream),
    path("endless", endless),
]

app = get_asgi_application()


def main() -> None:
    server = harness.Server(app)
    port = server.port
    cases: dict = {}
    requests = {
        "root": "/",
        "async": "/articles/2024/",
        "prefix_v1": "/api/v1/items/5",
        "prefix_v2": "/api/v2/items/6",
        "nested": "/api/v1/nested/deep/abc",
        "mount_params": "/t/7/items/7",
        "mount_literal": "/org/api/api/items/9",
        "re_path": "/old/42/",
        "not_found": "/no/such/page",
        "include_404": "/api/v1/nope",
        "boom": "/boom",
    }
    for case, url in requests.items():
        r = harness.request(port, url)
        cases[case] = {"status": r["status"], "spans": harness.server_spans(r["trace_id"])}
    r = harness.stream(port, "/stream", first_chunk_read.set)
    cases["stream"] = {"status": r["status"], "first": r["first"], "rest": r["rest"],
                       "spans": harness.server_spans(r["trace_id"]), "last_chunk": stream_times.get("stream")}
    trace_id = harness.disconnect(port, "/endless", after_headers=True)
    cases["disconnect_stream"] = {"spans": harness.server_spans(trace_id)}
    results = {"cases": cases, "duration_series": harness.duration_series(), "summary_routes": harness.summary_routes(),
               "span_scopes": sorted({s.instrumentation_scope.name for s in harness.EXPORTER.get_finished_spans()})}
    harness.emit(results, ("django", "uvicorn"))


if __name__ == "__main__":
    main()
