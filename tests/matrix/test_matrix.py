"""The compatibility matrix: the same scenario on every supported framework version.

Each environment (tests/matrix/envs.py) runs a scenario script against a real uvicorn with
otel-perf configured as the global providers, and reports JSON; the assertions below are the
same for every version. See docs/frameworks.md for what each version gives.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.procs import env
from tests.matrix import envs

HERE = Path(__file__).resolve().parent
ASGI_ENVS = [name for name in envs.ENVS if not name.startswith("django")]


def run_scenario(name: str, script: str) -> dict:
    python = envs.python(name)
    result = subprocess.run([python, str(HERE / script)], cwd=HERE, env=env(), capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, f"{script} failed in {name}:\n{result.stderr[-4000:]}"
    return json.loads(result.stdout)


@pytest.fixture(scope="module", params=ASGI_ENVS)
def fastapi_results(request) -> dict:
    return run_scenario(request.param, "scenario_fastapi.py")


def only_server_span(case: dict) -> dict:
    spans = case["spans"]
    assert len(spans) == 1, spans  # exactly one SERVER span per request, whatever FastAPI does
    assert spans[0]["scope"] == "otel_perf.http"
    return spans[0]


ROUTES = {
    "prefix_v1": "/api/v1/items/{item_id}",  # include_router(prefix=...)
    "prefix_v2": "/api/v2/items/{item_id}",  # the same router under a second prefix
    "nested": "/api/outer/mid/inner/{x}",  # router in a router, both with prefixes
    "mount_params": "/api/t/{tenant}/items/{item_id}",  # /api/t/7/items/7: equal values
    "mount_literal": "/org/{org}/api/items/{item_id}",  # /org/api/api/items/9: value = literal
    "plain": "/plain",  # a plain Starlette Route on a FastAPI app
    "docs": "/docs",
    "openapi": "/openapi.json",
    "boom": "/boom",
}


def test_route_templates_come_from_the_matched_routes(fastapi_results):
    cases = fastapi_results["cases"]
    for case, route in ROUTES.items():
        span = only_server_span(cases[case])
        assert span["attributes"].get("http.route") == route, (case, fastapi_results["versions"])
        assert span["name"] == f"GET {route}"


def test_404_inside_a_mount_has_no_route(fastapi_results):
    for case in ("mount_404", "not_found"):
        span = only_server_span(fastapi_results["cases"][case])
        assert "http.route" not in span["attributes"], span
        assert span["attributes"]["http.response.status_code"] == 404
        assert span["name"] == "GET"


def test_one_duration_series_per_request_with_sla_buckets(fastapi_results):
    series = fastapi_results["duration_series"]
    assert {s["scope"] for s in series} == {"otel_perf.http"}  # never FastAPI's own second series
    assert fastapi_results["span_scopes"] == ["otel_perf.http"]
    by_route = {}
    for s in series:
        by_route[s["attributes"].get("http.route")] = by_route.get(s["attributes"].get("http.route"), 0) + s["count"]
    for route in ROUTES.values():
        assert by_route[route] == 1, (route, by_route)
    assert by_route[None] == 2  # the two 404s
    assert all(0.2 in s["bounds"] for s in series)


def test_server_timing_names_the_one_server_span(fastapi_results):
    case = fastapi_results["cases"]["prefix_v1"]
    span = only_server_span(case)
    assert span["span_id"] in case["server_timing"]


def test_request_ends_with_its_last_byte_before_background_tasks(fastapi_results):
    case = fastapi_results["cases"]["background"]
    span = only_server_span(case)
    (task,) = [s for s in case["all"] if s["kind"] == "INTERNAL"]
    assert task["name"] == "background slow_background"
    assert task["parent"] == span["span_id"]
    # ordering, not timing: the request's span had ended before the task started
    assert span["end"] <= case["task"]["start"] <= task["end"]


@pytest.mark.parametrize("kind", ["stream", "sse"])
def test_streams_stream_and_the_span_ends_with_them(fastapi_results, kind):
    case = fastapi_results["cases"][kind]
    # the second chunk is produced only after the client read the first one
    assert case["status"] == 200 and case["rest"]
    span = only_server_span(case)
    assert span["end"] >= case["last_chunk"]
    assert span["attributes"]["http.route"] == f"/{kind}"


def test_websockets_keep_working(fastapi_results):
    assert fastapi_results["cases"]["websocket"]["echo"] == "echo hi"


def test_client_disconnects_are_not_server_errors(fastapi_results):
    span = only_server_span(fastapi_results["cases"]["disconnect_stream"])
    assert span["attributes"]["error.type"]  # recorded, as the conventions say
    assert span["attributes"].get("http.response.status_code", 0) < 500
    summary = {r["route"]: r for r in fastapi_results["summary_routes"]}
    assert summary["/endless"]["errors"] == 0 and summary["/slow"]["errors"] == 0
    assert summary["/boom"]["errors"] == 1  # a real failure still counts
    early = only_server_span(fastapi_results["cases"]["disconnect_early"])
    assert early["attributes"].get("http.response.status_code", 0) < 500


# -- Django over ASGI ------------------------------------------------------------------------------

DJANGO_ROUTES = {
    "root": "/",
    "async": "/articles/<int:year>/",
    "prefix_v1": "/api/v1/items/<int:item_id>",
    "prefix_v2": "/api/v2/items/<int:item_id>",  # one URLconf included under two prefixes
    "nested": "/api/v1/nested/deep/<slug:s>",
    "mount_params": "/t/<int:tenant>/items/<int:item_id>",  # /t/7/items/7
    "mount_literal": "/org/<str:org>/api/items/<int:item_id>",  # /org/api/api/items/9
    "re_path": "^old/(?P<n>[0-9]+)/$",  # re_path patterns as Django reports them
    "boom": "/boom",
    "stream": "/stream",
}


@pytest.fixture(scope="module")
def django_results() -> dict:
    return run_scenario("django-5.2", "scenario_django.py")


def test_django_routes_come_from_the_resolver(django_results):
    cases = django_results["cases"]
    for case, route in DJANGO_ROUTES.items():
        span = only_server_span(cases[case])
        assert span["attributes"].get("http.route") == route, (case, span)
        assert span["name"] == f"GET {route}"
    for case in ("not_found", "include_404"):
        span = only_server_span(cases[case])
        assert "http.route" not in span["attributes"] and span["attributes"]["http.response.status_code"] == 404
    assert only_server_span(cases["boom"])["attributes"]["error.type"] == "500"


def test_django_one_series_per_request_and_summary_by_route(django_results):
    series = django_results["duration_series"]
    assert {s["scope"] for s in series} == {"otel_perf.http"}
    counted = {s["attributes"].get("http.route"): s["count"] for s in series}
    assert all(counted[route] == 1 for route in DJANGO_ROUTES.values()), counted
    summary = {r["route"]: r for r in django_results["summary_routes"]}
    assert summary["(unmatched)"]["count"] == 2  # only the two 404s
    assert summary["/boom"]["errors"] == 1 and summary["/endless"]["errors"] == 0


def test_django_streams_and_disconnects(django_results):
    case = django_results["cases"]["stream"]
    assert case["rest"] == "two;"
    assert only_server_span(case)["end"] >= case["last_chunk"]
    span = only_server_span(django_results["cases"]["disconnect_stream"])
    assert span["attributes"]["error.type"] and span["attributes"].get("http.response.status_code", 0) < 500
