"""``otel-perf load --find-capacity`` against a service whose limit is known.

``limited_app`` serves ``/limited`` one request at a time, 36 ms each: at most 27.8 tasks/s of the
scenario (each task asks ``/limited`` then ``/fast``), i.e. 55.6 requests/s. Stated tolerance: the
knee and the highest sustainable throughput lie within 30 % below that limit and never above it
(a step of 2.5 tasks/s is 9 % of it); ``/limited`` is the route that breaks first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from otel_perf.tools import capacity
from tests.fixtures.net import free_port, wait_for

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
SECONDS = 0.036
LIMIT_TASKS = 1 / SECONDS
LIMIT_REQUESTS = 2 * LIMIT_TASKS


@pytest.fixture(scope="module")
def limited():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "limited_app:app", "--port", str(port),
                             "--no-access-log", "--log-level", "warning"], cwd=HERE,
                            env={**os.environ, "LIMITED_SECONDS": str(SECONDS)})
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        import urllib.request

        try:
            return urllib.request.urlopen(url + "/fast", timeout=1).status == 200
        except OSError:
            return False

    try:
        wait_for(up, timeout=30, what="the limited service")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def find(url: str, tmp_path: Path, *extra: str) -> tuple[dict, str]:
    out = tmp_path / "capacity.json"
    result = subprocess.run(
        [str(BIN / "otel-perf"), "load", str(HERE / "limited_locustfile.py"), "--url", url, "--find-capacity",
         "--json", str(out), *extra], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text()), result.stdout


def test_finds_the_knee_of_a_service_with_a_known_limit(limited, tmp_path):
    chart = tmp_path / "capacity.svg"
    result, text = find(limited, tmp_path, "--step", "2.5", "--step-duration", "2", "--duration", "60",
                        "--chart", str(chart))
    steps = result["steps"]
    table = [(s["offered"], round(s["achieved"], 1), round(s["mean"], 3), round(s["p95"], 3), s["broke"]) for s in steps]
    assert result["broke_first"]["route"] == "GET /limited", table
    assert 0.7 * LIMIT_REQUESTS <= result["knee"]["throughput"] <= 1.05 * LIMIT_REQUESTS, table
    assert 0.7 * LIMIT_REQUESTS <= result["sustainable_throughput"] <= 1.05 * LIMIT_REQUESTS, table
    assert max(s["achieved"] for s in steps) <= 1.1 * LIMIT_REQUESTS  # nobody gets past the limit
    assert steps[0]["achieved"] >= 0.9 * 2 * steps[0]["offered"]  # light load: everything offered is served
    assert not result["generator_bound"] and result["unjudged"] == []
    # the terminal chart and the image
    assert "broke first: GET /limited" in text and "knee:" in text and "|" in text
    svg = ET.parse(chart).getroot()
    assert svg.tag.endswith("svg") and len(svg.findall("{http://www.w3.org/2000/svg}polyline")) == 2


def test_bounded_in_time_and_requests(limited, tmp_path):
    result, text = find(limited, tmp_path, "--step", "5", "--step-duration", "1", "--duration", "3.5")
    assert result["stopped"] == "time bound reached" and len(result["steps"]) <= 3
    assert result["duration"] < 10
    result, _ = find(limited, tmp_path, "--step", "5", "--step-duration", "2", "--duration", "60",
                     "--requests", "30")
    assert result["stopped"] == "request bound reached"
    assert sum(s["requests"] for s in result["steps"]) <= 30


def test_refuses_hosts_that_are_not_loopback(tmp_path):
    result = subprocess.run(
        [str(BIN / "otel-perf"), "load", str(HERE / "limited_locustfile.py"), "--url", "http://192.0.2.1:8000",
         "--find-capacity"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--allow-host 192.0.2.1" in result.stderr


def test_knee_is_where_throughput_per_latency_peaks():
    def row(offered, achieved, mean, p95, broke=()):
        return {"offered": offered, "achieved": achieved, "mean": mean, "p95": p95, "requests": 100,
                "broke": list(broke), "missed": 0.0}

    # power (throughput / mean): 200, 400, 414 (the peak), 382 (within 10 % of it), 322, 78
    rows = [row(10, 10, 0.05, 0.06), row(20, 20, 0.05, 0.07), row(25, 24, 0.058, 0.08), row(27, 26, 0.068, 0.1),
            row(30, 29, 0.09, 0.15), row(40, 31, 0.4, 0.9, ["GET /x"])]
    result = capacity.summarize(rows, 0.2, 0.001, 50, "SLA broken")
    assert result["knee"]["offered"] == 27
    assert result["sustainable_throughput"] == 29
    assert result["broke_first"] == {"route": "GET /x", "offered": 40, "routes": ["GET /x"]}
