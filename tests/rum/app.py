"""A small Starlette app with HTML pages for the RUM tests (no otel_perf import)."""

from __future__ import annotations

import asyncio
import gzip

from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# A page that produces every vital in headless Chromium: text for FCP/LCP, a late banner that
# shifts the content (CLS), and a button whose handler blocks ~80 ms (an INP-sized interaction).
# `window.__shifts` / `window.__interactions` count the entries so the test polls instead of sleeping
# (a shift within 500 ms after an input would not count for CLS).
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>RUM test {page_id}</title>
<script src="/static/probe.js"></script>
</head>
<body>
<div id="slot"></div>
<h1>Order {page_id}</h1>
<p id="hero" style="font-size:40px">A paragraph large enough to be the largest contentful paint.</p>
<button id="buy" style="width:200px;height:60px">Buy</button>
<div id="out"></div>
</body></html>
"""

# External (not inline) so a strict CSP page works the same; it only helps the test observe.
PROBE = """
window.__interactions = 0;
window.__shifts = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (e.interactionId) window.__interactions++;
}).observe({type: 'event', durationThreshold: 16, buffered: true});
new PerformanceObserver((list) => {
  window.__shifts += list.getEntries().length;
}).observe({type: 'layout-shift', buffered: true});
addEventListener('DOMContentLoaded', () => {
  setTimeout(() => {
    const slot = document.getElementById('slot');
    slot.style.height = '120px';
    slot.textContent = 'late banner';
  }, 300);
  document.getElementById('buy').addEventListener('click', () => {
    const end = performance.now() + 80;
    while (performance.now() < end) {}
    document.getElementById('out').textContent = 'bought';
  });
});
"""


async def page(request):
    return HTMLResponse(PAGE.format(page_id=int(request.path_params["page_id"])))


async def probe(request):
    return Response(PROBE, media_type="text/javascript")


async def stream(request):
    async def chunks():
        yield b"<!doctype html><html><he"
        await asyncio.sleep(0)
        yield b"ad><title>s</title></HEAD><body>"
        for i in range(3):
            yield f"<p>chunk {i}</p>".encode()
        yield b"</body></html>"

    return StreamingResponse(chunks(), media_type="text/html")


async def compressed(request):
    body = gzip.compress(b"<html><head></head><body>zipped</body></html>", mtime=0)
    return Response(body, media_type="text/html", headers={"content-encoding": "gzip"})


async def headless(request):
    return HTMLResponse("<p>no head element here</p>")


async def api(request):
    return JSONResponse({"ok": True})


async def missing(request):
    return HTMLResponse("<html><head></head><body>gone</body></html>", status_code=404)


app = Starlette(
    routes=[
        Route("/pages/{page_id:int}", page),
        Route("/static/probe.js", probe),
        Route("/stream", stream),
        Route("/compressed", compressed),
        Route("/headless", headless),
        Route("/api", api),
        Route("/missing", missing),
    ]
)
