"""What users install is what is tested: the built wheel and sdist, and the command-line tools run
from a fresh virtual environment holding only the wheel (no source checkout in reach)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.fixtures import wheel as wheel_build

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(900)  # the first run builds the wheel and its environment


@pytest.fixture(scope="session")
def built():
    return wheel_build.build()


def cli(built, *args: str, cwd: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    env_dir = built[2]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTHONPATH", "VIRTUAL_ENV"))}
    base["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{base.get('PATH', '')}"
    return subprocess.run([str(env_dir / "bin" / "otel-perf"), *args], cwd=cwd, env={**base, **environ},
                          capture_output=True, text=True, timeout=120)


def repo_stack_files() -> dict[str, bytes]:
    return {p.relative_to(ROOT).as_posix(): p.read_bytes() for d in ("collector", "grafana")
            for p in (ROOT / d).rglob("*")
            if p.is_file() and not {"secrets", "__pycache__"} & set(p.relative_to(ROOT).parts)}


def test_the_wheel_ships_exactly_the_repository_stack_files_and_the_licence(built):
    wheel, _, _ = built
    prefix = "otel_perf/tools/stack/"
    with zipfile.ZipFile(wheel) as zf:
        packaged = {n[len(prefix):]: zf.read(n) for n in zf.namelist() if n.startswith(prefix)}
        licence = next(n for n in zf.namelist() if n.endswith(".dist-info/licenses/LICENSE"))
        assert zf.read(licence) == (ROOT / "LICENSE").read_bytes()
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert packaged == repo_stack_files()  # one source of truth: copied at build time, byte for byte
    assert not [n for n in packaged if n.startswith("collector/secrets/")]  # a stack's credentials never ship
    assert "License-Expression: Apache-2.0" in metadata
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def test_the_sdist_carries_what_the_wheel_is_built_from(built):
    _, sdist, _ = built
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert {"LICENSE", "setup.py", "MANIFEST.in", "pyproject.toml"} <= names
    assert set(repo_stack_files()) <= names


def test_the_installed_tools_write_a_ready_stack(built, tmp_path):
    config = tmp_path / "performance.yml"
    config.write_text("slo:\n  http_latency: 0.35\n")
    result = cli(built, "stack", "monitoring", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    stack = tmp_path / "monitoring"
    for rel in ("collector/compose.yaml", "collector/otelcol-agent.yaml", "collector/prometheus/prometheus.yml",
                "collector/alertmanager/alertmanager.yml", "collector/tempo/tempo.yaml",
                "grafana/provisioning/datasources/datasources.yaml", "grafana/dashboards/service.json",
                "grafana/provisioning/alerting/rules.yaml", "docs/alerts.md"):
        assert (stack / rel).is_file(), rel
    assert (stack / "collector/alertmanager/entrypoint.sh").stat().st_mode & stat.S_IXUSR
    assert "> 0.35" in (stack / "collector/prometheus/alerts/api.alerts.yml").read_text()  # the user's SLA
    checked = cli(built, "validate", cwd=stack)
    assert checked.returncode == 0, checked.stderr
    assert "6 dashboards" in checked.stdout and "1 Tempo config" in checked.stdout
    assert cli(built, "generate", "--check", "--config", str(config), "--out", str(stack), cwd=tmp_path).returncode == 0

    compose = stack / "collector/compose.yaml"
    compose.write_text(compose.read_text() + "# ours\n")
    again = cli(built, "stack", "monitoring", cwd=tmp_path)
    assert again.returncode == 1 and "collector/compose.yaml" in again.stderr
    assert compose.read_text().endswith("# ours\n")


def test_validate_without_a_checkout_checks_the_shipped_stack(built, tmp_path):
    result = cli(built, "validate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("checked ") and "6 dashboards" in result.stdout and "1 Tempo config" in result.stdout
    assert "0 error(s), 0 warning(s)" in result.stdout


COMMANDS = [[], ["run"], ["validate"], ["generate"], ["load"], ["baseline"], ["baseline", "save"],
            ["baseline", "check"], ["doctor"], ["stack"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "otel-perf")
def test_every_command_takes_h_and_shows_an_example(built, tmp_path, command):
    short = cli(built, *command, "-h", cwd=tmp_path)
    assert short.returncode == 0, short.stderr
    assert short.stdout == cli(built, *command, "--help", cwd=tmp_path).stdout
    assert "Example" in short.stdout and "``" not in short.stdout
    assert short.stdout.count(" otel-perf ") >= 1


@pytest.mark.parametrize("command", [
    ["run", "python", "-c", "print('ran')"],
    ["generate", "--out", "out"],
    ["baseline", "check", "base.json", "--from-summary", "base.json"],
    ["doctor"],
    ["stack", "out"],
], ids=lambda c: c[0])
def test_configuration_errors_share_one_exit_status(built, tmp_path, command):
    (tmp_path / "base.json").write_text(json.dumps({"otel_perf_baseline": 1, "routes": {}, "queries": {}}))
    result = cli(built, *command, cwd=tmp_path, OTEL_PERF_SLO_CPU="7")
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "invalid configuration: OTEL_PERF_SLO_CPU='7' is out of range" in lines[0], lines
    assert "ran" not in result.stdout and not (tmp_path / "out").exists()


def test_doctor_says_where_telemetry_goes(built, tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_SERVICE_NAME": "checkout",
               "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "psycopg", "OTEL_PERF_SLO_HTTP_LATENCY": "0.3",
               "OTEL_METRICS_EXPORTER": "prometheus"}
    try:
        up = cli(built, "doctor", cwd=tmp_path, **environ)
        assert up.returncode == 0, up.stderr
        assert "service name     checkout" in up.stdout
        assert f"traces   otlp http://127.0.0.1:{port} (http/protobuf): reachable" in up.stdout
        assert "metrics  prometheus" in up.stdout
        assert "psycopg          disabled" in up.stdout and "asgi             active" in up.stdout
        assert "0.95 of requests within 300 ms per route" in up.stdout
        data = json.loads(cli(built, "doctor", "--json", "-", cwd=tmp_path, **environ).stdout)
        assert data["service_name"] == "checkout" and data["sla"]["http_latency"] == 0.3
        assert {r["signal"]: r.get("reachable") for r in data["exports"]} == {"traces": True, "metrics": None,
                                                                             "logs": True}
    finally:
        listener.close()
    down = cli(built, "doctor", cwd=tmp_path, **environ)
    assert down.returncode == 1
    assert "NOT REACHABLE" in down.stdout and f"127.0.0.1:{port} is not reachable" in down.stderr


def test_shell_completion_works_as_documented(built, tmp_path):
    script = cli(built, cwd=tmp_path, _OTEL_PERF_COMPLETE="bash_source")
    assert script.returncode == 0 and "_otel_perf_completion" in script.stdout
    words = cli(built, cwd=tmp_path, _OTEL_PERF_COMPLETE="bash_complete", COMP_WORDS="otel-perf do", COMP_CWORD="1")
    assert "doctor" in words.stdout
    readme = (ROOT / "README.md").read_text()
    assert '_OTEL_PERF_COMPLETE=bash_source otel-perf' in readme


def test_run_needs_only_the_runtime(built, tmp_path):
    result = cli(built, "run", "python", "-c", "import otel_perf, sys; print(otel_perf.__file__)", cwd=tmp_path,
                 OTEL_PERF_SUMMARY="false")
    assert result.returncode == 0, result.stderr
    assert str(built[2]) in result.stdout  # the installed wheel, not this checkout
