"""``otel-perf run``: exit codes, signals, clear errors, and the local-mode summary."""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.fixtures.procs import BIN, env, serve


def run(*argv: str, **environ: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "otel-perf"), "run", *argv], env=env(**environ), capture_output=True,
                          text=True, timeout=60)


def test_exit_status_is_the_programs():
    assert run("python", "-c", "import sys; sys.exit(7)").returncode == 7


def test_signal_death_is_the_programs():
    result = run("python", "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert result.returncode == -signal.SIGTERM


def test_missing_program_fails_with_one_line():
    result = run("no-such-program-xyz", "--flag")
    assert result.returncode == 127
    assert result.stderr.strip() == "otel-perf: no-such-program-xyz: command not found"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_METRICS_EXPORTER": "graphite"}, "OTEL_METRICS_EXPORTER"),
        ({"OTEL_TRACES_SAMPLER_ARG": "lots"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_PERF_SLO_DB_SLOW": "slow"}, "OTEL_PERF_SLO_DB_SLOW='slow' is not a number"),
    ],
)
def test_bad_configuration_stops_start_up_with_one_line(environ, named):
    result = run("python", "-c", "print('program ran')", **environ)
    assert result.returncode == 2
    assert "program ran" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "accepted:" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_bad_configuration_from_configure_in_code_is_one_line_too():
    code = "import otel_perf; otel_perf.configure(metrics_exporter='graphite')"
    result = subprocess.run([str(BIN / "python"), "-c", code], env=env(), capture_output=True, text=True)
    assert result.returncode == 1
    assert "ConfigError: configure(metrics_exporter=...)='graphite' is invalid (accepted: otlp, prometheus" in result.stderr


def test_configure_twice_is_harmless():
    code = (
        "import otel_perf, otel_perf._internal.sdk.providers as p\n"
        "otel_perf.configure(service_name='a')\n"
        "first = p.current()\n"
        "otel_perf.configure(service_name='b')\n"
        "assert p.current() is first\n"
        "print(first.tracer_provider.resource.attributes['service.name'])\n"
        "otel_perf.shutdown()\n"
    )
    result = subprocess.run([str(BIN / "python"), "-c", code], env=env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "a"
    assert result.stderr.count("already called") == 1


def test_local_mode_announces_itself_and_prints_the_summary_at_exit(tmp_path):
    summary_file = tmp_path / "summary.json"
    server = serve(OTEL_PERF_SUMMARY_FILE=str(summary_file))
    for path in ["/fast"] * 5 + ["/slow", "/unavailable", "/items/9"]:
        server.get(path)
    assert server.stop(signal.SIGINT)
    assert "telemetry stays local" in server.stderr
    assert server.stderr.count("otel-perf: no Collector") == 1
    for text in ("GET /fast", "GET /slow", "GET /items/{item_id}", "SLOW", "ERRORS", "p95"):
        assert text in server.stderr, server.stderr
    import json

    data = json.loads(summary_file.read_text())
    fast = next(r for r in data["routes"] if r["route"] == "/fast")
    assert fast["count"] >= 5 and fast["verdict"] == "ok"
    slow = next(r for r in data["routes"] if r["route"] == "/slow")
    assert slow["p95"] >= 0.25 and slow["verdict"] == "slow"


def test_opentelemetry_instrument_uses_the_otel_perf_distro():
    code = (
        "import otel_perf._internal.sdk.providers as p; t = p.current();"
        "print(type(t).__name__, t.settings.semconv_opt_in, t.local)"
    )
    result = subprocess.run([str(BIN / "opentelemetry-instrument"), "python", "-c", code], env=env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Telemetry http,database True"


def test_disabled_instrumentations_are_honoured():
    code = (
        "import urllib.request, otel_perf._internal.sdk.providers as p\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "e = InMemorySpanExporter(); p.current().tracer_provider.add_span_processor(SimpleSpanProcessor(e))\n"
        "try: urllib.request.urlopen('http://127.0.0.1:9/', timeout=1)\n"
        "except OSError: pass\n"
        "print(len(e.get_finished_spans()))\n"
    )
    enabled = run("python", "-c", code)
    assert enabled.returncode == 0, enabled.stderr
    assert enabled.stdout.strip() == "1"  # the installed urllib instrumentor was discovered
    disabled = run("python", "-c", code, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="urllib")
    assert disabled.stdout.strip() == "0"


def test_help_lists_every_subcommand():
    result = subprocess.run([str(BIN / "otel-perf"), "--help"], capture_output=True, text=True, env=env())
    assert result.returncode == 0, result.stderr
    for command in ("run", "validate", "generate", "load", "baseline", "doctor", "stack"):
        assert f"  {command} " in result.stdout, result.stdout


def test_sdk_disabled_switches_everything_off():
    code = "import otel_perf._internal.sdk.providers as p; print(p.current())"
    result = run("python", "-c", code, OTEL_SDK_DISABLED="true")
    assert result.returncode == 0 and result.stdout.strip() == "None", result.stderr
    assert "telemetry stays local" not in result.stderr
