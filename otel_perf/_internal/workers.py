"""The processes of one service: which one supervises, and the name they all share.

A pre-fork or multi-process server starts one supervisor that serves nothing (gunicorn's master,
uvicorn with ``--workers N`` or ``--reload``) and worker processes that serve requests (forked by
gunicorn, spawned by uvicorn). Telemetry belongs in the workers; the supervisor only names the
service and, at exit, merges the workers' local summaries into one.

The default ``service.name`` is decided once, by the first process, and handed to every other
process of the service through the environment, so workers never fall back to
``unknown_service:python`` and a launcher's name (``uvicorn``, ``gunicorn``) never becomes every
unnamed service's ``job``.
"""

from __future__ import annotations

import os
import re
import sys

DEFAULT_ENV = "OTEL_PERF_DEFAULT_SERVICE_NAME"  # decided by the first process, inherited by the rest
_NAMED_ENV = "OTEL_PERF_NAME_ANNOUNCED"
_SERVERS = frozenset({"uvicorn", "gunicorn", "hypercorn", "granian", "daphne"})
_APP_SPEC = re.compile(r"^([A-Za-z_][\w.]*):[A-Za-z_][\w.]*(\(.*\))?$")  # "pkg.module:app"
# Names that say nothing about the service: fall back to the directory the service runs in.
_GENERIC = frozenset({"app", "main", "src", "api", "server", "asgi", "wsgi", "application", "service", "web"})


def program() -> tuple[str, list[str]]:
    """The program being run (``uvicorn``, ``gunicorn``, a script's or module's name) and its arguments,
    whether it was started as ``uvicorn ...``, ``python -m uvicorn ...`` or ``python app.py``."""
    argv = list(getattr(sys, "orig_argv", None) or sys.argv)
    if argv and os.path.basename(argv[0]).startswith("python"):
        argv = argv[1:]
        while argv and argv[0].startswith("-") and argv[0] not in ("-m", "-c"):
            argv = argv[1:]  # interpreter options such as -u, -X dev
        if argv[:1] == ["-m"] and len(argv) > 1:
            return argv[1].removesuffix(".__main__"), argv[2:]
        if argv[:1] == ["-c"]:
            return "-c", argv[1:]  # the code first
    if not argv:
        return "", []
    return os.path.splitext(os.path.basename(argv[0]))[0], argv[1:]


def is_supervisor() -> bool:
    """True in a process that starts worker processes and serves no request itself."""
    name, args = program()
    if name == "-c":  # multiprocessing's helpers serve nothing (spawned workers do: spawn_main)
        return bool(args) and args[0].startswith(("from multiprocessing.resource_tracker", "from multiprocessing.forkserver"))
    if name == "gunicorn":
        return _gunicorn_master()
    if name == "uvicorn":
        return "--reload" in args or _uvicorn_workers(args) > 1
    return False


def _uvicorn_workers(args: list[str]) -> int:
    for i, arg in enumerate(args):
        value = args[i + 1] if arg == "--workers" and i + 1 < len(args) else arg.partition("=")[2] if arg.startswith("--workers=") else None
        if value is not None:
            return int(value) if value.isdigit() else 1
    value = os.environ.get("WEB_CONCURRENCY", "")  # uvicorn's default for --workers
    return int(value) if value.isdigit() else 1


def _gunicorn_master() -> bool:
    """gunicorn's master: its parent is not gunicorn (a worker's parent is)."""
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as fh:
            parent = fh.read().split(b"\0")[:3]  # interpreter, -m, gunicorn; or the script alone
    except OSError:
        return True
    return not any(os.path.basename(arg) == b"gunicorn" for arg in parent)


def default_service_name() -> str:
    """The service name when none is configured: the same in every process of one service."""
    inherited = os.environ.get(DEFAULT_ENV)
    if inherited:
        return inherited
    name = _project_name() or _application_name() or "unknown_service:python"
    os.environ[DEFAULT_ENV] = name
    if os.environ.get(_NAMED_ENV) != "1":  # once per service, not once per worker
        os.environ[_NAMED_ENV] = "1"
        print(f"otel-perf: service.name={name} (set OTEL_SERVICE_NAME to choose another)", file=sys.stderr, flush=True)
    return name


def _project_name() -> str | None:
    """``[project] name`` (or Poetry's) of the pyproject.toml in the working directory."""
    try:
        with open("pyproject.toml", encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return None
    section = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[] ")
        elif section in ("project", "tool.poetry"):
            match = re.match(r"""name\s*=\s*["']([^"']+)["']""", line)
            if match:
                return match.group(1)
    return None


def _application_name() -> str | None:
    """The application a server was asked to run (``myshop.asgi:application`` -> ``myshop``), or
    the script or module being run; a generic name (``app``, ``main``) gives the directory's."""
    name, args = program()
    if name in _SERVERS:
        specs = [m.group(1) for m in map(_APP_SPEC.match, args) if m]
        if not specs:
            return None
        name = specs[-1].split(".")[0]
    elif name in ("", "-c"):
        return None
    if name in _GENERIC:
        directory = os.path.basename(os.getcwd())
        if directory and directory.lower() not in _GENERIC:
            return directory
    return name
