"""The example service under ``otel-perf run``: the missing index and the CPU-heavy route are found.

The clinician query runs in a query class with a 10 ms budget (the scan of 50,000 events overruns
it; with the suggested index it would not); the trend report works on all the provider's ~2,500 events here
(quadratic: about 0.6 s on a quiet machine, well past the 200 ms SLA).
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.examples.conftest import run_example

HEADERS = {"X-Provider-Id": "3"}


def _get(url: str) -> int:
    request = urllib.request.Request(url, headers=HEADERS)
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status


def test_example_names_the_missing_index_and_the_hot_function(timeline, tmp_path):
    def drive(url: str) -> None:
        for clinician in (3, 23, 43):  # the provider's clinicians
            assert _get(f"{url}/api/clinicians/{clinician}/events") == 200
        for _ in range(4):
            assert _get(f"{url}/api/reports/trend") == 200
            assert _get(f"{url}/api/patients/3/timeline") == 200
        for clinician in (63, 83):  # after the plan: its findings ride on the slow spans
            assert _get(f"{url}/api/clinicians/{clinician}/events") == 200

    summary = run_example(timeline, tmp_path / "summary.json", drive, EXAMPLE_TREND_EVENTS="2500")
    advice = [f for entry in summary["plan_findings"] for f in entry["findings"]
              if f["kind"] == "seq_scan" and f["suggestion"]]
    assert [f["suggestion"] for f in advice] == ["CREATE INDEX ON timeline.events (author_id);"], summary["plan_findings"]
    profiles = {p["route"]: p for p in summary["profiles"]}
    trend = profiles["GET /api/reports/trend"]
    assert trend["requests"] >= 2 and trend["top"][0]["frame"] == "report.py:build_rows", (trend, summary["routes"])
    assert "report.py:build_rows" in summary["stderr"] and "CREATE INDEX ON timeline.events (author_id)" in summary["stderr"]

    # the same, as a Markdown report (what a CI job attaches to a pull request)
    report = subprocess.run([str(Path(sys.executable).with_name("otel-perf")), "bottlenecks",
                             str(tmp_path / "summary.json"), "--fail-on-findings"], capture_output=True, text=True)
    assert report.returncode == 1, report.stderr
    assert "`CREATE INDEX ON timeline.events (author_id);`" in report.stdout
    assert "| `GET /api/reports/trend` |" in report.stdout and "`report.py:build_rows`" in report.stdout
