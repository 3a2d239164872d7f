"""The SLA spec's SLOs round-trip through OpenSLO v1 and Sloth prometheus/v1, and foreign files read."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from otel_perf._internal.config import sla
from otel_perf.tools import slo_formats
from otel_perf.tools.cli import main

DATA = Path(__file__).parent / "data"
KEYS = ("http_error_rate", "http_latency", "http_latency_target")
SPECS = [
    sla.DEFAULT,
    replace(sla.DEFAULT, http_error_rate=0.005, http_latency=0.3, http_latency_target=0.99),
    replace(sla.DEFAULT, http_error_rate=0.0001, http_latency=1.0, http_latency_target=0.9),  # integer bucket
    replace(sla.DEFAULT, http_error_rate=0.02, http_latency=0.075, http_latency_target=0.999),
]
# A base spec that differs in every key, so a value that is not carried over shows.
BASE = replace(sla.DEFAULT, http_error_rate=0.123, http_latency=9.0, http_latency_target=0.5)


def picked(spec: sla.SLO) -> dict[str, float]:
    return {k: getattr(spec, k) for k in KEYS}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.http_error_rate}-{s.http_latency}-{s.http_latency_target}")
@pytest.mark.parametrize("fmt", ["openslo", "sloth"])
def test_spec_round_trips_through_the_file(spec, fmt):
    text = slo_formats.dump(fmt, spec, "shop")
    imported = slo_formats.read(text)
    assert imported.warnings == []
    back = imported.apply(BASE, "test")
    assert picked(back) == picked(spec)
    assert back.db_slow == BASE.db_slow  # what the formats do not carry keeps the base value
    # and the file written from what was read is the file read
    assert slo_formats.dump(fmt, back, "shop") == text


def test_openslo_documents_are_v1_and_linked():
    docs = slo_formats.to_openslo(sla.DEFAULT, "shop")
    assert {d["apiVersion"] for d in docs} == {"openslo/v1"}
    kinds = {}
    for d in docs:
        kinds.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    assert set(kinds) == {"Service", "SLI", "SLO", "AlertPolicy"}
    assert len(kinds["SLO"]) == 2
    for slo in kinds["SLO"].values():
        spec = slo["spec"]
        assert spec["service"] in kinds["Service"] and spec["indicatorRef"] in kinds["SLI"]
        assert spec["timeWindow"] == [{"duration": "30d", "isRolling": True}]
        policies = [kinds["AlertPolicy"][name] for name in spec["alertPolicies"]]
        conditions = sorted((c["spec"]["severity"], c["spec"]["condition"]["threshold"],
                             c["spec"]["condition"]["lookbackWindow"], c["spec"]["condition"]["alertAfter"])
                            for p in policies for c in p["spec"]["conditions"])
        assert conditions == [("page", 6.0, "6h", "30m"), ("page", 14.4, "1h", "5m"),
                              ("ticket", 1.0, "3d", "6h"), ("ticket", 3.0, "1d", "2h")]
        assert all(c["spec"]["condition"]["kind"] == "burnrate" for p in policies for c in p["spec"]["conditions"])


def test_sloth_spec_queries_carry_the_window_placeholder():
    spec = slo_formats.to_sloth(sla.DEFAULT, "shop")
    assert spec["version"] == "prometheus/v1" and spec["service"] == "shop"
    assert [s["objective"] for s in spec["slos"]] == [99.9, 95.0]
    for item in spec["slos"]:
        for query in item["sli"]["events"].values():
            assert "[{{.window}}]" in query and 'job="shop"' in query


def test_reads_sloths_own_example():
    imported = slo_formats.read((DATA / "sloth-getting-started.yml").read_text())
    assert imported.values == {"http_error_rate": pytest.approx(0.001), "http_latency": 0.3,
                               "http_latency_target": pytest.approx(0.99)}


def test_reads_a_foreign_openslo_file_and_warns_about_what_differs():
    imported = slo_formats.read((DATA / "openslo-foreign.yml").read_text())
    assert imported.values == {"http_error_rate": pytest.approx(0.005)}
    text = "\n".join(imported.warnings)
    assert "28d" in text and "burn-rate conditions" in text


@pytest.mark.parametrize("text, message", [
    ("apiVersion: openslo/v1\nkind: Service\nmetadata: {name: x}\n", "no OpenSLO SLO"),
    ("version: prometheus/v1\nservice: x\nslos: []\n", "no SLO otel-perf can read"),
    ("version: prometheus/v1\nservice: x\nslos:\n- name: a\n  objective: 120\n  sli: {raw: {error_ratio_query: x}}\n",
     "not between 0 and 1"),
    ("kind: Something\n", "not an OpenSLO document"),
])
def test_bad_files_fail_with_a_reason(text, message):
    with pytest.raises(ValueError, match=message):
        slo_formats.read(text)


def test_cli_export_then_import(tmp_path):
    out = tmp_path / "shop.openslo.yaml"
    with pytest.raises(SystemExit) as exit_:
        main(["slo", "export", "--service", "shop", "-o", str(out)])
    assert exit_.value.code == 0
    runner = CliRunner()
    result = runner.invoke(slo_formats.cli, ["import", str(DATA / "openslo-foreign.yml")])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout) == {"slo": {"http_error_rate": pytest.approx(0.005)}}
    assert "warning:" in result.stderr
    result = runner.invoke(slo_formats.cli, ["import", str(out)])
    assert yaml.safe_load(result.stdout)["slo"] == picked(sla.DEFAULT)
    help_text = runner.invoke(slo_formats.cli, ["export", "-h"]).output
    assert "Example" in help_text


def _records(doc: dict) -> dict[str, set[frozenset[str]]]:
    """Record name -> the sets of sloth_* label names its rules produce (from the expression or the rule's labels)."""
    out: dict[str, set[frozenset[str]]] = {}
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "record" not in rule:
                continue
            names = set(rule.get("labels", {})) | set(re.findall(r'"(sloth_\w+)"', rule["expr"]))
            names |= set(re.findall(r"(sloth_\w+)=", rule["expr"]))
            out.setdefault(rule["record"], set()).add(frozenset(n for n in names if n.startswith("sloth_")))
    return out


def test_our_sloth_rules_record_what_real_sloth_generates_from_our_export():
    from otel_perf.tools.generate import sloth

    # the export Sloth was given is still what otel-perf writes (else re-record the data files)
    assert yaml.safe_load(slo_formats.dump("sloth", sla.DEFAULT, "shop")) == yaml.safe_load(
        (DATA / "sloth-export-shop.yml").read_text())
    theirs = _records(yaml.safe_load((DATA / "sloth-generated-shop.yml").read_text()))
    ours = _records(sloth.rules_file(sla.DEFAULT))
    assert set(ours) == set(theirs)
    for record, label_sets in theirs.items():
        # Sloth puts sloth_id/sloth_service/sloth_slo on each rule as static labels; ours derive them
        # from job in the expression; sloth_window only on the SLIs, sloth_mode/spec/version on the info
        wanted = set().union(*label_sets) - {"sloth_severity"}
        got = set().union(*ours[record])
        assert wanted <= got | {"sloth_id", "sloth_service", "sloth_slo"}, record
        if record.startswith("slo:sli_error:"):
            assert "sloth_window" in got
