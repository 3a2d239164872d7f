"""The activity trend report: pure-Python number crunching, deliberately naive (the CPU-heavy route).

For every event it counts the provider's events of the seven days before it by scanning all of
them: quadratic in the number of events. The fix is one pass over the events sorted by time with
a sliding window (or a window function in SQL: ``count(*) OVER (ORDER BY occurred_at RANGE
INTERVAL '7 days' PRECEDING)``); it stays naive so the profiler has something to find.
"""

from __future__ import annotations

import datetime as dt

WINDOW = dt.timedelta(days=7)


def build_rows(events: list[dict]) -> list[dict]:
    """Per event kind: the busiest seven days (most events in the week before an event)."""
    busiest: dict[str, tuple[int, dt.datetime]] = {}
    for event in events:
        at = event["occurred_at"]
        recent = sum(1 for other in events if at - WINDOW <= other["occurred_at"] < at)
        best = busiest.get(event["kind"])
        if best is None or recent > best[0]:
            busiest[event["kind"]] = (recent, at)
    return [{"kind": kind, "events_in_week": n, "week_ending": at.isoformat()}
            for kind, (n, at) in sorted(busiest.items())]
