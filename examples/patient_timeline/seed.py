"""Seeded synthetic data for the patient timeline: same seed, same database, in about a second.

Everything is made up (names from short lists, no real person). Rows go in with COPY, indexes are
built afterwards and the tables analysed, so the planner sees the real sizes.

    python -m patient_timeline.seed --dsn postgresql://... [--patients 1000 --events 50000 --seed 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

SCHEMA = Path(__file__).with_name("schema.sql")
INDEXES = """
CREATE INDEX events_timeline ON timeline.events (patient_id, occurred_at DESC, id DESC);
CREATE INDEX patients_provider ON timeline.patients (provider_id, family_name, id);
CREATE INDEX patients_family ON timeline.patients (lower(family_name) text_pattern_ops);
ANALYZE timeline.providers, timeline.clinicians, timeline.patients, timeline.events;
"""
FAMILY = ("Smith Jones Garcia Miller Davis Lopez Wilson Anderson Thomas Moore Martin Lee Walker Hall Young King "
          "Wright Hill Green Baker Nelson Carter Mitchell Perez Roberts Turner Phillips Campbell Parker Evans").split()
GIVEN = ("Ava Ben Chloe Dan Ella Finn Grace Hugo Iris Jack Kai Lena Max Nora Owen Pia Quinn Ruth Sam Tara Uma "
         "Vic Will Xena Yara Zoe").split()
KINDS = ("visit", "lab_result", "prescription", "note", "imaging", "vital_signs", "referral")
ROLES = ("physician", "nurse", "pharmacist", "therapist")
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)  # fixed, so the data does not depend on today


@dataclass(frozen=True)
class Seeded:
    providers: int
    clinicians: int
    patients: int
    events: int
    seconds: float


def provider_of(patient_id: int, providers: int) -> int:
    """Patients are dealt round-robin to providers (the load scenario relies on it)."""
    return 1 + (patient_id - 1) % providers


def seed(dsn: str, patients: int = 1000, events: int = 50_000, providers: int = 20, seed: int = 7) -> Seeded:
    """(Re)create the ``timeline`` schema and fill it; returns the row counts and time taken."""
    started = time.perf_counter()
    rng = random.Random(seed)
    clinicians = providers * 5
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA.read_text())
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy("COPY timeline.providers (id, name) FROM STDIN") as copy:
                for p in range(1, providers + 1):
                    copy.write_row((p, f"Clinic {p:02d}"))
            with cur.copy("COPY timeline.clinicians (id, provider_id, name, role) FROM STDIN") as copy:
                for c in range(1, clinicians + 1):
                    copy.write_row((c, 1 + (c - 1) % providers, f"Dr {rng.choice(GIVEN)} {rng.choice(FAMILY)}",
                                    rng.choice(ROLES)))
            with cur.copy("COPY timeline.patients (id, provider_id, mrn, family_name, given_name, birth_date) "
                          "FROM STDIN") as copy:
                for pid in range(1, patients + 1):
                    birth = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(80 * 365))
                    copy.write_row((pid, provider_of(pid, providers), f"MRN{pid:08d}", rng.choice(FAMILY),
                                    rng.choice(GIVEN), birth))
            with cur.copy("COPY timeline.events (patient_id, author_id, kind, occurred_at, summary) "
                          "FROM STDIN") as copy:
                two_years = 2 * 365 * 86400
                for _ in range(events):
                    # a fifth of all events belong to the 5 % "chronic" patients: some timelines are long
                    chronic = rng.random() < 0.2
                    pid = 1 + rng.randrange(max(1, patients // 20) if chronic else patients)
                    provider = provider_of(pid, providers)
                    author = provider + providers * rng.randrange(5)  # a clinician of the same provider
                    kind = rng.choice(KINDS)
                    at = EPOCH + dt.timedelta(seconds=rng.randrange(two_years))
                    copy.write_row((pid, author, kind, at, f"{kind.replace('_', ' ')} #{rng.randrange(10_000)}"))
        conn.execute(INDEXES)
    return Seeded(providers, clinicians, patients, events, time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL"), help="default: $DATABASE_URL")
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--providers", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if not args.dsn:
        parser.error("give --dsn or set DATABASE_URL")
    done = seed(args.dsn, args.patients, args.events, args.providers, args.seed)
    print(f"seeded {done.patients} patients, {done.events} events, {done.providers} providers "
          f"in {done.seconds:.2f} s")


if __name__ == "__main__":
    main()
