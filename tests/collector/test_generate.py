"""The committed gateway configs are the rendering of the default SLA spec; thresholds follow the spec."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import yaml

from otel_perf._internal.config import sla as slo
from otel_perf.tools.generate.collector import GATEWAY, GATEWAY_HELM, render
from otel_perf.tools.validate import validate

ROOT = Path(__file__).resolve().parents[2]


def policies(text: str, helm: bool = False) -> dict[str, dict]:
    doc = yaml.safe_load(text)
    config = doc["config"] if helm else doc
    return {p["name"]: p for p in config["processors"]["tail_sampling"]["policies"]}


def test_committed_files_are_the_default_rendering():
    for rel, text in render(slo.DEFAULT).items():
        assert (ROOT / rel).read_text() == text, f"{rel} is stale: run `otel-perf generate`"


def test_policies_follow_the_sla_spec():
    files = render(slo.DEFAULT)
    for rel, helm in ((GATEWAY, False), (GATEWAY_HELM, True)):
        got = policies(files[rel], helm)
        assert got["errors"]["status_code"] == {"status_codes": ["ERROR"]}
        [server] = got["slow-requests"]["ottl_condition"]["span"]
        assert server == "kind == SPAN_KIND_SERVER and end_time_unix_nano - start_time_unix_nano > 200000000"
        [db] = got["slow-db-statements"]["ottl_condition"]["span"]
        assert db.endswith("end_time_unix_nano - start_time_unix_nano > 100000000")
        assert "db.system.name" in db
        assert got["baseline-share"]["type"] == "probabilistic"


def test_thresholds_change_with_the_spec(tmp_path):
    custom = replace(slo.DEFAULT, http_latency=0.35, db_slow=0.025)
    files = render(custom)
    got = policies(files[GATEWAY])
    assert got["slow-requests"]["ottl_condition"]["span"][0].endswith("> 350000000")
    assert got["slow-db-statements"]["ottl_condition"]["span"][0].endswith("> 25000000")
    assert files[GATEWAY] != render(slo.DEFAULT)[GATEWAY]
    # Whatever the thresholds, the rendering is a valid config for the pinned Collector.
    for rel, text in files.items():
        (tmp_path / Path(rel).name).write_text(text)
    assert [str(p) for p in validate([tmp_path]) if not p.warning] == []
