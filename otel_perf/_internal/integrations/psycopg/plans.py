"""Plans of slow statements, captured off the request path, turned into findings.

When a statement shape is slow, ``PlanCapture.submit`` (on the request path) does a dict lookup
and, at most once per shape per ``db_plan_interval``, a non-blocking put on a bounded queue; a
full queue drops the job (counted). One daemon thread does the rest on a connection of its own
(never the application's connection or transaction), as a read-only session with a statement
timeout and a generic plan:

    PREPARE p AS <the statement with every literal and parameter as $n>;
    EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE p(NULL, ...);   -- plan only: never ANALYZE

so no value of the application's ever reaches the plan (works on PostgreSQL 12+; 16 has
``EXPLAIN (GENERIC_PLAN)`` for the same). Unqualified tables are looked up in the catalog when
the default search_path does not find them. Findings (``plan_findings``) are kept per shape: the
next slow span of that shape carries them as events, and the local summary lists them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

from otel_perf._internal import plan_findings
from otel_perf._internal.plan_findings import Finding, Table
from otel_perf._internal.query_shapes import parameterized

log = logging.getLogger("otel_perf")

QUEUE = 16  # jobs waiting for the planner thread; more are dropped
MAX_SHAPES = 1000  # shapes remembered (last planned, findings); cleared when exceeded
STATEMENT_TIMEOUT_MS = 2000
CONNECT_TIMEOUT = 5
MAX_CONNECTIONS = 4  # one per database the application uses; the oldest is closed beyond this
PLANNABLE = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
FINDING_EVENT = "otel_perf.db.plan_finding"
_NAME = "otel_perf_plan"


@dataclass
class Job:
    key: str  # the shape's key
    shape_text: str  # sanitized text (for the summary)
    query: str  # the application's statement text: kept in memory only, never recorded
    has_params: bool
    conninfo: str
    returned_rows: int | None


class PlanCapture:
    """One per Recorder; ``on_findings(key, shape_text, findings)`` feeds the summary."""

    def __init__(self, interval: float, dsn: str | None = None, on_findings: Any = None):
        self.interval = interval
        self.dsn = dsn
        self.on_findings = on_findings
        self.queue: queue.Queue[Job | None] = queue.Queue(maxsize=QUEUE)
        self.last: dict[str, float] = {}
        self.findings: dict[str, tuple[Finding, ...]] = {}
        self.events: dict[str, tuple[tuple[str, dict], ...]] = {}  # shape key -> span events, built once
        self.planned = self.dropped = self.failed = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connections: dict[str, Any] = {}
        self._warned = False

    # -- the request path: cheap, never blocks ------------------------------------------------

    def submit(self, shape: Any, query: Any, has_params: bool, cursor: Any) -> None:
        key = shape.key
        now = time.monotonic()
        last = self.last.get(key)
        if last is not None and now - last < self.interval:
            return
        if len(self.last) >= MAX_SHAPES:
            self.last.clear()
        self.last[key] = now
        if shape.operation not in PLANNABLE or shape.text is None:
            return
        conn = cursor.connection
        text = query if isinstance(query, str) else _as_text(query, conn)
        rows = cursor.rowcount if shape.operation == "SELECT" and cursor.rowcount >= 0 else None
        job = Job(key, shape.text, text, has_params, self.dsn or _conninfo(conn), rows)
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            self.dropped += 1
            return
        if self._thread is None:
            self._start()

    # -- the planner thread ---------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="otel-perf-plans", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        thread = self._thread
        if thread is not None:
            try:
                self.queue.put_nowait(None)
            except queue.Full:
                pass
            thread.join(timeout)

    def _run(self) -> None:
        # Our own statements must not be recorded (nor planned, nor counted as the app's).
        otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            while True:
                job = self.queue.get()
                if job is None:
                    return
                try:
                    found = self.plan(job)
                except Exception:
                    self.failed += 1
                    if not self._warned:
                        self._warned = True
                        log.warning("otel-perf: could not plan a slow statement (reported once)", exc_info=True)
                    continue
                if found is not None:
                    self._keep(job, found)
        finally:
            for conn in self._connections.values():
                try:
                    conn.close()
                except Exception:
                    pass
            self._connections.clear()

    def _keep(self, job: Job, found: list[Finding]) -> None:
        if len(self.findings) >= MAX_SHAPES:
            self.findings.clear()
            self.events.clear()
        self.findings[job.key] = tuple(found)
        self.events[job.key] = tuple((FINDING_EVENT, _event(f)) for f in found)
        self.planned += 1
        if self.on_findings is not None and found:
            self.on_findings(job.key, job.shape_text, [f.as_dict() for f in found])

    def plan(self, job: Job) -> list[Finding] | None:
        """Plan ``job`` and return its findings (None: the statement cannot be planned generically)."""
        import psycopg

        sql = parameterized(job.query, job.has_params)
        if sql is None:
            return None
        conn = self._connection(job.conninfo)
        try:
            plan = self._explain(conn, sql)
        except psycopg.errors.UndefinedTable:
            if not self._find_schemas(conn, sql):
                return None
            plan = self._explain(conn, sql)
        except (psycopg.errors.IndeterminateDatatype, psycopg.errors.AmbiguousFunction,
                psycopg.errors.UndefinedFunction, psycopg.errors.DatatypeMismatch):
            return None  # some parameter's type cannot be inferred from the text alone
        except psycopg.OperationalError:
            self._connections.pop(job.conninfo, None)
            raise
        work_mem, hash_mult = conn.execute(
            "SELECT pg_size_bytes(current_setting('work_mem')), current_setting('hash_mem_multiplier')::float8"
        ).fetchone()
        tables: dict[tuple[str, str], Table | None] = {}

        def catalog(schema: str, name: str) -> Table | None:
            if (schema, name) not in tables:
                tables[schema, name] = _table(conn, schema, name)
            return tables[schema, name]

        return plan_findings.findings(plan, catalog, int(work_mem), float(hash_mult), job.returned_rows)

    def _connection(self, conninfo: str) -> Any:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        conn = self._connections.get(conninfo)
        if conn is not None and not conn.closed:
            return conn
        while len(self._connections) >= MAX_CONNECTIONS:
            self._connections.pop(next(iter(self._connections))).close()
        params = conninfo_to_dict(conninfo)
        options = params.pop("options", "") or ""
        options += (f" -c statement_timeout={STATEMENT_TIMEOUT_MS} -c default_transaction_read_only=on"
                    " -c plan_cache_mode=force_generic_plan")
        conn = psycopg.connect(make_conninfo(**params), options=options.strip(), autocommit=True,
                               connect_timeout=CONNECT_TIMEOUT, application_name="otel-perf plans",
                               prepare_threshold=None)  # DEALLOCATE ALL below would drop psycopg's own
        self._connections[conninfo] = conn
        return conn

    @staticmethod
    def _explain(conn: Any, sql: str) -> dict:
        conn.execute(f"DEALLOCATE ALL")  # noqa: F541 - nothing of ours may linger
        conn.execute(f"PREPARE {_NAME} AS {sql}")
        (count,) = conn.execute(
            "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = %s", (_NAME,)).fetchone()
        nulls = ", ".join(["NULL"] * (count or 0))
        (plan,) = conn.execute(f"EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE {_NAME}{f'({nulls})' if nulls else ''}").fetchone()
        conn.execute(f"DEALLOCATE {_NAME}")
        return plan[0]

    @staticmethod
    def _find_schemas(conn: Any, sql: str) -> bool:
        """Put the schemas holding the statement's unqualified tables on the search_path."""
        names = _unqualified_tables(sql)
        if not names:
            return False
        rows = conn.execute(
            "SELECT DISTINCT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1", (names,)).fetchall()
        if not rows:
            return False
        conn.execute("SELECT set_config('search_path', %s, false)",
                     (", ".join(_quote(r[0]) for r in rows) + ", public",))
        return True


def _table(conn: Any, schema: str, name: str) -> Table | None:
    row = conn.execute(
        "SELECT c.reltuples,"
        " array(SELECT attname::text FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped),"
        " array(SELECT a.attname::text FROM pg_index i JOIN pg_attribute a"
        "       ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] WHERE i.indrelid = c.oid),"
        " array(SELECT attname::text FROM pg_stats s WHERE s.schemaname = n.nspname AND s.tablename = c.relname),"
        " array(SELECT n_distinct FROM pg_stats s WHERE s.schemaname = n.nspname AND s.tablename = c.relname)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        (schema, name)).fetchone()
    if row is None:
        return None
    return Table(float(row[0]), frozenset(row[1]), frozenset(row[2]), dict(zip(row[3], map(float, row[4]), strict=True)))


def _unqualified_tables(sql: str) -> list[str]:
    from pglast import parser
    from pglast.visitors import Visitor

    class Tables(Visitor):
        def __init__(self) -> None:
            self.names: list[str] = []

        def visit_RangeVar(self, ancestors: Any, node: Any) -> None:  # noqa: N802 - pglast's naming
            if not node.schemaname and node.relname not in self.names:
                self.names.append(node.relname)

    found = Tables()
    for stmt in parser.parse_sql(sql):
        found(stmt.stmt)
    return found.names


def _conninfo(conn: Any) -> str:
    """The application connection's parameters (password included), to open our own."""
    from psycopg.conninfo import make_conninfo

    info = conn.info
    params = dict(info.get_parameters())
    password = getattr(info, "password", None)
    if password:
        params["password"] = password
    if info.host and not info.host.startswith("/") and "host" not in params:
        params["host"] = info.host
    params.setdefault("port", str(info.port))
    params.setdefault("dbname", info.dbname)
    return make_conninfo(**params)


def _event(finding: Finding) -> dict:
    event = {"otel_perf.plan.kind": finding.kind, "otel_perf.plan.message": finding.message}
    if finding.relation:
        event["otel_perf.plan.relation"] = finding.relation
    if finding.suggestion:
        event["otel_perf.plan.suggestion"] = finding.suggestion
    if finding.columns:
        event["otel_perf.plan.columns"] = list(finding.columns)
    return event


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _as_text(query: Any, conn: Any) -> str:
    if isinstance(query, bytes):
        return query.decode("utf-8", "replace")
    as_string = getattr(query, "as_string", None)  # psycopg.sql.Composable
    return as_string(conn) if as_string is not None else str(query)
