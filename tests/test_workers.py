"""Services of several processes: uvicorn --workers, gunicorn (also as ``python -m gunicorn``),
multiprocessing children. One service name everywhere, one summary for all requests, and no
process exporting another's (or a parent's) state."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.fixtures.net import wait_for
from tests.fixtures.procs import APPS, BIN, Server, env, free_port, serve
from tests.test_pipeline import FAST, request_counts

LOCAL = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
         "OTEL_PERF_SUMMARY": "true"}


def python_m_gunicorn(extra: tuple[str, ...], **environ: str) -> Server:
    port = free_port()
    argv = [str(BIN / "otel-perf"), "run", "python", "-m", "gunicorn", "-k", "uvicorn.workers.UvicornWorker",
            "-b", f"127.0.0.1:{port}", *extra, "starlette_app:app"]
    return Server(argv, env(**environ), port, workers=int(extra[extra.index("-w") + 1])).wait_ready()


SERVERS = {
    "uvicorn --workers 2": lambda **e: serve(extra=("--workers", "2"), **e),
    "gunicorn -w 2": lambda **e: serve(server="gunicorn", extra=("-w", "2"), **e),
    "python -m gunicorn -w 2": lambda **e: python_m_gunicorn(("-w", "2"), **e),
    "uvicorn --reload": lambda **e: serve(extra=("--reload", "--reload-dir", str(APPS / "reload_watch")), **e),
}


@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_one_summary_covers_every_worker(kind, tmp_path):
    summary_file = tmp_path / "summary.json"
    server = SERVERS[kind](OTEL_PERF_SUMMARY_FILE=str(summary_file), **LOCAL)
    statuses = [server.get("/fast") for _ in range(30)] + [server.get("/items/4") for _ in range(10)]
    assert statuses == [200] * 40
    assert server.stop(), server.stderr
    data = json.loads(summary_file.read_text())
    routes = {r["route"]: r for r in data["routes"]}
    assert routes["/fast"]["count"] == 30 and routes["/items/{item_id}"]["count"] == 10, data["routes"]
    assert data["service"] == "starlette_app"  # the application, not the launcher
    assert server.stderr.count("SLA summary") <= 1 and server.stderr.count("GET /fast") == 1, server.stderr
    assert server.stderr.count("service.name=starlette_app") == 1  # said once, with how to change it
    assert "Address already in use" not in server.stderr and "Traceback" not in server.stderr


@pytest.mark.parametrize("kind", ["uvicorn --workers 2", "python -m gunicorn -w 2"])
def test_workers_share_one_service_name_and_the_supervisor_exports_nothing(kind, otlp_http):
    server = SERVERS[kind](OTEL_EXPORTER_OTLP_ENDPOINT=otlp_http.endpoint, OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="process",
                           **FAST)
    statuses = [server.get("/fast") for _ in range(40)]
    assert statuses == [200] * 40
    wait_for(lambda: sum(request_counts(otlp_http, "/fast").values()) == 40, timeout=30, what="40 requests")
    assert server.stop(), server.stderr
    resources = otlp_http.resources()
    assert {r["service.name"] for r in resources} == {"starlette_app"}
    pids = {r["process.pid"] for r in resources}
    assert server.proc.pid not in pids  # the supervisor (`otel-perf run` execs it: same pid) exports nothing
    assert len(pids) >= 2  # the workers do, each as its own instance
    assert len({r["service.instance.id"] for r in resources}) == len(pids)


def test_forked_child_starts_clean_and_its_requests_join_the_summary(otlp_http, tmp_path):
    summary_file = tmp_path / "summary.json"
    result = subprocess.run(
        [str(BIN / "otel-perf"), "run", "python", "fork_app.py"], cwd=APPS, capture_output=True, text=True, timeout=120,
        env=env(OTEL_EXPORTER_OTLP_ENDPOINT=otlp_http.endpoint, OTEL_PERF_SUMMARY="true",
                OTEL_PERF_SUMMARY_FILE=str(summary_file), **FAST),
    )
    assert result.returncode == 0, result.stderr
    wait_for(lambda: len(otlp_http.points("fork_app.work")) >= 2, timeout=20, what="both processes' work")
    latest: dict[str, int] = {}
    for resource, point in otlp_http.points("fork_app.work"):
        latest[resource["service.instance.id"]] = point.as_int
    # the child counts its own 2, never the parent's 3 again (under the parent's identity or its own)
    assert sorted(latest.values()) == [2, 3], latest
    assert {r["service.name"] for r in otlp_http.resources()} == {"fork_app"}
    counts = request_counts(otlp_http, "/fast")
    assert sorted(counts.values()) == [2, 3], counts
    data = json.loads(summary_file.read_text())
    (fast,) = [r for r in data["routes"] if r["route"] == "/fast"]
    assert fast["count"] == 5  # the parent's summary covers the child's requests
    assert result.stderr.count("GET /fast") == 1, result.stderr  # printed once, by the parent
