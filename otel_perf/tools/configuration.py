"""The settings as the command-line tools read them: one message and one exit status for bad
configuration, the same as `otel-perf run` (``EXIT_STATUS``)."""

from __future__ import annotations

import click

from otel_perf._internal.config.errors import EXIT_STATUS, ConfigError
from otel_perf._internal.config.settings import Settings


class ConfigurationError(click.ClickException):
    exit_code = EXIT_STATUS

    def format_message(self) -> str:
        return f"invalid configuration: {self.message}"


def load_settings(config: str | None = None) -> Settings:
    """Settings from the environment and ``config`` (else OTEL_PERF_CONFIG)."""
    try:
        return Settings.resolve({"config": config} if config else {})
    except ConfigError as exc:
        raise ConfigurationError(str(exc)) from None
