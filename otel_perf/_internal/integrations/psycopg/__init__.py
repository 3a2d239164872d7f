"""Database performance telemetry for psycopg 3 (sync and async, pools, COPY, server-side cursors).

Per statement: one CLIENT span with the stable database semantic conventions and a sanitized
query text (``query_shapes``), ``db.client.operation.duration`` with the SLA's bucket boundaries,
slow marking against the SLO (per-class thresholds via ``query_class``), and N+1 detection per
HTTP request (``statements``), patched in by ``patches``. ``install(telemetry)`` also switches on
its neighbours, which the same ``psycopg`` name disables: psycopg_pool metrics (``..pool``) and
the optional pg_stat_statements reader (``..pg_stat_statements``). The work (and the parser's
import) happens only when the program imports psycopg.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from otel_perf._internal.context import REQUEST

log = logging.getLogger("otel_perf")

_telemetry: Any = None
_poller: Any = None

__all__ = ["install", "uninstall"]


def install(telemetry: Any) -> None:
    """Record psycopg statements into ``telemetry`` (idempotent; a new Telemetry replaces the old)."""
    global _telemetry, _poller
    if telemetry is _telemetry:
        return
    uninstall()
    _telemetry = telemetry
    from otel_perf._internal.patching import when_imported

    when_imported("psycopg", _activate)
    when_imported("psycopg_pool", _activate_pool)
    settings = telemetry.settings
    if settings.db_stat_statements_dsn:
        from otel_perf._internal.integrations.pg_stat_statements import StatStatements

        _poller = StatStatements(
            telemetry.meter_provider.get_meter("otel_perf.db"), settings.db_stat_statements_dsn,
            settings.db_stat_statements_interval, settings.db_stat_statements_top,
        )
        _poller.start()


def uninstall() -> None:
    """Stop recording and restore psycopg's and psycopg_pool's own methods."""
    global _telemetry, _poller
    _telemetry = None
    if _poller is not None:
        _poller.stop()
        _poller = None
    for name in (f"{__name__}.patches", "otel_perf._internal.integrations.pool"):
        module = sys.modules.get(name)  # only if activated: never import psycopg's side just to undo it
        if module is not None:
            plans = getattr(module.ACTIVE, "plans", None)
            if plans is not None:
                plans.stop()
            module.ACTIVE = None
            module.unpatch()


def _activate(psycopg: Any) -> None:
    if _telemetry is None:
        return
    from otel_perf._internal.integrations.psycopg import patches, statements

    if patches.ACTIVE is None:
        patches.ACTIVE = statements.Recorder(_telemetry, REQUEST)
    patches.patch_psycopg(psycopg)


def _activate_pool(psycopg_pool: Any) -> None:
    if _telemetry is None:
        return
    from otel_perf._internal.integrations import pool

    if pool.ACTIVE is None:
        pool.ACTIVE = pool.PoolMetrics(_telemetry.meter_provider.get_meter("otel_perf.db"))
    pool.patch_pool(psycopg_pool)
