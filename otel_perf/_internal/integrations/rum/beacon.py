"""The beacon the browser script sends, and the rules that make it safe to turn into series.

The endpoint faces the internet, so nothing in a beacon is trusted: the schema is checked, every
label value comes from a closed set (metric names, device classes, navigation types, ratings, and
the app's own route templates), and values outside sane bounds are dropped. The rating
is computed here from the SLA spec, not taken from the client.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

MAX_BODY = 16 * 1024  # bytes; a full beacon is ~1 KiB
MAX_METRICS = 20  # per beacon; five vitals, a few more after bfcache restores
MAX_ATTRIBUTION = 200  # characters of the attribution detail kept on the span
OTHER = "_OTHER"  # the one value every unknown route, device or navigation type collapses into

# web-vitals name -> (SLO key, factor to the metric's unit, upper bound in the client's unit)
VITALS = {
    "LCP": ("lcp", 1e-3, 600_000.0),  # ms; ten minutes
    "INP": ("inp", 1e-3, 600_000.0),
    "FCP": ("fcp", 1e-3, 600_000.0),
    "TTFB": ("ttfb", 1e-3, 600_000.0),
    "CLS": ("cls", 1.0, 100.0),  # unitless
}
DEVICES = frozenset({"mobile", "tablet", "desktop"})
NAVIGATION_TYPES = frozenset(
    {"navigate", "reload", "back-forward", "back-forward-cache", "prerender", "restore", "soft-navigation"}
)
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


class Invalid(ValueError):
    """The body is not JSON or not a beacon: answered with 400."""


@dataclass
class Vital:
    key: str  # lcp | inp | cls | fcp | ttfb
    value: float  # in the metric's unit (seconds, or unitless for CLS)
    navigation_type: str
    attribution: str | None


@dataclass
class Beacon:
    route: str | None
    device: str
    trace_id: int | None
    span_id: int | None
    sampled: bool
    vitals: list[Vital] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> count of values left out

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


def parse(body: bytes) -> Beacon:
    """Decode and check a beacon body; raise Invalid when it cannot be one."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise Invalid("not JSON") from exc
    if not isinstance(data, dict):
        raise Invalid("not an object")
    metrics = data.get("metrics")
    if not isinstance(metrics, list) or len(metrics) > MAX_METRICS:
        raise Invalid(f"metrics must be a list of at most {MAX_METRICS}")
    route = data.get("route")
    if route is not None and not isinstance(route, str):
        raise Invalid("route must be a string")
    device = data.get("device")
    trace_id = span_id = None
    sampled = False
    traceparent = data.get("traceparent")
    if isinstance(traceparent, str):
        match = _TRACEPARENT.fullmatch(traceparent)
        if match and int(match[1], 16) and int(match[2], 16):  # all-zero ids are invalid (W3C)
            trace_id, span_id, sampled = int(match[1], 16), int(match[2], 16), bool(int(match[3], 16) & 1)
    beacon = Beacon(route, _pick(device, DEVICES, "unknown"), trace_id, span_id, sampled)

    seen: set[str] = set()
    for item in metrics:
        if not isinstance(item, dict):
            raise Invalid("a metric must be an object")
        name, value = item.get("name"), item.get("value")
        if not isinstance(name, str) or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid("a metric needs a string name and a numeric value")
        spec = VITALS.get(name)
        if spec is None:
            beacon.drop("unknown_metric")
            continue
        key, factor, upper = spec
        if not (0 <= value <= upper):  # before float(): a huge int would overflow; NaN compares False
            beacon.drop("out_of_bounds")
            continue
        if key in seen:  # one value per vital and beacon: a client cannot inflate the counts
            beacon.drop("duplicate")
            continue
        seen.add(key)
        navigation = item.get("navigationType")
        detail = item.get("attribution")
        beacon.vitals.append(
            Vital(
                key,
                float(value) * factor,
                _pick(navigation, NAVIGATION_TYPES, OTHER),
                detail[:MAX_ATTRIBUTION] if isinstance(detail, str) and detail else None,
            )
        )
    return beacon



def _pick(value: object, allowed: frozenset[str], default: str) -> str:
    return value if isinstance(value, str) and value in allowed else default
