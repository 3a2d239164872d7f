"""Wrap psycopg 3's cursor classes so every statement is recorded, whatever made the cursor.

Upstream's PsycopgInstrumentor swaps each connection's ``cursor_factory`` at ``connect()``: it
misses server-side cursors, COPY, ``stream()``, connections made before it ran and programs with
their own cursor factory. Patching the cursor classes once covers all of them (client, raw and
server cursors inherit from ``Cursor``/``AsyncCursor``), pools included.
The wrappers read the active Recorder from ``ACTIVE``; with none (or instrumentation suppressed)
they call straight through.
"""

from __future__ import annotations

from collections.abc import Sized
from contextlib import asynccontextmanager, contextmanager
from time import time_ns
from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as _SUPPRESS

from otel_perf._internal.integrations.psycopg import statements
from otel_perf._internal.patching import restore, wrap
from otel_perf._internal.sdk.finished_spans import current_context as _current_context

ACTIVE: statements.Recorder | None = None
_ORIGINALS: list[tuple[type, str, Any]] = []


def _comment(query: Any, span: Any) -> Any:
    """sqlcommenter: the W3C traceparent of ``span`` as a trailing SQL comment."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return query
    comment = f"/*traceparent='00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}'*/"
    if isinstance(query, str):
        return f"{query} {comment}"
    if isinstance(query, bytes):
        return query + b" " + comment.encode()
    from psycopg import sql

    return sql.Composed([query, sql.SQL(" " + comment)])


def _execute(original: Any) -> Any:
    def execute(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        rec = ACTIVE
        if rec is None or _current_context().get(_SUPPRESS):  # statements.suppressed(), inlined: the hot path
            return original(self, query, params, **kwargs)
        span = None
        start = time_ns()
        sent = query
        if rec.commenter:
            span = rec.start_span(start)
            sent = _comment(query, span)
        try:
            result = original(self, sent, params, **kwargs)
        except BaseException as exc:
            rec.record(self, query, params is not None, start, time_ns(), exc, span)
            raise
        rec.record(self, query, params is not None, start, time_ns(), None, span)
        return result

    return execute


def _aexecute(original: Any) -> Any:
    async def execute(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        rec = ACTIVE
        if rec is None or statements.suppressed():
            return await original(self, query, params, **kwargs)
        span = None
        start = time_ns()
        sent = query
        if rec.commenter:
            span = rec.start_span(start)
            sent = _comment(query, span)
        try:
            result = await original(self, sent, params, **kwargs)
        except BaseException as exc:
            rec.record(self, query, params is not None, start, time_ns(), exc, span)
            raise
        rec.record(self, query, params is not None, start, time_ns(), None, span)
        return result

    return execute


def _batch_size(params_seq: Any) -> int | None:
    return len(params_seq) if isinstance(params_seq, Sized) else None


def _executemany(original: Any) -> Any:
    def executemany(self: Any, query: Any, params_seq: Any, **kwargs: Any) -> Any:
        rec = ACTIVE
        if rec is None or statements.suppressed():
            return original(self, query, params_seq, **kwargs)
        start = time_ns()
        try:
            result = original(self, query, params_seq, **kwargs)
        except BaseException as exc:
            rec.record(self, query, True, start, time_ns(), exc, batch=_batch_size(params_seq))
            raise
        rec.record(self, query, True, start, time_ns(), None, batch=_batch_size(params_seq))
        return result

    return executemany


def _aexecutemany(original: Any) -> Any:
    async def executemany(self: Any, query: Any, params_seq: Any, **kwargs: Any) -> Any:
        rec = ACTIVE
        if rec is None or statements.suppressed():
            return await original(self, query, params_seq, **kwargs)
        start = time_ns()
        try:
            result = await original(self, query, params_seq, **kwargs)
        except BaseException as exc:
            rec.record(self, query, True, start, time_ns(), exc, batch=_batch_size(params_seq))
            raise
        rec.record(self, query, True, start, time_ns(), None, batch=_batch_size(params_seq))
        return result

    return executemany


def _copy(original: Any) -> Any:
    """COPY: one span from the start of the block to the end of the data transfer."""

    @contextmanager
    def copy(self: Any, statement: Any, params: Any = None, **kwargs: Any) -> Any:
        rec = ACTIVE
        if rec is None or statements.suppressed():
            with original(self, statement, params, **kwargs) as cp:
                yield cp
            return
        start = time_ns()
        try:
            with original(self, statement, params, **kwargs) as cp:
                yield cp
        except BaseException as exc:
            rec.record(self, statement, params is not None, start, time_ns(), exc)
            raise
        rec.record(self, statement, params is not None, start, time_ns(), None)

    return copy


def _acopy(original: Any) -> Any:
    @asynccontextmanager
    async def copy(self: Any, statement: Any, params: Any = None, **kwargs: Any) -> Any:
        rec = ACTIVE
        if rec is None or statements.suppressed():
            async with original(self, statement, params, **kwargs) as cp:
                yield cp
            return
        start = time_ns()
        try:
            async with original(self, statement, params, **kwargs) as cp:
                yield cp
        except BaseException as exc:
            rec.record(self, statement, params is not None, start, time_ns(), exc)
            raise
        rec.record(self, statement, params is not None, start, time_ns(), None)

    return copy


def _stream(original: Any) -> Any:
    """stream(): one span until the generator is exhausted or closed."""

    def stream(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        rec = ACTIVE
        if rec is None or statements.suppressed():
            yield from original(self, query, params, **kwargs)
            return
        start = time_ns()
        error = None
        try:
            yield from original(self, query, params, **kwargs)
        except GeneratorExit:
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            rec.record(self, query, params is not None, start, time_ns(), error)

    return stream


def _astream(original: Any) -> Any:
    async def stream(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        rec = ACTIVE
        if rec is None or statements.suppressed():
            async for row in original(self, query, params, **kwargs):
                yield row
            return
        start = time_ns()
        error = None
        try:
            async for row in original(self, query, params, **kwargs):
                yield row
        except GeneratorExit:
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            rec.record(self, query, params is not None, start, time_ns(), error)

    return stream


def patch_psycopg(psycopg: Any) -> None:
    """Wrap the statement methods where psycopg defines them (idempotent)."""
    plan = [
        (psycopg.Cursor, {"execute": _execute, "executemany": _executemany, "copy": _copy, "stream": _stream}),
        (psycopg.ServerCursor, {"execute": _execute}),
        (psycopg.AsyncCursor, {"execute": _aexecute, "executemany": _aexecutemany, "copy": _acopy,
                               "stream": _astream}),
        (psycopg.AsyncServerCursor, {"execute": _aexecute}),
    ]
    for cls, methods in plan:
        for name, wrapper in methods.items():
            wrap(cls, name, wrapper, _ORIGINALS)


def unpatch() -> None:
    restore(_ORIGINALS)
