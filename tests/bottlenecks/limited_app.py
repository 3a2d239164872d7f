"""A service with a known limit: ``/limited`` is served one request at a time, each taking
``LIMITED_SECONDS`` (default 0.04 s: at most 25 requests/s, whatever the CPU); ``/fast`` is not limited.

Waits, not computation, so the limit holds on a busy machine.
"""

import asyncio
import os

SECONDS = float(os.environ.get("LIMITED_SECONDS", "0.04"))
_lock = None


async def app(scope, receive, send):
    global _lock
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/limited":
        if _lock is None:
            _lock = asyncio.Lock()
        async with _lock:
            await asyncio.sleep(SECONDS)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
