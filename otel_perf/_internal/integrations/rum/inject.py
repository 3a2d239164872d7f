"""Put the RUM ``<script>`` tag (and the page's route template) into HTML responses.

Only uncompressed, successful ``text/html`` responses are touched; anything else passes straight
through. The response start is held back until ``</head>`` appears in the body (bounded: the first
``SEARCH_LIMIT`` bytes), then the tag goes in before it and ``Content-Length`` grows by its size;
a page without ``</head>`` in that window is sent unchanged. Streaming bodies keep streaming:
after the insertion point every chunk is forwarded as it comes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape

Send = Callable[[dict], Awaitable[None]]
SEARCH_LIMIT = 64 * 1024
_MARK = b"</head>"


def eligible(message: dict) -> bool:
    """A 2xx (not 204/206) uncompressed text/html response start."""
    status = message.get("status", 200)
    if not (200 <= status < 300) or status in (204, 206):
        return False
    html = False
    for key, value in message.get("headers", ()):
        key = key.lower()
        if key == b"content-type":
            html = value[:9].lower() == b"text/html"
        elif key == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
            return False
    return html


def tag(script_url: str, route: str | None) -> bytes:
    meta = f'<meta name="otel-perf-route" content="{escape(route)}">' if route is not None else ""
    return f'{meta}<script src="{escape(script_url)}" defer></script>'.encode()


def wrap(send: Send, make_tag: Callable[[], bytes | None]) -> Send:
    """``send`` with the tag from ``make_tag()`` (called once, at response start) inserted."""
    held: dict | None = None  # the response start, while we look for </head>
    buffer = b""
    snippet: bytes | None = None
    searching = False

    async def flush(body: bytes, more_body: bool, insert_at: int = -1) -> None:
        nonlocal held, searching
        start, held, searching = held, None, False
        if insert_at >= 0 and snippet is not None:
            body = body[:insert_at] + snippet + body[insert_at:]
            start = _grow_length(start, len(snippet))
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": more_body})

    async def wrapped(message: dict) -> None:
        nonlocal held, buffer, snippet, searching
        kind = message["type"]
        if kind == "http.response.start" and eligible(message) and _length_ok(message):
            snippet = make_tag()
            if snippet is not None:
                held, buffer, searching = message, b"", True
                return
        if not searching:
            return await send(message)
        if kind != "http.response.body":  # e.g. pathsend: give up, pass everything on unchanged
            start, held, searching = held, None, False
            await send(start)  # type: ignore[arg-type]
            if buffer:
                await send({"type": "http.response.body", "body": buffer, "more_body": True})
            return await send(message)
        buffer += message.get("body", b"")
        more = message.get("more_body", False)
        at = buffer.lower().find(_MARK)
        if at >= 0 or not more or len(buffer) > SEARCH_LIMIT:
            body, buffer = buffer, b""
            await flush(body, more, at)

    return wrapped


def _length_ok(start: dict) -> bool:
    """False when Content-Length is present but unusable (then we leave the response alone)."""
    for key, value in start.get("headers", ()):
        if key.lower() == b"content-length":
            return value.strip().isdigit()
    return True


def _grow_length(start: dict, extra: int) -> dict:
    headers = [
        (k, str(int(v) + extra).encode()) if k.lower() == b"content-length" else (k, v)
        for k, v in start.get("headers", ())
    ]
    return {**start, "headers": headers}
