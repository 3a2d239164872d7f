"""The real Collector (`make collector`) loads every shipped Collector config and rejects broken copies.

`otelcol validate --config` resolves the config (env placeholders, overlays), unmarshals every
component's settings with its own code (unknown keys, OTTL statements, regular expressions) and builds
the pipeline graph, without opening a port. The Helm values are checked as the chart renders them:
their `config` with the `null` entries (chart defaults removed) dropped.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fixtures.otelcol import otelcol, ports

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "collector/otelcol-agent.yaml"
GATEWAY = ROOT / "collector/otelcol-gateway.yaml"
BUILDER = ROOT / "collector/builder-config.yaml"
TABLE = ROOT / "otel_perf/tools/data/otelcol_components.yaml"
SECTIONS = ("receivers", "processors", "exporters", "connectors", "extensions")
# What the Helm chart provides at run time.
HELM_ENV = {"MY_POD_IP": "127.0.0.1", "PROMETHEUS_OTLP_ENDPOINT": "http://127.0.0.1:9090/api/v1/otlp",
            "GATEWAY_HOSTNAME": "localhost"}


def without_nulls(node):
    if isinstance(node, dict):
        return {k: without_nulls(v) for k, v in node.items() if v is not None}
    return node


def helm_config(path: Path, tmp_path: Path) -> Path:
    out = tmp_path / f"{path.stem}.config.yaml"
    out.write_text(yaml.safe_dump(without_nulls(yaml.safe_load(path.read_text())["config"]), sort_keys=False))
    return out


def validate(path: Path, env: dict[str, str] | None = None):
    return otelcol("validate", f"--config=file:{path}", env=env)


def error_text(proc) -> str:
    return " ".join((proc.stdout + proc.stderr).split())


def broken_copy(tmp_path: Path, source: Path, edit) -> Path:
    doc = yaml.safe_load(source.read_text())
    edit(doc)
    target = tmp_path / f"broken-{source.name}"
    target.write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


def release() -> str:
    return yaml.safe_load(BUILDER.read_text())["dist"]["version"]


# -- the build ------------------------------------------------------------------------------------


def test_binary_is_the_pinned_release():
    proc = otelcol("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["otelcol-otel-perf", "version", release()]


def test_make_collector_does_not_rebuild_an_up_to_date_binary():
    if os.environ.get("OTEL_PERF_OTELCOL"):
        pytest.skip("testing a binary given by OTEL_PERF_OTELCOL, not the make collector build")
    proc = subprocess.run(["make", "-q", "collector"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, "make collector would rebuild: the binary is older than collector/builder-config.yaml"


def test_every_pin_names_the_same_release():
    version = release()
    manifest = yaml.safe_load(BUILDER.read_text())
    for section in (*SECTIONS, "providers"):
        for entry in manifest.get(section) or []:
            module, pinned = entry["gomod"].split()
            expected = f"v1.{int(version.split('.')[1]) - 94}.0" if "/confmap/provider/" in module else f"v{version}"
            assert pinned == expected, f"{module} {pinned}: expected {expected}"
    assert yaml.safe_load(TABLE.read_text())["version"] == version
    compose = yaml.safe_load((ROOT / "collector/compose.yaml").read_text())
    images = [s["image"] for s in compose["services"].values() if "opentelemetry-collector" in s.get("image", "")]
    assert images and all(image.endswith(f":{version}") for image in images), images
    for values in sorted((ROOT / "collector/k8s").glob("values-*.yaml")):
        assert str(yaml.safe_load(values.read_text())["image"]["tag"]) == version, values.name
    for config in (AGENT, GATEWAY):
        assert f"otelcol-contrib {version}" in config.read_text(), config.name


def components() -> dict[str, list[dict]]:
    proc = otelcol("components")
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def test_build_has_exactly_the_manifest_components():
    built = components()
    manifest = yaml.safe_load(BUILDER.read_text())
    for section in SECTIONS:
        modules = {e["gomod"].split()[0] for e in manifest.get(section) or []}
        assert {c["module"].split()[0] for c in built.get(section) or []} == modules, section


def test_curated_table_is_in_step_with_the_build():
    """Every compiled-in component is in the fallback table under the same name, and every component
    the shipped configs use is compiled in (so the table's answer and the binary's agree)."""
    table = yaml.safe_load(TABLE.read_text())
    built = components()
    for section in SECTIONS:
        names = {c["name"] for c in built.get(section) or []}
        missing = names - set(table.get(section) or {})
        assert not missing, f"{section} {sorted(missing)} are built but missing from {TABLE.name}"
    used: dict[str, set[str]] = {s: set() for s in SECTIONS}
    configs = [yaml.safe_load(p.read_text()) for p in (AGENT, GATEWAY)]
    configs += [without_nulls(yaml.safe_load(p.read_text())["config"]) for p in (ROOT / "collector/k8s").glob("*.yaml")]
    for config in configs:
        for section in SECTIONS:
            used[section] |= {cid.split("/")[0] for cid in config.get(section) or {}}
    for section in SECTIONS:
        names = {c["name"] for c in built.get(section) or []}
        assert used[section] <= names, f"{section} {sorted(used[section] - names)} used but not built"


# -- the shipped configs load --------------------------------------------------------------------


@pytest.mark.parametrize("config", [AGENT, GATEWAY], ids=lambda p: p.name)
def test_shipped_config_validates(config):
    proc = validate(config)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("values", ["values-agent.yaml", "values-gateway.yaml"])
def test_helm_values_config_validates(values, tmp_path):
    proc = validate(helm_config(ROOT / "collector/k8s" / values, tmp_path), HELM_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- broken copies fail with a line that says what and where -------------------------------------


def test_bad_ottl(tmp_path):
    def edit(doc):
        doc["processors"]["transform/scrub"]["trace_statements"][0] = 'replace_pattern(span.attributes["url.query"], "=.*"'

    proc = validate(broken_copy(tmp_path, AGENT, edit))
    assert proc.returncode != 0
    text = error_text(proc)
    assert "processors::transform/scrub" in text and "statement has invalid syntax" in text, text


def test_bad_ottl_condition_in_tail_sampling_policy(tmp_path):
    """tail_sampling compiles its OTTL conditions when the processor starts, not in `validate`:
    the config validates, and the Collector refuses to start with a line naming the policy."""

    def edit(doc):
        doc["processors"]["tail_sampling"]["policies"][1]["ottl_condition"]["span"] = ["kind == SPAN_KIND_SERVR"]

    broken = broken_copy(tmp_path, GATEWAY, edit)
    assert validate(broken).returncode == 0  # a known gap of `otelcol validate`
    health, grpc, http, telemetry = ports(4)
    overlay = tmp_path / "ports.yaml"
    overlay.write_text(yaml.safe_dump({
        "extensions": {"health_check": {"endpoint": f"127.0.0.1:{health}"}},
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{grpc}"},
                                             "http": {"endpoint": f"127.0.0.1:{http}"}}}},
        "service": {"telemetry": {"metrics": {"readers": [
            {"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": telemetry}}}}]}}},
    }))
    proc = otelcol(f"--config=file:{broken}", f"--config=file:{overlay}", timeout=60)
    assert proc.returncode != 0
    text = error_text(proc)
    assert "tail_sampling" in text and "SPAN_KIND_SERVR" in text, text[-2000:]


def test_unknown_option(tmp_path):
    def edit(doc):
        doc["exporters"]["otlp_grpc/tempo"]["endpoitn"] = "tempo:4317"

    proc = validate(broken_copy(tmp_path, AGENT, edit))
    assert proc.returncode != 0
    text = error_text(proc)
    assert "otlp_grpc/tempo" in text and "endpoitn" in text, text


def test_wrong_redaction_field(tmp_path):
    def edit(doc):
        doc["processors"]["redaction"]["blocked_value"] = doc["processors"]["redaction"].pop("blocked_values")

    proc = validate(broken_copy(tmp_path, AGENT, edit))
    assert proc.returncode != 0
    text = error_text(proc)
    assert "redaction" in text and "blocked_value" in text, text


def test_bad_redaction_pattern(tmp_path):
    def edit(doc):
        doc["processors"]["redaction"]["blocked_key_patterns"].append("(?i)password[")

    proc = validate(broken_copy(tmp_path, AGENT, edit))
    assert proc.returncode != 0
    assert "redaction" in error_text(proc), error_text(proc)


def test_undefined_component(tmp_path):
    def edit(doc):
        doc["service"]["pipelines"]["traces"]["exporters"].append("otlp_grpc/nowhere")

    proc = validate(broken_copy(tmp_path, AGENT, edit))
    assert proc.returncode != 0
    text = error_text(proc)
    assert re.search(r"otlp_grpc/nowhere.*not configured|not configured.*otlp_grpc/nowhere", text), text


def test_unknown_component_type(tmp_path):
    def edit(doc):
        doc["processors"]["spanmetricz"] = {}
        doc["service"]["pipelines"]["traces"]["processors"].append("spanmetricz")

    proc = validate(broken_copy(tmp_path, AGENT, edit))
    assert proc.returncode != 0
    assert "spanmetricz" in error_text(proc), error_text(proc)
