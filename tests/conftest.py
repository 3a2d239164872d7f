"""Fixtures for the real servers live in tests/fixtures/, one module per server."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.prometheus",
    "tests.fixtures.chromium",
    "tests.fixtures.otlp",
    "tests.fixtures.otelcol",
]
