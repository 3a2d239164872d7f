"""``otel-perf run COMMAND...``: validate the configuration once, then become COMMAND with the
bootstrap ``sitecustomize`` on PYTHONPATH. Standard library only: works with the lean install and
starts fast (it runs before every instrumented program).

A Python program validates the configuration itself, first thing, in the same words and with the
same exit status (``otel_perf.auto.boot``), before it can start any worker: for one, this process
leaves the settings alone (importing them is a third of its start-up) and only checks that the
program exists. Any other command (a shell script that starts several Python processes, an
interpreter run with options that may skip ``sitecustomize``) is validated here, once.
"""

from __future__ import annotations

import os
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
    program = _which(argv[0])
    if program is None or not boots_itself(program, argv):
        from otel_perf._internal.config.errors import EXIT_STATUS, ConfigError
        from otel_perf._internal.config.settings import Settings

        try:
            Settings.resolve()  # fail here, once, rather than in every worker
        except ConfigError as exc:
            return _fail(f"invalid configuration: {exc}", EXIT_STATUS)
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


def _which(command: str) -> str | None:
    """``shutil.which`` (POSIX), without importing shutil and its compression modules."""

    def runnable(path: str) -> bool:
        return os.path.exists(path) and os.access(path, os.F_OK | os.X_OK) and not os.path.isdir(path)

    if os.path.dirname(command):
        return command if runnable(command) else None
    for directory in (os.environ.get("PATH") or os.defpath).split(os.pathsep):
        path = os.path.join(directory, command)
        if directory and runnable(path):
            return path
    return None


_PYTHON_OPTIONS = ("-u", "-B", "-O", "-OO", "-q", "-b", "-bb", "-W", "-X")  # none skips sitecustomize


def boots_itself(program: str, argv: list[str]) -> bool:
    """True when ``program`` is this installation's Python (beside the interpreter running this),
    or a script run by it (its ``#!`` line), that will run our ``sitecustomize`` and so validate
    the configuration itself."""
    if _is_python(program):
        for arg in argv[1:]:  # options before the script: -I, -E, -S would skip PYTHONPATH or site
            if arg in ("-c", "-m") or not arg.startswith("-"):
                return True
            if arg not in _PYTHON_OPTIONS:
                return False
        return True
    try:
        with open(program, "rb") as fh:
            first = fh.readline(256)
    except OSError:
        return False
    if not first.startswith(b"#!"):
        return False
    words = first[2:].decode("utf-8", "replace").split()
    if len(words) == 2 and os.path.basename(words[0]) == "env":  # #!/usr/bin/env python3
        words = [_which(words[1]) or ""]
    return len(words) == 1 and _is_python(words[0])


def _is_python(path: str) -> bool:
    name = os.path.basename(path)
    return (name.startswith(("python", "pypy")) and not name.endswith(("-config", ".py"))
            and os.path.dirname(os.path.abspath(path)) == os.path.dirname(os.path.abspath(sys.executable)))


def _fail(message: str, status: int) -> int:
    print(f"otel-perf: {message}", file=sys.stderr, flush=True)
    return status
