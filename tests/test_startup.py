"""Start-up imports only what the program uses: no HTTP library beyond the standard one, no
dependency checker without an upstream instrumentor, no gRPC unless chosen, no logs SDK unless a
logs exporter is on, no SQL parser unless psycopg is imported, no tool library."""

from __future__ import annotations

import json
import subprocess
from importlib.metadata import entry_points

import pytest

from otel_perf._internal.integrations import REPLACED
from tests.fixtures.procs import BIN, env

# (not psutil: the SDK's resources module imports it whenever it is installed)
NEVER = ["requests", "urllib3", "charset_normalizer", "packaging", "grpc", "pglast", "click", "rich",
         "yaml", "opentelemetry.instrumentation.dependencies", "opentelemetry.instrumentation.system_metrics"]
# What the program sees at its first line, and again after a metric export (what an exit does).
PROGRAM = """
import json, sys
from otel_perf._internal.sdk import providers
first = sorted(m for m in sys.modules if m.split('.')[0] in WATCHED or m in WATCHED)
assert providers.current().meter_provider.force_flush(10_000)
after = sorted(m for m in sys.modules if m.split('.')[0] in WATCHED or m in WATCHED)
print(json.dumps([first, after]))
"""


def imported(watched: list[str], **environ: str) -> tuple[list[str], list[str]]:
    program = f"WATCHED = set({watched!r})\n" + PROGRAM
    # The upstream instrumentors the test extra installs (urllib...) are the user's choice: off here.
    upstream = [ep.name for ep in entry_points(group="opentelemetry_instrumentor") if ep.name not in REPLACED]
    environ.setdefault("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", ",".join(upstream))
    result = subprocess.run([str(BIN / "otel-perf"), "run", "python", "-c", program],
                            env=env(OTEL_PERF_SUMMARY="false", **environ), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    first, after = json.loads(result.stdout.strip().splitlines()[-1])
    return first, after


@pytest.fixture
def no_requests_env(monkeypatch, tmp_path):
    # requests stays in use where it would read a proxy or .netrc: none here
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


def test_nothing_unused_is_imported(otlp_http, no_requests_env):
    first, after = imported(NEVER, OTEL_EXPORTER_OTLP_ENDPOINT=otlp_http.endpoint,
                            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    assert first == [] and after == []
    assert otlp_http.points("process.cpu.time")  # the export did happen, over the standard library


def test_logs_sdk_only_with_a_logs_exporter(otlp_http, no_requests_env):
    logs = ["opentelemetry.sdk._logs"]
    common = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_http.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    assert imported(logs, OTEL_LOGS_EXPORTER="none", **common)[0] == []
    assert imported(logs, **common)[0] == logs
