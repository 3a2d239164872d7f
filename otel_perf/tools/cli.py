"""The ``otel-perf`` command. ``run`` needs only the standard library (lean install); the other
subcommands live beside what they drive, load only when called, and need the ``tools`` extra."""

from __future__ import annotations

import sys

_COMMANDS = {
    "validate": "otel_perf.tools.validate:cli",
    "generate": "otel_perf.tools.generate:cli",
    "load": "otel_perf.tools.load:cli",
    "baseline": "otel_perf.tools.baseline:cli",
    "doctor": "otel_perf.tools.doctor:cli",
    "stack": "otel_perf.tools.stack_folder:cli",
    "slo": "otel_perf.tools.slo_formats:cli",
    "report": "otel_perf.tools.report:cli",
    "bottlenecks": "otel_perf.tools.bottlenecks:cli",
}
HELP_OPTIONS = ["-h", "--help"]
TOOLS_EXTRA = "pip install 'otel-perf[tools]'"


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["run"]:
        from otel_perf.auto.run import main as run

        return run(args[1:])
    try:
        import click  # noqa: F401
    except ImportError:
        print(f"otel-perf: the {args[0] if args else ''} command needs the tools extra: {TOOLS_EXTRA} "
              "(`otel-perf run` works without it)", file=sys.stderr)
        return 2
    return _group()(args=args, prog_name="otel-perf")


def _group():
    import importlib

    import click

    class LazyGroup(click.Group):
        def list_commands(self, ctx: click.Context) -> list[str]:
            return sorted([*_COMMANDS, "run"])

        def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
            if name == "run":
                return _run_help_command()
            target = _COMMANDS.get(name)
            if target is None:
                return None
            module, _, attr = target.partition(":")
            try:
                return getattr(importlib.import_module(module), attr)
            except ImportError as exc:
                raise click.ClickException(f"{name} needs {exc.name}: {TOOLS_EXTRA}") from None

    @click.group(cls=LazyGroup, context_settings={"help_option_names": HELP_OPTIONS}, epilog="""\b
Examples:
  otel-perf run uvicorn app:app
  otel-perf doctor
  otel-perf stack ./monitoring --config performance.yml

\b
Shell completion (bash; zsh and fish likewise with zsh_source / fish_source):
  eval "$(_OTEL_PERF_COMPLETE=bash_source otel-perf)"
""")
    @click.version_option(package_name="otel-perf")
    def main() -> None:
        """OpenTelemetry for Python performance SLAs.

        Every command takes -h/--help; - as a file name means stdout; diagnostics go to stderr;
        invalid configuration exits with status 2.
        """

    return main


def _run_help_command():
    import click

    from otel_perf.auto.run import USAGE

    # Listed in `otel-perf --help`; the real `run` is dispatched before click (see main).
    @click.command("run", short_help="Run a program with telemetry.", help=USAGE.split("\n\n", 1)[1].split("\nOptions:")[0],
                   context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
    @click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
    def run(command: tuple[str, ...]) -> None:
        from otel_perf.auto.run import main as run_main

        raise SystemExit(run_main(list(command)))

    return run


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
