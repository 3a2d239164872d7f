"""Start-up imports only what the program uses: no HTTP library beyond the standard one, no
dependency checker without an upstream instrumentor, no gRPC unless chosen, no logs SDK unless a
logs exporter is on, no SQL parser unless psycopg is imported, no tool library, no protobuf at
all on the OTLP/HTTP path, no exporter module before the first export, no ASGI integration before
a framework is imported; and the pieces that make it so (post-import hooks, the entry-point
pre-scan, the front process that leaves validation to a Python program)."""

from __future__ import annotations

import json
import subprocess
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from otel_perf._internal.integrations import REPLACED
from tests.fixtures.procs import BIN, env

# (not psutil: the SDK's resources module imports it whenever it is installed)
NEVER = ["requests", "urllib3", "charset_normalizer", "packaging", "grpc", "pglast", "click", "rich",
         "yaml", "opentelemetry.instrumentation.dependencies", "opentelemetry.instrumentation.system_metrics",
         # the OTLP/HTTP exporters write the wire format themselves; post-import hooks are ours
         "google", "opentelemetry.proto", "opentelemetry.exporter.otlp.proto.common", "wrapt"]
# Not at the program's first line (a program without a web framework never loads them; the
# exporters load with the first export).
NOT_FIRST = ["asyncio", "http.client", "ssl", "otel_perf._internal.integrations.asgi", "otel_perf._internal.profiler",
             "otel_perf._internal.sdk.fast_otlp", "otel_perf._internal.sdk.otlp_http",
             "opentelemetry.exporter.otlp.proto.http", "opentelemetry.propagate"]
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


def test_exporters_and_integrations_wait_until_needed(otlp_http, no_requests_env):
    first, after = imported(NOT_FIRST, OTEL_EXPORTER_OTLP_ENDPOINT=otlp_http.endpoint,
                            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    assert first == []
    assert "otel_perf._internal.sdk.otlp_http" in after and "http.client" in after  # the export did load them
    assert "otel_perf._internal.integrations.asgi" not in after


def test_the_asgi_integration_switches_on_when_a_framework_is_imported(otlp_http, no_requests_env):
    program = ("import sys\n"
               "assert 'otel_perf._internal.integrations.asgi' not in sys.modules\n"
               "import starlette.applications\n"
               "from otel_perf._internal.integrations.asgi import middleware\n"
               "assert middleware.ACTIVE is not None\n"
               "assert getattr(starlette.applications.Starlette.build_middleware_stack, '_otel_perf', False)\n"
               "print('switched on')")
    result = subprocess.run([str(BIN / "otel-perf"), "run", "python", "-c", program],
                            env=env(OTEL_PERF_SUMMARY="false", OTEL_EXPORTER_OTLP_ENDPOINT=otlp_http.endpoint),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "switched on" in result.stdout, result.stderr


LOGS_PROGRAM = """
import json, logging, sys
from opentelemetry._logs import get_logger_provider
from otel_perf._internal.sdk import providers
first = 'opentelemetry.sdk._logs' in sys.modules
logging.getLogger('app').info('below the level: nothing to export')
info = 'opentelemetry.sdk._logs' in sys.modules
logging.getLogger('app').warning('exported')
after = 'opentelemetry.sdk._logs' in sys.modules
assert providers.current().logger_provider.force_flush(10_000)
print(json.dumps([first, info, after, get_logger_provider() is providers.current().logger_provider]))
"""


def test_logs_sdk_only_with_a_logs_exporter_and_a_record(otlp_http, no_requests_env):
    logs = ["opentelemetry.sdk._logs"]
    common = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_http.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    assert imported(logs, OTEL_LOGS_EXPORTER="none", **common) == ([], [])
    result = subprocess.run([str(BIN / "otel-perf"), "run", "python", "-c", LOGS_PROGRAM],
                            env=env(OTEL_PERF_SUMMARY="false", **common), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    first, info, after, global_is_ours = json.loads(result.stdout.strip().splitlines()[-1])
    assert (first, info, after) == (False, False, True)  # loaded by the first record the tap takes
    assert global_is_ours  # the API's logger provider is ours from the start
    with otlp_http.lock:
        bodies = [r.body.string_value for req in otlp_http.logs for rl in req.resource_logs for sl in rl.scope_logs
                  for r in sl.log_records]
    assert bodies == ["exported"]


# -- the entry-point pre-scan ------------------------------------------------------------------


def _dist(site, name, entry_points):
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if entry_points is not None:
        (info / "entry_points.txt").write_text(entry_points)


def test_entry_point_prescan_agrees_with_importlib_metadata(tmp_path, monkeypatch):
    import importlib.metadata
    import sys

    from otel_perf._internal.integrations import GROUP, _may_declare

    site = tmp_path / "site"
    _dist(site, "plain", None)
    _dist(site, "other", "[console_scripts]\nx = y:z\n")
    monkeypatch.setattr(sys, "path", [str(site), str(tmp_path / "missing")])
    assert not _may_declare(GROUP)
    assert not list(importlib.metadata.entry_points(group=GROUP))
    _dist(tmp_path / "site2", "instr", f"[{GROUP}]\nthing = instr:Instrumentor\n")
    monkeypatch.setattr(sys, "path", [str(site), str(tmp_path / "site2")])
    assert _may_declare(GROUP)
    assert [ep.name for ep in importlib.metadata.entry_points(group=GROUP)] == ["thing"]
    assert not _may_declare(GROUP, {"thing"})  # disabled or replaced by ours: no need for the full scan
    archive = tmp_path / "lib.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip on sys.path: the full scan reads it
    monkeypatch.setattr(sys, "path", [str(site), str(archive)])
    assert _may_declare(GROUP)


# -- the front process -------------------------------------------------------------------------


def test_front_leaves_validation_to_a_python_program_only(tmp_path):
    import sys

    from otel_perf.auto.run import boots_itself

    python = str(Path(sys.executable))
    assert boots_itself(python, [python, "-c", "pass"])
    assert boots_itself(python, [python, "-u", "-X", "dev", "app.py"])
    assert boots_itself(python, [python])
    for option in ("-I", "-E", "-S", "-IS", "-s"):  # may skip PYTHONPATH or site; or unknown here: validate
        assert not boots_itself(python, [python, option, "app.py"])
    script = tmp_path / "tool"
    script.write_text(f"#!{python}\nprint(1)\n")
    assert boots_itself(str(script), [str(script)])
    script.write_text(f"#!{python} -I\nprint(1)\n")
    assert not boots_itself(str(script), [str(script)])
    script.write_text("#!/bin/sh\nexec python3 -c pass\n")
    assert not boots_itself(str(script), [str(script)])
    elsewhere = str(tmp_path / "python3")  # another installation's Python may not have otel-perf
    assert not boots_itself(elsewhere, [elsewhere, "-c", "pass"])


@pytest.mark.parametrize("command", [["python", "-c", "print('ran')"], ["sh", "-c", "echo ran"]], ids=["python", "sh"])
def test_bad_configuration_stops_any_command(command):
    result = subprocess.run([str(BIN / "otel-perf"), "run", *command], env=env(OTEL_TRACES_SAMPLER="sometimes"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "ran" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("otel-perf: invalid configuration: OTEL_TRACES_SAMPLER"), lines
