"""The ``otel-perf`` command. Subcommands live beside what they drive and load only when called."""

from __future__ import annotations

import importlib
import os
import shutil
import sys

import click

from .errors import ConfigError

_COMMANDS = {
    "run": "otel_perf.cli:run",
    "validate": "otel_perf.validate:cli",
    "generate": "otel_perf.generate:cli",
    "load": "otel_perf.load:cli",
    "baseline": "otel_perf.baseline:cli",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in _COMMANDS if self._find(name) is not None)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._find(name)

    @staticmethod
    def _find(name: str) -> click.Command | None:
        target = _COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        try:
            return getattr(importlib.import_module(module), attr, None)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("otel_perf"):
                return None  # a subcommand this build does not ship
            raise


@click.group(cls=_LazyGroup)
@click.version_option(package_name="otel-perf")
def main() -> None:
    """OpenTelemetry for Python performance SLAs."""


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    short_help="Run a program with telemetry.",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(command: tuple[str, ...]) -> None:
    """Run COMMAND auto-instrumented, e.g. ``otel-perf run uvicorn app:app``.

    The program replaces this process (exit status and signals are its own); configuration comes
    from OTEL_* / OTEL_PERF_* variables and the YAML file named by OTEL_PERF_CONFIG.
    """
    from .settings import Settings

    try:
        Settings.resolve()  # fail here, once, rather than in every worker
    except ConfigError as exc:
        raise click.exceptions.Exit(_fail(f"invalid configuration: {exc}", 2)) from None
    program = shutil.which(command[0])
    if program is None:
        raise click.exceptions.Exit(_fail(f"{command[0]}: command not found", 127))

    bootstrap = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")
    paths = [bootstrap, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    os.environ["OTEL_PERF_BOOTSTRAP"] = "1"
    try:
        os.execv(program, list(command))
    except OSError as exc:
        raise click.exceptions.Exit(_fail(f"{command[0]}: {exc.strerror}", 126)) from None


def _fail(message: str, status: int) -> int:
    click.echo(f"otel-perf: {message}", err=True)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
