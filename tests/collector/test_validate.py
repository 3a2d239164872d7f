"""`otel-perf validate` on the shipped configs and on deliberately broken copies of them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from otel_perf.tools.validate import components, render_placeholders
from tests.fixtures.binaries import require
from tests.fixtures.otelcol import otelcol_binary

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "collector/otelcol-agent.yaml"
GATEWAY = ROOT / "collector/otelcol-gateway.yaml"
HELM_AGENT = ROOT / "collector/k8s/values-agent.yaml"
PROMETHEUS = ROOT / "collector/prometheus/prometheus.yml"
ALERTMANAGER = ROOT / "collector/alertmanager/alertmanager.yml"
DATASOURCES = ROOT / "grafana/provisioning/datasources/datasources.yaml"
COMPOSE = ROOT / "collector/compose.yaml"


def otel_perf(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    script = Path(sys.executable).with_name("otel-perf")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "otel_perf.tools.cli"]
    return subprocess.run([*argv, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The problems: stderr (stdout only says what was checked)."""
    assert proc.stdout.startswith("checked "), proc.stdout
    return [ln for ln in proc.stderr.splitlines() if ln.strip()]


def broken_copy(tmp_path: Path, source: Path, edit) -> Path:
    doc = yaml.safe_load(source.read_text())
    edit(doc)
    target = tmp_path / source.name
    target.write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


@pytest.fixture(autouse=True)
def _tools():
    # The Prometheus/Alertmanager checks must really run, not degrade to a warning.
    require("promtool", "prometheus")
    require("amtool", "prometheus-alertmanager")
    otelcol_binary()  # the Collector configs go through the real `make collector` build


def test_shipped_configs_are_valid():
    proc = otel_perf("validate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert lines(proc) == []  # not even a warning: the shipped configs use current names only


def test_default_paths_cover_every_shipped_config(tmp_path):
    # Breaking a shipped file in a copy of the tree must make the default run fail.
    tree = tmp_path / "repo"
    shutil.copytree(ROOT / "collector", tree / "collector")
    shutil.copytree(ROOT / "grafana", tree / "grafana")
    for rel in (
        "collector/otelcol-agent.yaml",
        "collector/otelcol-gateway.yaml",
        "collector/k8s/values-agent.yaml",
        "collector/k8s/values-gateway.yaml",
        "collector/prometheus/prometheus.yml",
        "collector/alertmanager/alertmanager.yml",
        "collector/compose.yaml",
        "grafana/provisioning/datasources/datasources.yaml",
        "grafana/provisioning/alerting/rules.yaml",
        "grafana/dashboards/service.json",
        "collector/tempo/tempo.yaml",
        "collector/prometheus/rules/slo.yml",
    ):
        original = (tree / rel).read_text()
        (tree / rel).write_text(original + "\n: [unbalanced\n")
        proc = otel_perf("validate", cwd=tree)
        assert proc.returncode == 1, rel
        assert any(rel in ln and "invalid YAML" in ln for ln in lines(proc)), (rel, lines(proc))
        (tree / rel).write_text(original)


def test_undefined_exporter(tmp_path):
    path = broken_copy(
        tmp_path, AGENT, lambda d: d["service"]["pipelines"]["traces"]["exporters"].append("otlp_grpc/nowhere")
    )
    proc = otel_perf("validate", "--no-otelcol", str(path))
    assert proc.returncode == 1
    assert lines(proc) == [
        f"{path}: service.pipelines.traces: exporter 'otlp_grpc/nowhere' is not defined under exporters"
    ]
    # the real Collector (`make collector`) says it in its words, on one line
    proc = otel_perf("validate", str(path))
    assert proc.returncode == 1
    assert lines(proc) == [
        f'{path}: otelcol: service.pipelines.traces: references exporter "otlp_grpc/nowhere" which is not configured'
    ]


def test_real_collector_errors_one_line_each(tmp_path):
    def edit(doc):
        doc["exporters"]["otlp_grpc/tempo"]["endpoitn"] = "tempo:4317"
        doc["processors"]["redaction"]["blocked_value"] = ["x"]

    path = broken_copy(tmp_path, AGENT, edit)
    proc = otel_perf("validate", str(path))
    assert proc.returncode == 1
    assert sorted(lines(proc)) == sorted([
        f"{path}: otelcol: exporters.otlp_grpc/tempo: has invalid keys: endpoitn",
        f"{path}: otelcol: processors.redaction: has invalid keys: blocked_value",
    ])


def test_real_collector_compiles_ottl(tmp_path):
    def edit(doc):
        doc["processors"]["transform/scrub"]["trace_statements"][0] = 'set(span.attributes["x"], )'

    path = broken_copy(tmp_path, AGENT, edit)
    proc = otel_perf("validate", str(path))
    assert proc.returncode == 1
    [line] = lines(proc)
    assert line.startswith(f"{path}: otelcol: processors.transform/scrub: ") and "invalid syntax" in line, line


def test_binary_choice(tmp_path):
    path = broken_copy(tmp_path, AGENT, lambda d: d["exporters"]["otlp_grpc/tempo"].update(endpoitn="x"))
    proc = otel_perf("validate", "--otelcol", str(tmp_path / "missing-otelcol"), str(path))
    assert proc.returncode == 1
    assert lines(proc) == [f"{path}: otelcol: cannot run {tmp_path / 'missing-otelcol'}: No such file or directory"]


def test_memory_limiter_not_first(tmp_path):
    def swap(doc):
        procs = doc["service"]["pipelines"]["metrics"]["processors"]
        procs[0], procs[1] = procs[1], procs[0]

    path = broken_copy(tmp_path, AGENT, swap)
    proc = otel_perf("validate", str(path))
    assert proc.returncode == 1
    assert lines(proc) == [f"{path}: service.pipelines.metrics: memory_limiter must be the first processor"]


def test_memory_limiter_missing_in_gateway(tmp_path):
    path = broken_copy(tmp_path, GATEWAY, lambda d: d["service"]["pipelines"]["traces"]["processors"].pop(0))
    proc = otel_perf("validate", str(path))
    assert proc.returncode == 1
    assert lines(proc) == [f"{path}: service.pipelines.traces: memory_limiter must be the first processor"]


def test_bad_yaml(tmp_path):
    path = tmp_path / "otelcol.yaml"
    path.write_text("receivers:\n  otlp:\n   protocols: [grpc\nservice: {}\n")
    proc = otel_perf("validate", str(path))
    assert proc.returncode == 1
    [line] = lines(proc)
    assert line.startswith(f"{path}: invalid YAML (line ")


def test_unknown_type_unknown_field_and_deprecated_alias(tmp_path):
    def edit(doc):
        doc["processors"]["spanmetricz"] = {}
        doc["service"]["pipelines"]["traces"]["processors"].append("spanmetricz")
        doc["exporters"]["otlp_grpc/tempo"]["endpoitn"] = "tempo:4317"
        doc["processors"]["resourcedetection/old"] = {"detectors": ["env"]}

    path = broken_copy(tmp_path, AGENT, edit)
    proc = otel_perf("validate", "--no-otelcol", str(path))
    assert proc.returncode == 1
    version = components()["version"]
    assert sorted(lines(proc)) == sorted(
        [
            f"{path}: processors.spanmetricz: unknown processor type 'spanmetricz' in otelcol-contrib {version}",
            f"{path}: exporters.otlp_grpc/tempo: unknown field 'endpoitn'",
            f"{path}: warning: processors.resourcedetection/old: 'resourcedetection' is a deprecated alias, "
            "use 'resource_detection'",
        ]
    )


def test_deprecated_alias_alone_is_a_warning(tmp_path):
    def edit(doc):
        doc["exporters"]["otlp/tempo"] = doc["exporters"].pop("otlp_grpc/tempo")
        doc["service"]["pipelines"]["traces"]["exporters"] = ["otlp/tempo"]

    path = broken_copy(tmp_path, AGENT, edit)
    proc = otel_perf("validate", str(path))
    assert proc.returncode == 0
    assert lines(proc) == [f"{path}: warning: exporters.otlp/tempo: 'otlp' is a deprecated alias, use 'otlp_grpc'"]


def test_helm_values_config_is_checked(tmp_path):
    def edit(doc):
        doc["config"]["service"]["pipelines"]["traces"]["exporters"] = ["loadbalancing_typo"]
        doc["mode"] = "replicaset"

    path = broken_copy(tmp_path, HELM_AGENT, edit)
    proc = otel_perf("validate", "--no-otelcol", str(path))
    assert proc.returncode == 1
    assert sorted(lines(proc)) == sorted(
        [
            f"{path}: mode: 'replicaset' is not daemonset, deployment or statefulset",
            f"{path}: config.service.pipelines.traces: exporter 'loadbalancing_typo' is not defined under exporters",
        ]
    )
    proc = otel_perf("validate", str(path))  # the real Collector, on the config as the chart runs it
    assert proc.returncode == 1
    assert sorted(lines(proc)) == sorted(
        [
            f"{path}: mode: 'replicaset' is not daemonset, deployment or statefulset",
            f'{path}: otelcol: config.service.pipelines.traces: references exporter "loadbalancing_typo" '
            "which is not configured",
        ]
    )


def test_prometheus_config_goes_through_promtool(tmp_path):
    path = broken_copy(tmp_path, PROMETHEUS, lambda d: d["global"].update(scrape_interval="fifteen seconds"))
    proc = otel_perf("validate", str(path))
    assert proc.returncode == 1
    assert lines(proc) and all(ln.startswith(f"{path}: promtool: ") for ln in lines(proc))
    assert "fifteen seconds" in proc.stderr


def test_prometheus_rule_files_are_checked_too(tmp_path):
    shutil.copy(PROMETHEUS, tmp_path / "prometheus.yml")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules/bad.yml").write_text("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(x[5m]\n")
    proc = otel_perf("validate", str(tmp_path / "prometheus.yml"))
    assert proc.returncode == 1
    assert "bad.yml" in proc.stderr


def test_alertmanager_config_goes_through_amtool(tmp_path):
    path = broken_copy(tmp_path, ALERTMANAGER, lambda d: d["route"].update(receiver="nobody"))
    proc = otel_perf("validate", str(path))
    assert proc.returncode == 1
    assert lines(proc) and all(ln.startswith(f"{path}: amtool: ") for ln in lines(proc))
    assert "nobody" in proc.stderr


def test_alertmanager_placeholders_follow_the_environment(tmp_path):
    text = ALERTMANAGER.read_text()
    rendered = yaml.safe_load(render_placeholders(text, {"ALERT_WEBHOOK_URL": "https://hooks.example/x"}))
    urls = {c["url"] for r in rendered["receivers"] for c in r.get("webhook_configs", [])}
    assert urls == {"https://hooks.example/x"}
    defaults = yaml.safe_load(render_placeholders(text, {}))
    assert defaults["global"]["smtp_smarthost"] == "localhost:25"
    assert defaults["receivers"][1]["slack_configs"][0]["channel"] == "#alerts"


def test_entrypoint_renders_like_validate(tmp_path):
    """The shell entrypoint (what the container runs) and validate's renderer agree."""
    env = {"PATH": "/usr/bin:/bin", "ALERT_WEBHOOK_URL": "http://127.0.0.1:1/hook?a=b&c=d", "SLACK_CHANNEL": "#perf"}
    out = tmp_path / "rendered.yml"
    subprocess.run(
        ["sh", str(ROOT / "collector/alertmanager/entrypoint.sh"), str(ALERTMANAGER), str(out)],
        env=env,
        check=True,
        timeout=30,
    )
    assert out.read_text() == render_placeholders(ALERTMANAGER.read_text(), env)
    assert "'http://127.0.0.1:1/hook?a=b&c=d'" in out.read_text()


def test_grafana_datasource_reference_must_exist(tmp_path):
    def edit(doc):
        doc["datasources"][1]["jsonData"]["tracesToMetrics"]["datasourceUid"] = "mimir"
        doc["datasources"][1]["uid"] = "prometheus"

    path = broken_copy(tmp_path, DATASOURCES, edit)
    proc = otel_perf("validate", str(path))
    assert proc.returncode == 1
    assert sorted(lines(proc)) == sorted(
        [
            f"{path}: datasources[0]: duplicate uid 'prometheus'",
            f"{path}: datasources[1]: duplicate uid 'prometheus'",
            f"{path}: datasources[0] (Prometheus): datasourceUid 'tempo' is not provisioned here",  # once, not twice
            f"{path}: datasources[1] (Tempo): datasourceUid 'mimir' is not provisioned here",
        ]
    )


def test_compose_images_pinned_and_ports_local(tmp_path):
    def edit(doc):
        doc["services"]["grafana"]["image"] = "grafana/grafana:latest"
        doc["services"]["prometheus"]["ports"] = ["9090:9090"]

    path = broken_copy(tmp_path, COMPOSE, edit)
    proc = otel_perf("validate", str(path))
    assert proc.returncode == 1
    assert sorted(lines(proc)) == sorted(
        [
            f"{path}: services.grafana: image 'grafana/grafana:latest' is not pinned to a version",
            f"{path}: services.prometheus: port '9090:9090' is published on every interface",
            # copied alone: the exposed overlay that authenticates OTLP is not beside it
            f"{path}: no compose.exposed.yaml beside it: nothing authenticates OTLP when STACK_BIND exposes the stack",
        ]
    )


def test_missing_path(tmp_path):
    proc = otel_perf("validate", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 1
    assert lines(proc) == [f"{tmp_path / 'nope.yaml'}: no such file or directory"]


def test_pinned_versions_agree():
    """The component list, compose and the Helm values all name the same Collector version."""
    version = components()["version"]
    compose = yaml.safe_load(COMPOSE.read_text())
    assert compose["services"]["otel-collector"]["image"] == f"otel/opentelemetry-collector-contrib:{version}"
    for values in (ROOT / "collector/k8s").glob("values-*.yaml"):
        assert yaml.safe_load(values.read_text())["image"]["tag"] == version, values


def test_promtool_rule_unit_tests_are_run(tmp_path):
    (tmp_path / "r.yml").write_text(
        "groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up == 0\n    labels: {severity: warning}\n"
    )
    unit = 'rule_files: [r.yml]\ntests:\n- interval: 1m\n  input_series:\n  - series: up{job="x"}\n    values: 0x5\n'
    expect_silent = "  alert_rule_test:\n  - eval_time: 2m\n    alertname: Down\n    exp_alerts: []\n"
    (tmp_path / "t.yml").write_text(unit + expect_silent)
    proc = otel_perf("validate", str(tmp_path / "t.yml"))
    assert proc.returncode == 1  # the alert does fire: the unit test fails
    assert all(ln.startswith(f"{tmp_path / 't.yml'}: promtool: ") for ln in lines(proc))
    expect_firing = expect_silent.replace("exp_alerts: []", "exp_alerts: [{exp_labels: {job: x, severity: warning}}]")
    (tmp_path / "t.yml").write_text(unit + expect_firing)
    assert otel_perf("validate", str(tmp_path / "t.yml")).returncode == 0


def test_success_says_what_was_checked():
    proc = otel_perf("validate")
    assert proc.returncode == 0, proc.stderr
    summary = proc.stdout.strip()
    for kind in ("6 dashboards", "2 Collector configs", "1 Tempo config", "1 Grafana alert rule file",
                 "1 Grafana datasource file", "1 Alertmanager config", "1 Prometheus config", "1 compose file"):
        assert kind in summary, summary
    assert summary.endswith("0 error(s), 0 warning(s)")


def test_dashboard_with_an_unknown_datasource_uid(tmp_path):
    board = json.loads((ROOT / "grafana/dashboards/database.json").read_text())
    board["panels"][1]["datasource"]["uid"] = "promethues"
    repo = tmp_path / "repo"
    (repo / "grafana/dashboards").mkdir(parents=True)
    path = repo / "grafana/dashboards/team.json"
    path.write_text(json.dumps(board))
    shutil.copytree(ROOT / "grafana/provisioning/datasources", repo / "grafana/provisioning/datasources")
    proc = otel_perf("validate", str(path))  # the datasources beside it are found
    assert proc.returncode == 1
    panel = board["panels"][1]
    assert lines(proc) == [f"{path}: panel {panel['id']} ({panel['title']}): datasource uid 'promethues' is not "
                           "provisioned (provisioned: prometheus, tempo)"]
    (tmp_path / "elsewhere").mkdir()
    alone = tmp_path / "elsewhere/alone.json"
    alone.write_text(json.dumps(board))
    proc = otel_perf("validate", str(alone))
    assert proc.returncode == 0 and lines(proc) == [
        f"{alone}: warning: datasource uids not checked: no provisioned datasources among the checked files "
        "or beside them (add your grafana/provisioning/datasources)"]


def test_dashboards_duplicate_uids_and_shape(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"uid": "x", "title": "A", "schemaVersion": 42, "panels": []}))
    (tmp_path / "b.json").write_text(json.dumps({"uid": "x", "title": "B", "panels": {}}))
    proc = otel_perf("validate", str(tmp_path), str(DATASOURCES))
    assert proc.returncode == 1
    b = tmp_path / "b.json"
    assert lines(proc) == [f"{b}: dashboard uid 'x' is also used by {tmp_path / 'a.json'}",
                           f"{b}: dashboard: missing schemaVersion (export it with 'Export for sharing' off)",
                           f"{b}: dashboard: 'panels' must be a list"]


def test_grafana_alert_rule_with_an_unknown_datasource_uid(tmp_path):
    rules = ROOT / "grafana/provisioning/alerting/rules.yaml"

    def edit(doc):
        rule = doc["groups"][0]["rules"][0]
        rule["data"][0]["datasourceUid"] = "mimir"
        rule["condition"] = "Z"

    path = broken_copy(tmp_path, rules, edit)
    proc = otel_perf("validate", str(path), str(DATASOURCES))
    assert proc.returncode == 1
    assert sorted(lines(proc)) == sorted([
        f"{path}: rule ApiErrorBudgetBurnFast query A: datasource uid 'mimir' is not provisioned "
        "(provisioned: prometheus, tempo)",
        f"{path}: rule ApiErrorBudgetBurnFast: condition 'Z' is not a refId of its data",
    ])


def test_policy_receivers_must_be_contact_points(tmp_path):
    alerting = ROOT / "grafana/provisioning/alerting"
    path = broken_copy(tmp_path, alerting / "policies.yaml",
                       lambda d: d["policies"][0]["routes"][0].update(receiver="otel-perf-pager"))
    proc = otel_perf("validate", str(path), str(alerting / "contact-points.yaml"))
    assert proc.returncode == 1
    assert lines(proc) == [f"{path}: policies[0].routes[0]: receiver 'otel-perf-pager' is not a provisioned contact point"]


def test_tempo_config_is_recognised_and_checked(tmp_path):
    tempo = ROOT / "collector/tempo/tempo.yaml"
    proc = otel_perf("validate", str(tempo))
    assert proc.returncode == 0 and lines(proc) == [] and "1 Tempo config" in proc.stdout

    def edit(doc):
        doc["storage"]["trace"]["backend"] = "s4"
        doc["metrics_generator"]["storage"]["remote_write"][0].pop("url")
        doc["overrides"]["defaults"]["metrics_generator"]["processors"].append("span_metrics")
        doc["distributer"] = doc.pop("distributor")

    path = broken_copy(tmp_path, tempo, edit)
    proc = otel_perf("validate", str(path))
    assert proc.returncode == 1
    assert sorted(lines(proc)) == sorted([
        f"{path}: unknown Tempo section 'distributer' (did you mean 'distributor'?)",
        f"{path}: distributor.receivers: no receiver (Tempo would accept no traces)",
        f"{path}: storage.trace.backend: 's4' is not one of local, s3, gcs, azure",
        f"{path}: metrics_generator.storage.remote_write: needs a url (where span metrics go)",
        f"{path}: overrides.defaults.metrics_generator.processors: unknown 'span_metrics' "
        "(accepted: service-graphs, span-metrics, local-blocks)",
    ])
