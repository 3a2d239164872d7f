"""The example under ``otel-perf run`` in the local default: the exit summary names what is wrong."""

from __future__ import annotations

import html
import re
import urllib.request

from .conftest import run_example

AUTHORS = "/api/patients/{patient_id}/authors"
REPORT = "/api/reports/activity"


def _get(url: str) -> int:
    return _fetch(url)[0]


def _fetch(url: str) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"X-Provider-Id": "1"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.read().decode()


def test_summary_shows_n_plus_one_slow_query_and_rls_class(timeline_dsn, tmp_path):
    pages = []

    def drive(url: str) -> None:
        pages.append(_fetch(f"{url}/?provider=1"))
        script = re.search(r'<script src="(/_otel/rum\.js[^"]*)"', pages[0][1])
        pages.append(_fetch(url + html.unescape(script.group(1))) if script else (0, ""))
        for patient in (1, 21, 41):
            assert _get(f"{url}/api/patients/{patient}/authors") == 200
            assert _get(f"{url}/api/patients/{patient}/timeline") == 200
        for _ in range(2):
            assert _get(f"{url}{REPORT}") == 200

    summary = run_example(timeline_dsn, tmp_path / "summary.json", drive, OTEL_PERF_RUM="true")

    (status, page), (script_status, script) = pages
    assert status == 200 and '<script src="/_otel/rum.js' in page  # injected by otel_perf, not the app
    assert script_status == 200 and "vitals" in script

    [suspect] = [s for s in summary["n_plus_one"] if s["route"] == AUTHORS]
    assert "clinicians" in suspect["shape"] and suspect["requests"] == 3
    assert suspect["max_count"] == 25 >= summary["sla"]["n_plus_one"]
    assert not [s for s in summary["n_plus_one"] if s["route"] != AUTHORS]  # no false suspects

    routes = {r["route"]: r for r in summary["routes"]}
    assert routes[REPORT]["verdict"] == "slow" and routes[REPORT]["count"] == 2
    assert routes[AUTHORS]["verdict"] == "ok"

    queries = {q["shape"]: q for q in summary["queries"]}
    [slow] = [q for shape, q in queries.items() if "pg_sleep" in shape]
    assert slow["slow"] == 2 and slow["threshold"] == summary["sla"]["db_slow"]
    assert not any(q["slow"] for shape, q in queries.items() if "pg_sleep" not in shape)
    [rls] = [q for shape, q in queries.items() if "current_setting" in shape]
    assert rls["threshold"] == 0.05 and rls["count"] == 3 * 2  # access check in timeline and authors

    assert "N+1 suspect" in summary["stderr"] and AUTHORS in summary["stderr"]
