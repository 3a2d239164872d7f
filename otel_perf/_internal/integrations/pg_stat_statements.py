"""pg_stat_statements as metrics: calls, execution time and rows per normalized statement.

A daemon thread reads the top N statements (by total execution time) every interval over its own
connection, with instrumentation suppressed so its queries are not traced. PostgreSQL's counters
are cumulative and can be reset (``pg_stat_statements_reset()``, whole or per statement, or an
entry evicted and recreated); we export *deltas* into OpenTelemetry counters:
- a full reset is seen in ``pg_stat_statements_info.stats_reset`` -> the new values are the delta;
- a per-statement reset or eviction shows as a counter going down -> the new value is the delta.
So the exported counters never go backwards and no call is counted twice. (A per-statement reset
followed by more calls than before, between two polls, is indistinguishable from no reset on
PostgreSQL 15; PostgreSQL 17's ``stats_since`` would settle it.)

One poller per database exports, however many workers and replicas run one: the statistics are
the server's, so N exporters would make N-fold totals. Each poll first takes (or keeps) a
session-level advisory lock in the polled database; only its holder reads and exports. When the
holder dies its session ends, the lock is released and the next poller to try takes over. A poller
that takes over from another treats its first read as the starting point (the old holder exported
up to its last poll; what ran between that poll and its death is not counted twice, it is lost).
Only the polled database's statements are read, so pollers of different databases never overlap.

Labels stay bounded: the database, the statement's short summary and pg_stat_statements' own
``queryid``; never the statement text (up to kilobytes, one series each). The text is one lookup
away: ``SELECT query FROM pg_stat_statements WHERE queryid = <otel_perf.db.query_id>``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

from otel_perf._internal import catalogue
from otel_perf._internal.query_shapes import shape_of

log = logging.getLogger("otel_perf")

MAX_TRACKED = 20_000  # remembered statements (for deltas); oldest forgotten beyond this
CONNECT_TIMEOUT = 5  # seconds to connect, and per statement
LOCK_KEY = 0x6F74656C70657266  # advisory lock id ("otelperf"): one exporting poller per database
QUERY_ID = "otel_perf.db.query_id"  # pg_stat_statements' queryid, the bounded statement identity

_QUERY = """
SELECT s.userid, s.dbid, s.queryid, s.toplevel, d.datname, s.query, s.calls, s.total_exec_time, s.rows
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE s.queryid IS NOT NULL AND d.datname = current_database()
ORDER BY s.total_exec_time DESC
LIMIT %s
"""


class StatStatementsUnavailable(RuntimeError):
    """pg_stat_statements cannot be read; the message says why and how to fix it."""


class StatStatements:
    """Poll pg_stat_statements at ``dsn``; ``poll()`` once, or ``start()`` a background thread."""

    def __init__(self, meter: Any, dsn: str, interval: float = 60.0, top: int = 50):
        self.dsn, self.interval, self.top = dsn, interval, top
        self.calls = _counter(meter, catalogue.DB_STATEMENT_CALLS)
        self.time = _counter(meter, catalogue.DB_STATEMENT_TIME)
        self.rows = _counter(meter, catalogue.DB_STATEMENT_ROWS)
        m = catalogue.DB_STATEMENT_MEAN
        self.mean = meter.create_gauge(m.name, unit=m.unit, description=m.description)
        self._last: dict[tuple, tuple[int, float, int]] = {}
        self._reset_at: Any = None
        self._conn: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed = False
        self.holder = False  # whether this poller holds the lock (exports)
        self._waited = False  # another poller held the lock when this one tried

    def poll(self) -> int:
        """Read once and export the deltas; returns the number of statements read (0 when another
        poller holds the lock).

        Raises StatStatementsUnavailable when the extension is missing or not preloaded.
        """
        token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            read = self._read()
        finally:
            otel_context.detach(token)
        if read is None:
            return 0
        rows, reset_at, took_over = read
        if took_over:  # the previous holder exported up to here: start from this read
            self._last = {(r[0], r[1], r[2], r[3]): (r[6], r[7], r[8]) for r in rows}
            self._reset_at = reset_at
            return len(rows)
        full_reset = self._reset_at is not None and reset_at != self._reset_at
        if full_reset:
            self._last.clear()
        self._reset_at = reset_at
        for userid, dbid, queryid, toplevel, datname, query, calls, total_ms, nrows in rows:
            key = (userid, dbid, queryid, toplevel)
            before = self._last.pop(key, None)
            self._last[key] = (calls, total_ms, nrows)  # re-inserted: dict order = least recently seen first
            if before is None or calls < before[0]:  # new to us, or reset/evicted since the last poll
                d_calls, d_ms, d_rows = calls, total_ms, nrows
            else:
                d_calls, d_ms, d_rows = calls - before[0], total_ms - before[1], nrows - before[2]
            if d_calls <= 0:
                continue
            attrs = self._attributes(datname, queryid, query)
            self.calls.add(d_calls, attrs)
            self.time.add(max(d_ms, 0.0) / 1000.0, attrs)
            self.rows.add(max(d_rows, 0), attrs)
            self.mean.set(max(d_ms, 0.0) / 1000.0 / d_calls, attrs)
        while len(self._last) > MAX_TRACKED:
            self._last.pop(next(iter(self._last)))
        return len(rows)

    def _attributes(self, datname: str, queryid: int, query: str) -> dict[str, str]:
        # The summary comes from our sanitizer: pg_stat_statements keeps some utility statements
        # (e.g. ``ALTER ROLE ... PASSWORD '...'``) verbatim.
        return {"db.system.name": "postgresql", "db.namespace": datname,
                "db.query.summary": shape_of(query or "").summary, QUERY_ID: str(queryid)}

    def _read(self) -> tuple[list[tuple], Any, bool] | None:
        """(rows, stats_reset, whether this poller just took over from another), or None when
        another poller holds the lock."""
        import psycopg

        if self._conn is None or self._conn.closed:
            self.holder = False  # a new session holds no lock
            # Bounded: a hanging server must not hold this thread (and the exit) for long.
            self._conn = psycopg.connect(self.dsn, autocommit=True, application_name="otel-perf stat_statements",
                                         connect_timeout=CONNECT_TIMEOUT,
                                         options=f"-c statement_timeout={CONNECT_TIMEOUT * 1000}")
            self._check()
        took_over = False
        if not self.holder:
            self.holder = bool(self._conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0])
            if not self.holder:
                self._waited = True
                return None
            took_over, self._waited = self._waited, False
        try:
            rows = self._conn.execute(_QUERY, (self.top,)).fetchall()
            reset_at = self._conn.execute("SELECT stats_reset FROM pg_stat_statements_info").fetchone()[0]
        except psycopg.errors.ObjectNotInPrerequisiteState as exc:
            raise StatStatementsUnavailable(
                f"pg_stat_statements is not loaded on the server ({exc.diag.message_primary}): add it to "
                "shared_preload_libraries and restart PostgreSQL"
            ) from None
        return rows, reset_at, took_over

    def _check(self) -> None:
        found = self._conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone()
        if not found:
            db = self._conn.info.dbname
            self._conn.close()
            raise StatStatementsUnavailable(
                f"pg_stat_statements is not installed in database {db!r}: run CREATE EXTENSION "
                "pg_stat_statements there (and preload it via shared_preload_libraries)"
            )

    # -- background polling -------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="otel-perf-pg-stat-statements", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling without waiting for a poll in flight (the daemon thread ends on its own)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(0.2)
            if self._thread.is_alive():
                return  # mid-poll: closing its connection from here is not safe; it closes on exit
        if self._conn is not None:
            try:
                self._conn.close()  # ends the session: the lock passes to the next poller
            except Exception:
                pass
        self.holder = False

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
                self._failed = False
            except StatStatementsUnavailable as exc:
                log.warning("otel-perf: pg_stat_statements metrics are off: %s", exc)
                return
            except Exception as exc:  # database down: say so once, keep trying
                if not self._failed:
                    log.warning("otel-perf: could not read pg_stat_statements (%s); retrying", exc)
                self._failed = True
                if self._conn is not None:
                    try:
                        self._conn.close()
                    except Exception:
                        pass
            self._stop.wait(self.interval)
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass


def _counter(meter: Any, metric: catalogue.Metric) -> Any:
    return meter.create_counter(metric.name, unit=metric.unit, description=metric.description)
