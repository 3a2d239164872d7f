"""Query shapes: a statement reduced to what is safe and useful to record.

PostgreSQL's own parser (libpg_query through pglast) replaces every literal by a placeholder,
exactly as pg_stat_statements does; we then turn placeholders into ``?``, collapse ``IN (...)``,
``ARRAY[...]`` and multi-row ``VALUES`` lists and drop comments, so one shape always has one text.
A statement the parser rejects is known by its summary only (its leading keyword): the raw text
could hold a secret and is never kept.

Results are cached per statement string (bounded LRU): applications repeat a small set of
statements, so the parser runs about once per statement in a process's life.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pglast import parser
from pglast.keywords import RESERVED_KEYWORDS, UNRESERVED_KEYWORDS
from pglast.visitors import Visitor

from otel_perf._internal.bounded import BoundedCache

MAX_CACHED = 8192  # longer statements (bulk literal INSERTs) are not worth a cache slot
MAX_PARSED = 200_000  # longer ones are summarised by keyword only (bounded time)
MAX_TEXT = 2048  # db.query.text is cut here
MAX_SUMMARY = 255  # the semantic conventions' bound for db.query.summary
MAX_TABLES = 3

_OPERATIONS = {
    "SelectStmt": "SELECT",
    "InsertStmt": "INSERT",
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "MergeStmt": "MERGE",
    "CopyStmt": "COPY",
    "CallStmt": "CALL",
}


@dataclass(frozen=True)
class Shape:
    """One statement's recordable form.

    ``summary``: short and bounded (``SELECT patients``); ``text``: sanitized text or None when the
    statement could not be parsed; ``operation``/``collection``: for the semantic-convention
    attributes (collection only when exactly one table is involved).
    """

    summary: str
    text: str | None
    operation: str | None
    collection: str | None

    @property
    def key(self) -> str:
        """Identity of the shape (what N+1 detection counts)."""
        return self.text or self.summary


# Statement strings can carry inlined literals (a new string per call): bounded in bytes.
_BY_STATEMENT = BoundedCache(max_bytes=2 << 20)
_BY_NORMALIZED = BoundedCache(max_bytes=4 << 20)


def shape_of(query: str, has_params: bool = False) -> Shape:
    """The shape of ``query``; ``has_params`` says psycopg placeholders (``%s``) are in use."""
    if len(query) > MAX_CACHED:
        return _shape(query, has_params)
    key = (query, has_params)
    shape = _BY_STATEMENT.get(key)
    if shape is None:
        shape = _BY_STATEMENT.put(key, _shape(query, has_params), len(query))  # the shape is shared
    return shape


# psycopg placeholders: %s %b %t, %(name)s ...; %% is a literal percent.
_PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?[sbt]|%%")
_PARAM = re.compile(r"\$\d+")
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_LIST = r"\(\s*\?(?:\s*,\s*\?)*\s*\)"
_IN_LIST = re.compile(r"(?i)\bIN\s*" + _LIST)
_ARRAY = re.compile(r"(?i)\bARRAY\s*\[\s*\?(?:\s*,\s*\?)*\s*\]")
_ROWS = re.compile(r"(" + _LIST + r")(?:\s*,\s*" + _LIST + r")+")
_SPACE = re.compile(r"\s+")
_COMMA = re.compile(r"\s*,\s*")
_WORD = re.compile(r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*([A-Za-z]+)", re.S)
_KEYWORDS = frozenset(k.upper() for k in (*RESERVED_KEYWORDS, *UNRESERVED_KEYWORDS))


def _psycopg_to_dollar(query: str) -> str:
    names: dict[str, int] = {}

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "%%":
            return "%"
        key = m.group(1) or f"#{len(names)}"
        return f"${names.setdefault(key, len(names) + 1)}"

    return _PLACEHOLDER.sub(repl, query)


def _shape(query: str, has_params: bool) -> Shape:
    sql = _psycopg_to_dollar(query) if has_params and "%" in query else query
    if len(sql) <= MAX_PARSED:
        try:
            normalized = parser.normalize(sql)
            shape = _BY_NORMALIZED.get(normalized)
            if shape is None:
                shape = _from_normalized(normalized)
                _BY_NORMALIZED.put(normalized, shape, len(normalized) + len(shape.text or "") + len(shape.summary))
            return shape
        except Exception:  # noqa: BLE001 - any parser failure means: summary only
            pass
    keyword = _leading_keyword(query)
    return Shape(keyword or "UNKNOWN", None, keyword, None)


def _from_normalized(normalized: str) -> Shape:
    """Second cache level (by normalized text): statements differing only in literals share one."""
    text = _COMMENT.sub(" ", normalized)
    text = _PARAM.sub("?", text)
    text = _IN_LIST.sub("IN (?)", text)
    text = _ARRAY.sub("ARRAY[?]", text)
    text = _ROWS.sub(r"\1", text)
    text = _COMMA.sub(", ", _SPACE.sub(" ", text)).strip().rstrip(";").strip()
    operation, tables = _operation_and_tables(normalized, text)
    summary = " ".join([operation, *tables]) if operation else (tables[0] if tables else "UNKNOWN")
    collection = tables[0] if len(tables) == 1 else None
    return Shape(summary[:MAX_SUMMARY], text[:MAX_TEXT], operation, collection)


class _Relations(Visitor):
    """Table names in order of appearance, without CTE names."""

    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []
        self.ctes: set[str] = set()

    def visit_CommonTableExpr(self, ancestors, node) -> None:  # noqa: N802 - pglast's naming
        self.ctes.add(node.ctename)

    def visit_RangeVar(self, ancestors, node) -> None:  # noqa: N802
        self.found.append((node.location or 0, node.relname))

    @property
    def names(self) -> list[str]:
        return [name for _, name in sorted(self.found)]


def _operation_and_tables(normalized: str, text: str) -> tuple[str | None, list[str]]:
    statements = parser.parse_sql(normalized)
    if not statements:
        return None, []
    stmt = statements[0].stmt
    kind = type(stmt).__name__
    if kind == "DeclareCursorStmt":  # a server-side cursor: describe what it selects
        stmt = stmt.query
        kind = type(stmt).__name__
    operation = _OPERATIONS.get(kind) or _leading_words(text)
    relations = _Relations()
    relations(stmt)
    target = getattr(stmt, "relation", None)  # INSERT/UPDATE/DELETE/MERGE/COPY: their table first
    tables: list[str] = [target.relname] if target is not None and hasattr(target, "relname") else []
    for name in relations.names:
        if name not in relations.ctes and name not in tables:
            tables.append(name)
    return operation, tables[:MAX_TABLES]


def _leading_words(text: str) -> str | None:
    """``CREATE TABLE``, ``SET``, ``BEGIN``: up to two leading keywords of a utility statement."""
    words = []
    for word in text.split(" ", 2)[:2]:
        if word.upper() not in _KEYWORDS:
            break
        words.append(word.upper())
    return " ".join(words) or None


def _leading_keyword(query: str) -> str | None:
    m = _WORD.match(query)
    word = m.group(1).upper() if m else None
    return word if word in _KEYWORDS else None


def parameterized(query: str, has_params: bool = False) -> str | None:
    """``query`` with every literal (and psycopg placeholder) as ``$n``: what may be planned without
    ever sending a value. None when the parser rejects it."""
    sql = _psycopg_to_dollar(query) if has_params and "%" in query else query
    if len(sql) > MAX_PARSED:
        return None
    try:
        return _COMMENT.sub(" ", parser.normalize(sql)).strip().rstrip(";")
    except Exception:  # noqa: BLE001 - unparsable: not planned
        return None
