"""Fixtures for the real servers live in tests/fixtures/, one module per server."""

import logging

import pytest

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.prometheus",
    "tests.fixtures.chromium",
    "tests.fixtures.otlp",
    "tests.fixtures.otelcol",
]


@pytest.fixture(autouse=True)
def _otel_perf_logger_as_found():
    """providers.start() sends otel-perf's own logger to stderr only (not propagated): undo that
    after each test so later tests' ``caplog`` sees it again."""
    log = logging.getLogger("otel_perf")
    handlers, propagate, level = list(log.handlers), log.propagate, log.level
    yield
    log.handlers[:], log.propagate, log.level = handlers, propagate, level
