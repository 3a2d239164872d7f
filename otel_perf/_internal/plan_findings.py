"""Findings a person can act on, read from a PostgreSQL plan (``EXPLAIN (VERBOSE, FORMAT JSON)``).

Pure functions over the plan and a little catalog knowledge (table sizes, columns, indexes), so
they are easy to test and never touch a connection. Three findings:

- ``seq_scan``: a sequential scan over a large table whose filter keeps a small share of it, with
  the index to create (the filter's plain columns: equality first, then one range column);
- ``row_estimate``: the planner expected far fewer (or more) rows than the statement returned;
- ``spill``: a sort or hash whose estimated size exceeds ``work_mem`` (it goes to disk).

No literal value ever appears in a finding: the plan is of a statement whose literals were all
turned into parameters, and a finding is built only from identifiers checked against the catalog
and from numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

LARGE_TABLE = 10_000  # rows: below this a sequential scan is cheap whatever the filter
SELECTIVE = 0.05  # a filter keeping at most this share of a large table deserves an index
ESTIMATE_FACTOR = 10  # estimate and result this many times apart
ESTIMATE_MIN_ROWS = 100  # ...and the larger of the two at least this big
MAX_INDEX_COLUMNS = 3
# Per-row memory beyond the row's width: sort tuple slot + tuple header, hash entry + header.
SORT_OVERHEAD = 56
HASH_OVERHEAD = 48


@dataclass(frozen=True)
class Table:
    """What the catalog says about one table."""

    rows: float  # pg_class.reltuples (negative: never analysed)
    columns: frozenset[str]
    index_leads: frozenset[str]  # first column of each existing index
    distinct: dict[str, float] = field(default_factory=dict)  # pg_stats.n_distinct (< 0: share of rows)

    def equality_share(self, columns: list[str]) -> float:
        """Share of rows one value of each column keeps (independent columns; no statistics: 0)."""
        if not any(self.distinct.get(c) for c in columns):
            return 0.0
        share = 1.0
        for column in columns:
            n = self.distinct.get(column)
            if n:
                share *= 1.0 / (n if n > 0 else -n * max(self.rows, 1.0))
        return share


@dataclass(frozen=True)
class Finding:
    kind: str  # seq_scan | row_estimate | spill
    relation: str | None
    message: str
    suggestion: str | None = None
    columns: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict:
        return {"kind": self.kind, "relation": self.relation, "message": self.message,
                "suggestion": self.suggestion, "columns": list(self.columns)}


Catalog = Callable[[str, str], "Table | None"]  # (schema, table) -> Table


def findings(plan: dict, catalog: Catalog, work_mem: int, hash_mem_multiplier: float = 2.0,
             returned_rows: int | None = None) -> list[Finding]:
    """Findings of one plan (the ``[0]`` element of EXPLAIN's JSON); ``returned_rows``: what the
    application's run of the statement returned, when known."""
    root = plan["Plan"]
    out: list[Finding] = []
    for node, parent in _walk(root, None):
        kind = node.get("Node Type")
        if kind == "Seq Scan":
            found = _seq_scan(node, catalog)
        elif kind == "Sort" and (parent or {}).get("Node Type") != "Limit":  # top-N sorts stay in memory
            found = _spill(node, "sort", SORT_OVERHEAD, work_mem)
        elif kind == "Hash":
            found = _spill(node, "hash", HASH_OVERHEAD, int(work_mem * hash_mem_multiplier))
        else:
            found = None
        if found is not None and found not in out:
            out.append(found)
    if returned_rows is not None and root.get("Node Type") != "Limit":  # a LIMIT's estimate is not the result's
        found = _estimate(root, returned_rows, out)
        if found is not None:
            out.append(found)
    return out


def _walk(node: dict, parent: dict | None) -> Iterator[tuple[dict, dict | None]]:
    yield node, parent
    for child in node.get("Plans", ()):
        yield from _walk(child, node)


def _relation(node: dict) -> str:
    schema = node.get("Schema")
    return f"{schema}.{node['Relation Name']}" if schema else node["Relation Name"]


def _seq_scan(node: dict, catalog: Catalog) -> Finding | None:
    condition = node.get("Filter")
    schema, name = node.get("Schema") or "public", node.get("Relation Name")
    if not condition or not name:
        return None
    table = catalog(schema, name)
    if table is None or table.rows < LARGE_TABLE:
        return None
    kept = float(node.get("Plan Rows", 0))
    share = kept / table.rows
    if share > SELECTIVE:
        return None
    relation = _relation(node)
    columns = indexable_columns(condition, node.get("Alias") or name, table.columns)
    what = (f"Sequential scan of {relation} (~{table.rows:,.0f} rows) to keep ~{kept:,.0f} "
            f"({share:.1%}) through its filter")
    if not columns:
        return Finding("seq_scan", relation, what + "; no plain column of the filter can use an index "
                       "(an expression or a pattern match: consider an expression index)")
    if columns[0] in table.index_leads:
        return None  # an index exists: the planner chose the scan with it in view
    equal = [c for c in columns if c not in ranged_of(condition, node.get("Alias") or name, columns)]
    if equal and table.equality_share(equal) > SELECTIVE:  # the filter is selective elsewhere (a pattern, ...)
        return Finding("seq_scan", relation, what + f"; the indexable columns ({', '.join(columns)}) alone keep "
                       f"~{table.equality_share(equal):.0%} of it, so a plain index would not help much")
    suggestion = f"CREATE INDEX ON {relation} ({', '.join(_ident(c) for c in columns)});"
    return Finding("seq_scan", relation, f"{what}: an index on ({', '.join(columns)}) lets it read only those rows",
                   suggestion, tuple(columns))


_OPERATOR_AFTER = re.compile(r"\s*(=|<>|!=|<=|>=|<|>|~~\*?|!~~|IS\b)")
_OPERATOR_BEFORE = re.compile(r"(=|<>|!=|<=|>=|<|>)\s*$")
_FUNCTION_BEFORE = re.compile(r"\w\($")


def indexable_columns(condition: str, alias: str, columns: frozenset[str]) -> list[str]:
    """Columns of ``alias`` compared plainly in ``condition``: equality ones first, then one range.

    Only names that are columns of the table are returned: nothing else of the text can leak.
    """
    equal: list[str] = []
    ranged: list[str] = []
    pattern = re.compile(r'(?<![\w."])"?' + re.escape(alias) + r'"?\."?(\w+)"?')
    for m in pattern.finditer(condition):
        column = m.group(1)
        if column not in columns or column in equal or column in ranged:
            continue
        before = condition[: m.start()]
        if _FUNCTION_BEFORE.search(before):  # lower(t.name): a plain index does not serve it
            continue
        after = condition[m.end():]
        if after.startswith(")::") or after.startswith("::"):
            continue  # cast column: the index on the column may not serve it
        op = _OPERATOR_AFTER.match(after)
        op_before = _OPERATOR_BEFORE.search(before.rstrip("( "))
        symbol = op.group(1) if op else (op_before.group(1) if op_before else None)
        if symbol in ("=", "IS"):
            equal.append(column)
        elif symbol in ("<", ">", "<=", ">="):
            ranged.append(column)
    return (equal + ranged[:1])[:MAX_INDEX_COLUMNS]


def ranged_of(condition: str, alias: str, columns: list[str]) -> set[str]:
    """Which of ``columns`` are compared by a range (not equality) in ``condition``."""
    out = set()
    for column in columns:
        m = re.search(r'"?' + re.escape(alias) + r'"?\."?' + re.escape(column) + r'"?\s*(<=|>=|<|>)', condition)
        if m:
            out.add(column)
    return out


def _spill(node: dict, what: str, overhead: int, limit: int) -> Finding | None:
    rows, width = float(node.get("Plan Rows", 0)), int(node.get("Plan Width", 0))
    size = rows * (width + overhead)
    if limit <= 0 or size <= limit:
        return None
    source = _first_relation(node)
    keys = node.get("Sort Key") if what == "sort" else None
    by = f" by {len(keys)} key{'s' if len(keys) != 1 else ''}" if keys else ""
    setting = "work_mem" if what == "sort" else "work_mem x hash_mem_multiplier"
    return Finding(
        "spill", source,
        f"A {what}{by} of ~{rows:,.0f} rows (~{_size(size)}) exceeds {setting} ({_size(limit)}): it spills to disk",
        f"SET work_mem = '{_work_mem_for(size)}' for this statement's transaction, or "
        f"{'return fewer rows or sort on an index' if what == 'sort' else 'join fewer or narrower rows'}",
    )


def _estimate(root: dict, returned: int, found: list[Finding]) -> Finding | None:
    expected = float(root.get("Plan Rows", 0))
    high, low = max(expected, returned), max(min(expected, returned), 1.0)
    if high < ESTIMATE_MIN_ROWS or high / low < ESTIMATE_FACTOR:
        return None
    direction = "more" if returned > expected else "fewer"
    relation = _first_relation(root)
    scans = [f for f in found if f.kind == "seq_scan"]
    suggestion = f"ANALYZE {relation};" if relation else "ANALYZE the tables involved;"
    suggestion += " if the filter combines correlated columns, CREATE STATISTICS (dependencies, mcv) on them"
    return Finding(
        "row_estimate", relation,
        f"The planner expected ~{expected:,.0f} rows; the statement returned {returned:,} "
        f"({high / low:,.0f}x {direction}): plans built on this estimate pick the wrong joins and memory",
        suggestion, scans[0].columns if scans else (),
    )


def _first_relation(node: dict) -> str | None:
    for child, _ in _walk(node, None):
        if child.get("Relation Name"):
            return _relation(child)
    return None


def _ident(name: str) -> str:
    return name if re.fullmatch(r"[a-z_][a-z0-9_]*", name) else '"' + name.replace('"', '""') + '"'


def _size(n: float) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} kB"


def _work_mem_for(size: float) -> str:
    mb = 1
    while mb * 1024 * 1024 < size * 1.5:
        mb *= 2
    return f"{mb}MB"
