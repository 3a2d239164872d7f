"""A narrow scenario for the regression-gate test: the report route (its cost set by
EXAMPLE_SLOW_SECONDS) and the timeline, half each, so both get enough samples for a steady p95."""

from __future__ import annotations

import random

from locust import FastHttpUser, constant, task


class Reader(FastHttpUser):
    wait_time = constant(0.01)
    headers = {"X-Provider-Id": "1"}

    @task
    def report(self) -> None:
        self.client.get("/api/reports/activity", headers=self.headers)

    @task
    def timeline(self) -> None:
        patient = 1 + 20 * random.randrange(50)  # provider 1's patients
        self.client.get(f"/api/patients/{patient}/timeline?limit=20", name="/api/patients/{patient_id}/timeline",
                        headers=self.headers)
