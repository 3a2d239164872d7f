"""The ``otel-perf`` command. ``run`` needs only the standard library (lean install); the other
subcommands live beside what they drive, load only when called, and need the ``tools`` extra."""

from __future__ import annotations

import sys

_COMMANDS = {
    "validate": "otel_perf.tools.validate:cli",
    "generate": "otel_perf.tools.generate:cli",
    "load": "otel_perf.tools.load:cli",
    "baseline": "otel_perf.tools.baseline:cli",
    "bottlenecks": "otel_perf.tools.bottlenecks:cli",
}
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

    @click.group(cls=LazyGroup)
    @click.version_option(package_name="otel-perf")
    def main() -> None:
        """OpenTelemetry for Python performance SLAs."""

    return main


def _run_help_command():
    import click

    from otel_perf.auto.run import USAGE

    # Listed in `otel-perf --help`; the real `run` is dispatched before click (see main).
    @click.command("run", short_help="Run a program with telemetry.", help=USAGE.split("\n\n")[1],
                   context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
    @click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
    def run(command: tuple[str, ...]) -> None:
        from otel_perf.auto.run import main as run_main

        raise SystemExit(run_main(list(command)))

    return run


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
