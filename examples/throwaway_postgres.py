"""A throwaway PostgreSQL server in a temporary directory, for tests, benchmarks and the example app.

Uses the Debian/Ubuntu server binaries (``/usr/lib/postgresql/<major>/bin``). ``initdb`` and
``pg_ctl`` refuse to run as root, so as root they run as the ``postgres`` user (``runuser``) and the
data directory is chowned to it first. The server listens on 127.0.0.1 on a free port, keeps its
unix socket inside the data directory, preloads ``pg_stat_statements`` and runs with fsync off
(nothing here needs to survive a crash).

    pg = start_postgres()          # or start_postgres("/some/empty/dir")
    psycopg.connect(pg.dsn)        # a fresh database with pg_stat_statements created
    pg.stop()                      # or: with start_postgres() as pg: ...
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

DEFAULT_BIN = "/usr/lib/postgresql/15/bin"


class PostgresUnavailable(RuntimeError):
    """The server binaries are missing or the server did not start (the message says which)."""


@dataclass
class Postgres:
    """A running throwaway server. ``dsn`` is a libpq URI for its fresh database."""

    host: str
    port: int
    user: str
    dbname: str
    directory: str
    bindir: str
    _owned_dir: bool = field(default=False, repr=False)

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def dsn_for(self, dbname: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove a directory we created."""
        _run(self.bindir, "pg_ctl", "-D", self._data, "-m", "immediate", "-w", "stop", check=False)
        if self._owned_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def _data(self) -> str:
        return os.path.join(self.directory, "data")

    def __enter__(self) -> Postgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def find_bindir() -> str | None:
    """The newest Debian PostgreSQL server bin directory (15 preferred), or None."""
    if os.path.exists(os.path.join(DEFAULT_BIN, "initdb")):
        return DEFAULT_BIN
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def start_postgres(directory: str | None = None, *, bindir: str | None = None, dbname: str = "app",
                   timeout: float = 60.0) -> Postgres:
    """Initialise and start a server in ``directory`` (a new temp dir when None); return its handle."""
    bindir = bindir or find_bindir()
    if not bindir:
        raise PostgresUnavailable(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
            "apt-get install postgresql postgresql-contrib"
        )
    owned = directory is None
    directory = directory or tempfile.mkdtemp(prefix="otel-perf-pg-")
    os.chmod(directory, 0o755)
    data = os.path.join(directory, "data")
    user = "postgres"
    if os.geteuid() == 0:  # initdb/pg_ctl refuse root: the server runs as the postgres user
        try:
            shutil.chown(directory, "postgres", "postgres")
        except LookupError:
            raise PostgresUnavailable(
                "running as root needs the 'postgres' user: apt-get install postgresql creates it"
            ) from None
    else:
        user = _current_user()
    _run(bindir, "initdb", "-D", data, "-U", user, "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8",
         "--no-sync")
    port = _free_port()
    with open(os.path.join(data, "postgresql.conf"), "a", encoding="utf-8") as fh:
        fh.write(
            f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{data}'\n"
            "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = all\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 50\n"
        )
    log = os.path.join(directory, "server.log")
    _run(bindir, "pg_ctl", "-D", data, "-l", log, "-w", "-t", str(int(timeout)), "start", log=log)
    pg = Postgres("127.0.0.1", port, user, dbname, directory, bindir, owned)
    try:
        _wait_ready(pg, timeout)
        _run(bindir, "psql", "-X", "-q", "-h", pg.host, "-p", str(port), "-U", user, "-d", "postgres",
             "-c", f'CREATE DATABASE "{dbname}"')
        _run(bindir, "psql", "-X", "-q", "-h", pg.host, "-p", str(port), "-U", user, "-d", dbname,
             "-c", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    except BaseException:
        pg.stop()
        raise
    return pg


def _run(bindir: str, tool: str, *args: str, check: bool = True, log: str | None = None) -> None:
    exe = os.path.join(bindir, tool)
    if not os.path.exists(exe):
        exe = shutil.which(tool) or exe  # psql lives in /usr/bin too
    cmd = [exe, *args]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
    if check and proc.returncode != 0:
        tail = ""
        if log and os.path.exists(log):
            with open(log, encoding="utf-8", errors="replace") as fh:
                tail = "\n" + fh.read()[-2000:]
        raise PostgresUnavailable(f"{tool} failed ({proc.returncode}): {proc.stderr.strip()}{tail}")


def _wait_ready(pg: Postgres, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((pg.host, pg.port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise PostgresUnavailable(f"PostgreSQL did not accept connections on port {pg.port}") from None
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _current_user() -> str:
    import getpass

    return getpass.getuser()
