"""The one exception the public API raises: bad explicit configuration."""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(ValueError):
    """Invalid configuration. ``str(err)`` is one line naming the setting and the accepted values."""

    def __init__(self, message: str, accepted: Iterable[str] = ()):
        accepted = list(accepted)
        if accepted:
            message = f"{message} (accepted: {', '.join(accepted)})"
        super().__init__(message)
