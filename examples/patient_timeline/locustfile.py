"""Load scenario for the patient timeline (a plain Locust file; ``otel-perf load`` or ``locust -f`` run it).

Each simulated user is a clinician of one provider: mostly reading timelines (and paging on),
searching, now and then writing an event, opening the HTML page, the N+1 and the slow report, and
sometimes asking for another provider's patient (row-level security answers 404, as it should).
One user is an analyst instead, now and then running the two reports whose causes the bottleneck
finder shows (docs/bottlenecks.md): a clinician's events (no index) and the CPU-heavy trend.
"""

from __future__ import annotations

import random

from locust import FastHttpUser, between, task

PROVIDERS = 20  # as seeded (patients are dealt round-robin: provider p has p, p + 20, p + 40, ...)
PATIENTS = 1000
KINDS = ("visit", "lab_result", "prescription", "note", "imaging", "vital_signs", "referral")
SEARCH = ("sm", "j", "gar", "mil", "da", "lo", "wi", "and", "th", "mo", "ma", "le")


class Clinician(FastHttpUser):
    wait_time = between(0.02, 0.1)

    def on_start(self) -> None:
        self.provider = random.randint(1, PROVIDERS)
        self.headers = {"X-Provider-Id": str(self.provider)}

    def patient(self) -> int:
        return self.provider + PROVIDERS * random.randrange(PATIENTS // PROVIDERS)

    @task(10)
    def timeline(self) -> None:
        name = "/api/patients/{patient_id}/timeline"
        path = f"/api/patients/{self.patient()}/timeline"
        with self.rest("GET", path + "?limit=20", name=name, headers=self.headers) as resp:
            cursor = resp.js.get("next") if resp.js else None
        if cursor and random.random() < 0.3:
            self.client.get(f"{path}?limit=20&before={cursor}", name=name, headers=self.headers)

    @task(4)
    def search(self) -> None:
        self.client.get(f"/api/patients?q={random.choice(SEARCH)}", name="/api/patients", headers=self.headers)

    @task(1)
    def create_event(self) -> None:
        self.client.post(f"/api/patients/{self.patient()}/events", name="/api/patients/{patient_id}/events",
                         headers=self.headers, json={"kind": random.choice(KINDS), "summary": "follow-up",
                                                     "author_id": self.provider})

    @task(2)
    def authors(self) -> None:  # the N+1 endpoint
        self.client.get(f"/api/patients/{self.patient()}/authors", name="/api/patients/{patient_id}/authors",
                        headers=self.headers)

    @task(1)
    def report(self) -> None:  # the slow endpoint
        self.client.get("/api/reports/activity", name="/api/reports/activity", headers=self.headers)

    @task(1)
    def page(self) -> None:
        self.client.get(f"/?provider={self.provider}", name="/")

    @task(1)
    def someone_elses_patient(self) -> None:
        other = self.provider % PROVIDERS + 1
        with self.client.get(f"/api/patients/{other}/timeline", name="/api/patients/{patient_id}/timeline (denied)",
                             headers=self.headers, catch_response=True) as resp:
            if resp.status_code == 404:
                resp.success()
            else:
                resp.failure(f"row-level security let provider {self.provider} see patient {other}")


class Analyst(FastHttpUser):
    fixed_count = 1  # one of the users, whatever their number: the reports are heavy
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.provider = random.randint(1, PROVIDERS)
        self.headers = {"X-Provider-Id": str(self.provider)}

    @task
    def clinician_events(self) -> None:  # a sequential scan an index would avoid
        clinician = self.provider + PROVIDERS * random.randrange(5)  # one of the provider's five
        self.client.get(f"/api/clinicians/{clinician}/events", name="/api/clinicians/{clinician_id}/events",
                        headers=self.headers)

    @task
    def trend(self) -> None:  # CPU-heavy
        self.client.get("/api/reports/trend", name="/api/reports/trend", headers=self.headers)
