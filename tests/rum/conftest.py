"""In-process helpers: the RUM test app behind otel_perf's real ASGI middleware, driven by httpx."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from otel_perf import OtelPerfMiddleware
from otel_perf._internal.catalogue import RUM_REJECTED
from tests.rum import app as rum_app

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Client:
    """Sends requests through ``OtelPerfMiddleware(app)`` in-process."""

    def __init__(self, t: Any, client: tuple[str, int] = ("203.0.113.7", 5000)):
        self.t = t
        self.app = OtelPerfMiddleware(rum_app.app)
        self.client = client

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=True, client=self.client)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return await c.request(method, path, **kwargs)

        return asyncio.run(go())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def beacon(self, payload: Any, **kwargs: Any) -> httpx.Response:
        content = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        return self.request("POST", "/_otel/vitals", content=content,
                            headers={"content-type": "text/plain;charset=UTF-8"}, **kwargs)

    def rejected(self) -> dict[str, int]:
        return {p.attributes["reason"]: p.value for p in self.t.points(RUM_REJECTED.name)}


def collect(t: Any) -> dict[str, list]:
    """Every metric's data points from ONE collection (exemplars are handed out once, then reset)."""
    data = t.reader.get_metrics_data()
    found: dict[str, list] = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


@pytest.fixture
def rum(telemetry):
    """``rum(**settings)`` -> Client with RUM switched on (rate limit off unless given)."""

    def make(**settings: Any) -> Client:
        settings.setdefault("rum_rate_limit", 0)
        return Client(telemetry(rum=True, **settings))

    return make


def beacon(route: str | None = "/pages/{page_id}", traceparent: str | None = TRACEPARENT, **vitals: float) -> dict:
    metrics = [{"name": k.upper(), "value": v, "id": f"v5-{k}", "navigationType": "navigate"} for k, v in vitals.items()]
    return {"route": route, "traceparent": traceparent, "device": "desktop", "metrics": metrics}
