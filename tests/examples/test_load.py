"""``otel-perf load`` against a real HTTP server on loopback: bounds hold, other hosts are refused."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from otel_perf.tools.load import check_host, check_target

OTEL_PERF = str(Path(sys.executable).parent / "otel-perf")
SCENARIO = '''
from locust import {user}, constant, task

class Visitor({user}):
    wait_time = constant({wait})

    @task
    def hit(self):
        self.client.get("{path}", name="/items/{{id}}")
'''


class CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.hits = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)

    def handle_error(self, request, client_address) -> None:
        pass  # clients cut off at the end of a run: broken pipes are expected


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.hits += 1
        body = b"ok"
        self.send_response(200 if "/items/" in self.path else 500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server():
    srv = CountingServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def scenario(tmp_path: Path, user: str = "FastHttpUser", wait: float = 0.0, path: str = "/items/1") -> str:
    file = tmp_path / "scenario.py"
    file.write_text(SCENARIO.format(user=user, wait=wait, path=path))
    return str(file)


def load(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([OTEL_PERF, "load", *args], capture_output=True, text=True, timeout=timeout)


def test_request_bound(server, tmp_path):
    out = tmp_path / "result.json"
    proc = load(scenario(tmp_path), "--url", f"http://127.0.0.1:{server.server_port}", "--users", "4",
                "--requests", "200", "--duration", "60", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["requests"] == 200
    assert server.hits == 200  # the budget is taken before sending: not one request more
    assert result["duration"] < 60  # the request bound stopped it, not the time bound
    [row] = result["routes"]
    assert (row["method"], row["route"], row["count"], row["errors"]) == ("GET", "/items/{id}", 200, 0)
    assert 0 < row["p50"] <= row["p95"] <= row["p99"] <= row["max"]
    assert "/items/{id}" in proc.stdout and "req/s" in proc.stdout


def test_time_bound_and_error_rate(server, tmp_path):
    out = tmp_path / "result.json"
    started = time.monotonic()
    proc = load(scenario(tmp_path, user="HttpUser", wait=0.05, path="/broken"), "--url",
                f"http://127.0.0.1:{server.server_port}", "--users", "2", "--duration", "2", "--json", str(out),
                "--max-error-rate", "0.5")
    wall = time.monotonic() - started
    result = json.loads(out.read_text())
    assert proc.returncode == 1 and "error rate" in proc.stderr  # every request got a 500
    assert 2 <= result["duration"] < 5 and wall < 30
    assert result["requests"] > 0 and result["error_rate"] == 1.0
    # the process has exited: at most the 2 users' in-flight requests went uncounted
    assert result["requests"] <= server.hits <= result["requests"] + 2


def test_non_loopback_targets_are_refused_before_any_traffic(tmp_path):
    proc = load(scenario(tmp_path), "--url", "http://192.0.2.10:8080", "--duration", "1")
    assert proc.returncode == 2
    assert "192.0.2.10 is not a loopback address" in proc.stderr and "--allow-host" in proc.stderr


def test_scenario_cannot_reach_other_hosts(server, tmp_path):
    # The scenario names an absolute non-loopback URL; the resolver guard refuses it before connecting.
    proc = load(scenario(tmp_path, path="http://192.0.2.10:8080/items/1"), "--url",
                f"http://127.0.0.1:{server.server_port}", "--users", "1", "--duration", "10")
    assert proc.returncode == 1
    assert "not allowed" in proc.stderr and "192.0.2.10" in proc.stderr
    assert server.hits == 0


def test_target_rules():
    assert check_target("http://127.0.0.1:8000") is None
    assert check_target("http://localhost/") is None
    assert check_target("http://[::1]:80/") is None
    assert check_target("http://10.0.0.5/") is not None
    assert check_target("ftp://127.0.0.1/") is not None
    assert check_target("http://staging.internal/", ("staging.internal",)) is None
    assert check_host("127.9.9.9") is None and check_host("192.168.1.1") is not None
