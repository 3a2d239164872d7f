"""Exception and log texts made safe to export: no values quoted by the database, no e-mails.

PostgreSQL's errors quote the values involved (``DETAIL:  Key (email)=(a@b.org) already
exists.``, ``invalid input syntax for type integer: "4111 1111"``, ``LINE 1: ... 'secret'``). Those
texts reach telemetry through a SERVER span's exception event and through the application's
``log.error(..., exc_info=True)``. What is kept: the exception type, the SQLSTATE, the primary
message with its identifiers (constraint, table, column names) and the stack frames.
"""

from __future__ import annotations

import re
import traceback
from typing import Any

# Lines of a PostgreSQL error that quote data or the statement: DETAIL, CONTEXT, QUERY, WHERE,
# "LINE n: <statement excerpt>" and the caret line under it.
_DATA_LINES = re.compile(r"(?m)^[ \t]*(?:DETAIL|CONTEXT|QUERY|WHERE|LINE \d+):.*(?:\n[ \t]*\^[ \t]*$)?\n?")
_KEY_VALUES = re.compile(r"\(([^()\n]*)\)=\((?:[^()\n]|\([^()\n]*\))*\)")  # Key (email)=(value)
_TRAILING_VALUE = re.compile(r'(?m): "[^"\n]*"([ \t]*$)')  # ... for type integer: "value"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def scrub_text(text: str) -> str:
    """``text`` without the parts of database messages that quote values, and without e-mails."""
    if not text:
        return text
    text = _DATA_LINES.sub("", text)
    text = _KEY_VALUES.sub(r"(\1)=(?)", text)
    text = _TRAILING_VALUE.sub(r': "?"\1', text)
    return _EMAIL.sub("<email>", text)


def exception_message(error: BaseException) -> str:
    """A useful, safe message: for a database error its SQLSTATE and primary message."""
    sqlstate = getattr(error, "sqlstate", None)
    diag = getattr(error, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if sqlstate and primary:
        return f"{scrub_text(primary)} (SQLSTATE {sqlstate})"
    text = str(error.args[0]) if error.args else ""
    return scrub_text(text.strip())


def exception_attributes(error: BaseException, escaped: bool = False) -> dict[str, Any]:
    """The semantic-convention ``exception.*`` attributes, scrubbed."""
    stacktrace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    attributes: dict[str, Any] = {
        "exception.type": f"{type(error).__module__}.{type(error).__qualname__}"
        if type(error).__module__ not in ("builtins", "__main__") else type(error).__qualname__,
        "exception.message": exception_message(error),
        "exception.stacktrace": scrub_text(stacktrace),
    }
    if escaped:
        attributes["exception.escaped"] = True
    return attributes
