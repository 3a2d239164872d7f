"""The committed files are the rendering of the default spec; their structure holds what Grafana and
Prometheus need (uids, datasources, thresholds from the spec, runbooks for every alert)."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import yaml
from click.testing import CliRunner

from otel_perf._internal.config import sla as slo
from otel_perf.tools.generate import (
    ALERTING_DIR,
    ALERTS_DIR,
    DASHBOARDS_DIR,
    PROMETHEUS_DIRS,
    RULES_DIR,
    cli,
    dashboards,
    error_budget,
    render,
    rules,
    runbooks,
)
from tests.fixtures.binaries import require

ROOT = Path(__file__).resolve().parents[2]


def load_yaml(rel: str) -> dict:
    return yaml.safe_load((ROOT / rel).read_text())


def boards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((ROOT / DASHBOARDS_DIR).glob("*.json"))}


def test_committed_files_are_the_default_rendering():
    result = CliRunner().invoke(cli, ["--check", "--out", str(ROOT)])
    assert result.exit_code == 0, result.output


def test_check_fails_on_drift_and_generate_repairs_it(tmp_path):
    runner = CliRunner()
    assert runner.invoke(cli, ["--out", str(tmp_path)]).exit_code == 0
    assert runner.invoke(cli, ["--check", "--out", str(tmp_path)]).exit_code == 0
    victim = tmp_path / ALERTS_DIR / "api.alerts.yml"
    victim.write_text(victim.read_text().replace("> 0.2", "> 0.3"))
    result = runner.invoke(cli, ["--check", "--out", str(tmp_path)])
    assert result.exit_code == 1 and f"stale: {ALERTS_DIR}/api.alerts.yml" in result.output
    orphan = tmp_path / "docs/runbooks/RenamedAlert.md"  # e.g. an alert renamed since the last run
    orphan.write_text(runbooks.HEADER + "# RenamedAlert\n")
    result = runner.invoke(cli, ["--check", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "stale: docs/runbooks/RenamedAlert.md" in result.output
    assert runner.invoke(cli, ["--out", str(tmp_path)]).exit_code == 0
    assert not orphan.exists()
    assert runner.invoke(cli, ["--check", "--out", str(tmp_path)]).exit_code == 0


def test_thresholds_follow_a_user_config(tmp_path):
    config = tmp_path / "performance.yml"
    config.write_text("slo:\n  http_latency: 0.35\n  db_mean: 0.03\n  lcp: 3.0\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["--config", str(config), "--out", str(out),
                                      "--runbook-url", "https://wiki.example.test/runbooks/"])
    assert result.exit_code == 0, result.output
    api = (out / ALERTS_DIR / "api.alerts.yml").read_text()
    assert "runbook_url: https://wiki.example.test/runbooks/ApiRouteLatencyHigh.md" in api
    assert "> 0.35" in api and "> 0.2\n" not in api
    assert 'le="0.35"' in (out / RULES_DIR / "slo.yml").read_text()
    assert "> 0.03" in (out / ALERTS_DIR / "database.alerts.yml").read_text()
    assert "> 3\n" in (out / ALERTS_DIR / "web-vitals.alerts.yml").read_text()
    service = json.loads((out / DASHBOARDS_DIR / "service.json").read_text())
    p95 = next(p for p in service["panels"] if p["title"].startswith("p95 per route"))
    assert [s["value"] for s in p95["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, 0.35]
    grafana = yaml.safe_load((out / ALERTING_DIR / "rules.yaml").read_text())
    latency = next(r for g in grafana["groups"] for r in g["rules"] if r["title"] == "ApiRouteLatencyHigh")
    assert latency["data"][2]["model"]["conditions"][0]["evaluator"]["params"] == [0.35]


def test_an_invalid_threshold_is_a_one_line_error(tmp_path):
    config = tmp_path / "performance.yml"
    config.write_text("slo:\n  http_latency: -1\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output  # the exit status of every configuration error
    assert f"invalid configuration: {config}: slo.http_latency=-1 is out of range" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_files_of_the_user_are_never_removed_or_overwritten(tmp_path):
    """A team's own dashboard, alert-rule file and runbook beside the generated ones survive, and
    their own docs/alerts.md is not overwritten (nothing is written until it is moved)."""
    runner = CliRunner()
    own = {
        f"{DASHBOARDS_DIR}/team.json": json.dumps({"uid": "team-board", "title": "Team", "panels": []}),
        f"{DASHBOARDS_DIR}/copied.json": json.dumps({"uid": "otel-perf-service", "title": "edited copy"}),
        f"{ALERTS_DIR}/team.alerts.yml": "groups: []\n",
        f"{ALERTING_DIR}/team-rules.yaml": "apiVersion: 1\ngroups: []\n",
        "docs/runbooks/TeamAlert.md": "# Our runbook\n",
    }
    for rel, text in own.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "docs/alerts.md").write_text("# Our alerts\n")
    refused = runner.invoke(cli, ["--out", str(tmp_path)])
    assert refused.exit_code == 1
    assert "not overwriting 1 file(s) otel-perf did not generate: docs/alerts.md" in refused.output
    assert (tmp_path / "docs/alerts.md").read_text() == "# Our alerts\n"
    assert not (tmp_path / ALERTS_DIR / "api.alerts.yml").exists()  # nothing written
    (tmp_path / "docs/alerts.md").rename(tmp_path / "docs/our-alerts.md")
    result = runner.invoke(cli, ["--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "removed" not in result.output
    for rel, text in own.items():
        assert (tmp_path / rel).read_text() == text, rel
    assert runner.invoke(cli, ["--check", "--out", str(tmp_path)]).exit_code == 0  # theirs are not "stale"
    forced = tmp_path / "forced"
    (forced / "docs").mkdir(parents=True)
    (forced / "docs/alerts.md").write_text("# Our alerts\n")
    assert runner.invoke(cli, ["--out", str(forced), "--force"]).exit_code == 0
    assert (forced / "docs/alerts.md").read_text().startswith(runbooks.HEADER)


def test_help_says_what_is_written_where():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for text in (RULES_DIR, ALERTS_DIR, ALERTING_DIR, DASHBOARDS_DIR, "docs/runbooks", "only files carrying",
                 "--force", "Examples:"):
        assert text in result.output, text


def test_route_latency_alert_follows_the_latency_target():
    strict = slo.DEFAULT.with_overrides({"http_latency_target": 0.99}, "t")
    alert = next(a for a in rules.alerts(strict) if a.name == "ApiRouteLatencyHigh")
    assert "histogram_quantile(0.99," in alert.expr and "p99 of" in alert.summary
    default = next(a for a in rules.alerts(slo.DEFAULT) if a.name == "ApiRouteLatencyHigh")
    assert "histogram_quantile(0.95," in default.expr
    panel = next(p for p in dashboards.service(strict)["panels"] if p["title"].startswith("p99 per route"))
    assert panel["targets"][0]["expr"].startswith("histogram_quantile(0.99,")


def test_promtool_accepts_the_rule_files():
    promtool = require("promtool", "prometheus")
    files = sorted(str(p) for d in PROMETHEUS_DIRS for p in (ROOT / d).glob("*.yml"))
    assert {Path(f).name.split(".")[0] for f in files} == {*rules.GROUPS, "sloth"}  # + the Sloth-compatible SLIs
    run = subprocess.run([promtool, "check", "rules", *files], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_dashboards_are_well_formed():
    datasources = {d["uid"] for p in (ROOT / "grafana/provisioning/datasources").glob("*.yaml")
                   for d in yaml.safe_load(p.read_text())["datasources"]}
    models = boards()
    assert set(models) == {*dashboards.DASHBOARDS, *error_budget.render(slo.DEFAULT)}
    uids = [m["uid"] for m in models.values()]
    assert len(set(uids)) == len(uids) and all(u.startswith("otel-perf-") for u in uids)
    for name, model in models.items():
        assert model["schemaVersion"] >= 39, name
        assert {v["name"] for v in model["templating"]["list"]} == {"service", "route", "instance"}
        for var in model["templating"]["list"]:
            assert var["datasource"]["uid"] in datasources
        ids = [p["id"] for p in model["panels"]]
        assert len(set(ids)) == len(ids), name
        for panel in model["panels"]:
            assert panel["title"], (name, panel["id"])
            if panel["type"] == "row":
                continue
            where = f"{name}: {panel['title']}"
            assert panel.get("description"), where
            assert panel["fieldConfig"]["defaults"].get("unit"), where
            assert panel["datasource"]["uid"] in datasources, where
            assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"]), where
            if panel["type"] == "timeseries" and any("histogram_quantile" in t["expr"] for t in panel["targets"]):
                assert any(t.get("exemplar") for t in panel["targets"]), f"latency panel without exemplars: {where}"


def test_sla_lines_come_from_the_spec():
    custom = replace(slo.DEFAULT, http_latency=0.3, db_slow=0.08)
    model = dashboards.service(custom)
    p95 = next(p for p in model["panels"] if p["title"].startswith("p95 per route"))
    assert p95["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"
    assert p95["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == 0.3
    assert any('le="0.3"' in expr for _, expr in dashboards.queries(model))
    db = dashboards.database(custom)
    assert any('le="0.08"' in expr for _, expr in dashboards.queries(db))


def test_grafana_alerting_provisioning_is_consistent():
    grafana = load_yaml(f"{ALERTING_DIR}/rules.yaml")
    contact = load_yaml(f"{ALERTING_DIR}/contact-points.yaml")
    policy = load_yaml(f"{ALERTING_DIR}/policies.yaml")
    mutes = load_yaml(f"{ALERTING_DIR}/mute-timings.yaml")
    table = {a.name: a for a in rules.alerts(slo.DEFAULT)}
    prometheus = {r["alert"]: r for g in rules.prometheus_rules(slo.DEFAULT).values() for grp in g["groups"]
                  for r in grp["rules"] if "alert" in r}
    dashboard_uids = {m["uid"] for m in boards().values()}
    seen = []
    for group in grafana["groups"]:
        assert group["folder"] == "otel-perf" and group["interval"]
        for rule in group["rules"]:
            seen.append(rule["title"])
            a = table[rule["title"]]
            assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", rule["uid"])
            assert rule["noDataState"] in ("OK", "NoData", "Alerting") and rule["execErrState"] == "Error"
            assert rule["for"] == prometheus[a.name]["for"]
            assert rule["labels"]["severity"] == prometheus[a.name]["labels"]["severity"]
            assert "$$labels" in rule["labels"]["service"]  # escaped from Grafana's env interpolation
            notes = rule["annotations"]
            assert notes["__dashboardUid__"] in dashboard_uids
            assert notes["runbook_url"].endswith(f"/docs/runbooks/{a.name}.md")
            assert (ROOT / "docs/runbooks" / f"{a.name}.md").is_file()
            assert "$values.B.Value" in notes["description"] or "$value" not in notes["description"]
            query, reduce, threshold = rule["data"]
            assert query["datasourceUid"] == "prometheus" and reduce["model"]["type"] == "reduce"
            [cond] = threshold["model"]["conditions"]
            if a.threshold is not None:  # the same threshold as the Prometheus rule
                assert query["model"]["expr"] == a.expr
                assert prometheus[a.name]["expr"].endswith(f"{a.op} {cond['evaluator']['params'][0]:.6g}")
                if a.recovery is not None:
                    assert cond["unloadEvaluator"]["params"] == [a.recovery]
            else:
                assert query["model"]["expr"] == prometheus[a.name]["expr"]
    assert sorted(seen) == sorted(table) and len(set(seen)) == len(seen)
    points = {c["name"] for c in contact["contactPoints"]}
    uids = [r["uid"] for c in contact["contactPoints"] for r in c["receivers"]]
    assert len(set(uids)) == len(uids)
    settings = json.dumps(contact)
    for var in ("$ALERT_WEBHOOK_URL", "$SLACK_WEBHOOK_URL", "$ALERT_EMAIL_TO"):
        assert var in settings  # from the environment, never a literal address
    [root] = policy["policies"]
    routes = root["routes"]
    assert root["receiver"] in points and all(r["receiver"] in points for r in routes)
    severities = {r["object_matchers"][0][2]: r for r in routes}
    assert set(severities) == {"critical", "warning", "info"}
    assert {a.severity for a in table.values()} <= set(severities)
    mute_names = {m["name"] for m in mutes["muteTimes"]}
    assert all(set(r.get("mute_time_intervals", [])) <= mute_names for r in routes)
    assert "otel-perf-off-hours" not in severities["critical"]["mute_time_intervals"]  # pages always go out


def test_every_threshold_of_the_spec_has_an_alert():
    names = {a.name for a in rules.alerts(slo.DEFAULT)}
    expected = {"ApiErrorBudgetBurnFast", "ApiErrorBudgetBurnSlow", "ApiLatencyBudgetBurnFast",
                "ApiLatencyBudgetBurnSlow", "ApiRouteLatencyHigh", "ApiThroughputDrop", "ApiRouteLatencyRegression",
                "DbSlowQueries", "DbMeanLatencyHigh", "DbMeanLatencyRegression", "DbNPlusOneQueries",
                "ProcessCpuHigh", "ProcessMemoryHigh", "CollectorRefusingTelemetry", "CollectorExportFailing",
                "CollectorQueueFilling", "SdkTelemetryDropped", "TelemetryAbsent", "CollectorDown"}
    expected |= {f"DbQueryClassSlow_{c.name}" for c in slo.DEFAULT.query_classes}
    expected |= {f"WebVital{v.upper()}High" for v in rules.VITALS}
    expected |= {f"WebVital{v.upper()}Poor" for v in rules.CORE_VITALS}
    assert expected <= names
    for a in rules.alerts(slo.DEFAULT):
        assert a.severity in ("critical", "warning", "info") and a.summary and a.checks and a.for_ > 0
        assert "{{ $value" in a.description or a.threshold is None


def test_scaled_timing_keeps_rule_names_and_shrinks_windows():
    fast = rules.prometheus_rules(slo.DEFAULT, rules.Timing(scale=1 / 60))
    normal = rules.prometheus_rules(slo.DEFAULT)
    names = [r.get("alert") or r.get("record") for d in normal.values() for g in d["groups"] for r in g["rules"]]
    assert names == [r.get("alert") or r.get("record") for d in fast.values() for g in d["groups"] for r in g["rules"]]
    assert "[1h]" in normal["slo"]["groups"][0]["rules"][6]["expr"]
    assert "[1m]" in fast["slo"]["groups"][0]["rules"][6]["expr"]
    assert rules.Timing(scale=1 / 60).d(3 * 86400) == "1h12m"


def test_render_includes_the_collector_files():
    files = render(slo.DEFAULT)
    from otel_perf.tools.generate import collector

    assert set(collector.render(slo.DEFAULT)) <= set(files)
