"""Query classes: a named group of statements judged by its own slow threshold."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from otel_perf._internal.config.errors import ConfigError
from otel_perf._internal.config.sla import QueryClass

F = TypeVar("F", bound=Callable[..., Any])

# The class of the statements running now (set by query_class); read on every statement.
CURRENT: ContextVar[QueryClass | None] = ContextVar("otel_perf.db.query_class", default=None)
# The reset tokens of the ``with query_class(...)`` blocks open in this context: per task and
# thread, so one query_class object can be entered by many tasks at once.
_OPEN: ContextVar[tuple[Any, ...]] = ContextVar("otel_perf.db.query_class_tokens", default=())


class query_class:  # noqa: N801 - used like a function: ``with query_class("rls"):`` / ``@query_class("rls")``
    """Statements run inside belong to a query class and are judged by its slow threshold.

    The threshold comes from the SLO's ``query_classes`` entry of that name (e.g. ``rls``: 50 ms)
    unless given here. Works as a context manager (``with``/``async with``) and as a decorator
    of sync and async functions.
    """

    def __init__(self, name: str, threshold: float | None = None):
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not 0 < threshold <= 3600):
            raise ConfigError(f"query_class({name!r}, threshold={threshold!r}) is invalid",
                              accepted=["seconds above 0, at most 3600"])
        self.qc = QueryClass(name, threshold or 0.0)  # 0: look the threshold up in the SLO

    def __enter__(self) -> query_class:
        _OPEN.set((*_OPEN.get(), CURRENT.set(self.qc)))
        return self

    def __exit__(self, *exc: object) -> None:
        tokens = _OPEN.get()
        if not tokens:
            return  # exited in another context than it was entered in: nothing of ours to undo
        _OPEN.set(tokens[:-1])
        try:
            CURRENT.reset(tokens[-1])
        except ValueError:  # entered in another context: leave that context's value alone
            CURRENT.set(None)

    async def __aenter__(self) -> query_class:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()

    def __call__(self, func: F) -> F:
        qc = self.qc
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                token = CURRENT.set(qc)
                try:
                    return await func(*args, **kwargs)
                finally:
                    CURRENT.reset(token)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = CURRENT.set(qc)
            try:
                return func(*args, **kwargs)
            finally:
                CURRENT.reset(token)

        return wrapper  # type: ignore[return-value]
