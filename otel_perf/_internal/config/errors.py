"""The one exception the public API raises: bad explicit configuration."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

# The exit status of every command (`otel-perf run` and the tools) on bad configuration.
EXIT_STATUS = 2


class ConfigError(ValueError):
    """Invalid configuration. ``str(err)`` is one line naming the setting and the accepted values."""

    def __init__(self, message: str, accepted: Iterable[str] = ()):
        accepted = list(accepted)
        if accepted:
            message = f"{message} (accepted: {', '.join(accepted)})"
        super().__init__(message)


def unknown(label: str, key: str, known: Iterable[str]) -> ConfigError:
    """``label: unknown ... 'key' (did you mean 'x'?)`` with the accepted names."""
    import difflib  # only for a bad name

    known = sorted(known)
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{label} {key!r}{hint}", accepted=known)
