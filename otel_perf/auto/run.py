"""``otel-perf run COMMAND...``: validate the configuration once, then become COMMAND with the
bootstrap ``sitecustomize`` on PYTHONPATH. Standard library only: works with the lean install and
starts fast (it runs before every instrumented program)."""

from __future__ import annotations

import os
import shutil
import sys

USAGE = """Usage: otel-perf run COMMAND [ARGS]...

  Run COMMAND auto-instrumented. The program replaces this process (exit status and
  signals are its own); configuration comes from OTEL_* / OTEL_PERF_* variables and the
  YAML file named by OTEL_PERF_CONFIG (invalid configuration: exit status 2).

  Examples:
    otel-perf run uvicorn app:app
    otel-perf run gunicorn -k uvicorn.workers.UvicornWorker -w 4 app:app
    OTEL_PERF_CONFIG=performance.yml otel-perf run python app.py

Options:
  -h, --help  Show this message and exit.
"""

SITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site")


def main(argv: list[str]) -> int:
    """Exec ``argv`` instrumented; returns an exit status only when that is impossible."""
    if not argv:
        sys.stderr.write(USAGE + "\nError: Missing argument 'COMMAND...'.\n")
        return 2
    if argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    from otel_perf._internal.config.errors import EXIT_STATUS, ConfigError
    from otel_perf._internal.config.settings import Settings

    try:
        Settings.resolve()  # fail here, once, rather than in every worker
    except ConfigError as exc:
        return _fail(f"invalid configuration: {exc}", EXIT_STATUS)
    program = shutil.which(argv[0])
    if program is None:
        return _fail(f"{argv[0]}: command not found", 127)
    paths = [SITE, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    os.environ["OTEL_PERF_BOOTSTRAP"] = "1"
    try:
        os.execv(program, argv)
    except OSError as exc:
        return _fail(f"{argv[0]}: {exc.strerror}", 126)
    return 0  # not reached


def _fail(message: str, status: int) -> int:
    print(f"otel-perf: {message}", file=sys.stderr, flush=True)
    return status
