"""The summary's "why is it slow" part: plan findings per query shape, profiles of slow requests per route.

Fed from the planner thread (findings) and at the end of slow requests (profiles); bounded like the
rest of the summary. Rendered as plain lines after the tables.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

MAX_SHAPES = 200
MAX_ROUTES = 200
MAX_FRAMES = 100  # distinct frames kept per route
TOP_FRAMES = 3


class Bottlenecks:
    def __init__(self) -> None:
        self._findings: dict[str, dict[str, Any]] = {}
        self._profiles: dict[str, list[Any]] = {}  # route -> [requests, samples, waiting, Counter]
        self._lock = threading.Lock()

    def plan_findings(self, key: str, shape: str, findings: list[dict]) -> None:
        with self._lock:
            if key in self._findings or len(self._findings) < MAX_SHAPES:
                self._findings[key] = {"shape": shape, "findings": findings}

    def profile(self, route: str, samples: Counter[str], count: int, waiting: int) -> None:
        with self._lock:
            entry = self._profiles.get(route)
            if entry is None:
                if len(self._profiles) >= MAX_ROUTES:
                    return
                entry = self._profiles[route] = [0, 0, 0, Counter()]
            entry[0] += 1
            entry[1] += count
            entry[2] += waiting
            entry[3].update(samples)
            if len(entry[3]) > MAX_FRAMES:  # keep the hottest; the tail cannot reach the top three
                entry[3] = Counter(dict(entry[3].most_common(MAX_FRAMES // 2)))

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            findings = [dict(v) for v in self._findings.values()]
            profiles = []
            for route, (requests, samples, waiting, frames) in sorted(self._profiles.items(), key=lambda kv: -kv[1][1]):
                profiles.append({
                    "route": route, "requests": requests, "samples": samples,
                    "waiting": waiting / samples if samples else 0.0,
                    "top": [{"frame": f, "share": n / samples} for f, n in frames.most_common(TOP_FRAMES)],
                })
        return {"plan_findings": findings, "profiles": profiles}


def render_lines(data: dict[str, Any], paint: Any, yellow: str, clip: Any) -> list[str]:
    lines: list[str] = []
    for p in data.get("profiles", ()):
        if not p["top"]:
            continue
        top = p["top"][0]
        more = ", ".join(f"{t['share']:.0%} {t['frame']}" for t in p["top"][1:])
        lines.append(f"{paint('slow-request profile', yellow)}: {top['share']:.0%} of {p['route']} in {top['frame']}"
                     f"{f' (then {more})' if more else ''}; {p['requests']} slow requests, "
                     f"{p['waiting']:.0%} of samples waiting")
    for entry in data.get("plan_findings", ()):
        for f in entry["findings"]:
            lines.append(f"{paint('plan', yellow)}: `{clip(entry['shape'], 80)}`: {f['message']}")
            if f.get("suggestion"):
                lines.append(f"      fix: {f['suggestion']}")
    return lines
