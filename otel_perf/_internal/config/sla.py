"""The SLA spec: every threshold in one place.

Runtime behaviour (slow-query marking, N+1, the local summary's verdicts), histogram bucket
boundaries and the generated alert rules, dashboards and Collector policies all read from here.
Values are in seconds (CLS is unitless, ratios are fractions). Users override them in the YAML
file's ``slo:`` section, with ``OTEL_PERF_SLO_<KEY>`` or ``configure(slo={...})``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

from otel_perf._internal.config.errors import ConfigError


@dataclass(frozen=True)
class QueryClass:
    """A named class of statements with its own slow threshold (e.g. row-level-security checks).

    A statement belongs to the class when ``pattern`` matches its query summary/sanitized text, or
    when it runs inside ``otel_perf.db.query_class(name)``.
    """

    name: str
    threshold: float
    pattern: str | None = None


@dataclass(frozen=True)
class SLO:
    http_latency: float = 0.2  # per-route p95 must stay under this
    http_latency_target: float = 0.95  # share of requests that must be <= http_latency
    http_error_rate: float = 0.001  # 5xx share (availability SLO is 1 - this)
    throughput_drop: float = 0.5  # alert when requests/s falls this much against last week
    db_slow: float = 0.1  # a statement slower than this is marked slow
    db_mean: float = 0.05  # mean statement duration budget
    n_plus_one: int = 10  # same query shape this many times in one request
    regression: float = 0.2  # 20 % worse than the baseline is a regression
    lcp: float = 2.5
    lcp_poor: float = 4.0
    inp: float = 0.2
    inp_poor: float = 0.5
    cls: float = 0.1
    cls_poor: float = 0.25
    fcp: float = 1.8
    fcp_poor: float = 3.0
    ttfb: float = 0.8
    ttfb_poor: float = 1.8
    cpu: float = 0.7  # share of one core... of the CPU limit
    memory: float = 0.8  # share of the memory limit
    query_classes: tuple[QueryClass, ...] = field(
        default=(QueryClass("rls", 0.05, r"(?i)\bcurrent_setting\s*\(|\bpg_has_role\s*\(|\brls\b"),)
    )

    def with_overrides(self, values: dict[str, Any], source: str) -> SLO:
        """Return a copy with ``values`` applied; bad keys or values raise ConfigError naming them."""
        known = {f.name: f for f in fields(self)}
        changes: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"{source}: unknown SLO key {key!r}", accepted=sorted(known))
            if key == "query_classes":
                changes[key] = _query_classes(value, source)
                continue
            kind = int if key == "n_plus_one" else float
            try:
                number = kind(value)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"{source}: slo.{key}={value!r} is not a number", accepted=["a positive number"]
                ) from None
            if not number > 0 or number != number:
                raise ConfigError(f"{source}: slo.{key}={value!r} must be > 0", accepted=["a positive number"])
            changes[key] = number
        return replace(self, **changes)

    # -- derived values -------------------------------------------------------------------------

    @property
    def http_buckets(self) -> tuple[float, ...]:
        """Request-duration boundaries: the upstream defaults plus every latency threshold."""
        return _merge(HTTP_BUCKETS, self.http_latency, self.http_latency * (1 + self.regression))

    @property
    def db_buckets(self) -> tuple[float, ...]:
        """Statement-duration boundaries including the slow, mean and per-class thresholds."""
        return _merge(DB_BUCKETS, self.db_slow, self.db_mean, *(c.threshold for c in self.query_classes))

    def vital_buckets(self, name: str) -> tuple[float, ...]:
        """Boundaries for one Core Web Vital including its good/poor thresholds."""
        good, poor = getattr(self, name), getattr(self, f"{name}_poor")
        return _merge(VITAL_BUCKETS[name], good, poor)

    def vital_rating(self, name: str, value: float) -> str:
        good, poor = getattr(self, name), getattr(self, f"{name}_poor")
        return "good" if value <= good else "needs-improvement" if value <= poor else "poor"

    def query_class(self, shape: str, name: str | None = None) -> QueryClass | None:
        """The class a statement belongs to: the one named, else the first whose pattern matches."""
        for qc in self.query_classes:
            if qc.name == name or (qc.pattern and re.search(qc.pattern, shape)):
                return qc
        return None

    def slow_threshold(self, shape: str, query_class: str | None = None) -> float:
        """The slow threshold for a statement: its class's when it has one, else ``db_slow``."""
        qc = self.query_class(shape, query_class)
        return qc.threshold if qc is not None else self.db_slow


HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
DB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
VITAL_BUCKETS = {
    "lcp": (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0, 20.0),
    "inp": (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0),
    "cls": (0.01, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0),
    "fcp": (0.5, 1.0, 1.5, 1.8, 2.5, 3.0, 4.0, 6.0, 10.0),
    "ttfb": (0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.8, 3.0, 6.0),
}


def _merge(base: tuple[float, ...], *extra: float) -> tuple[float, ...]:
    return tuple(sorted({round(b, 6) for b in (*base, *extra)}))


def _query_classes(value: Any, source: str) -> tuple[QueryClass, ...]:
    """Accept ``{name: {threshold: s, pattern: re}}`` or a list of such mappings with ``name``."""
    items = value.items() if isinstance(value, dict) else ((v.get("name"), v) for v in value or ())
    out = []
    for name, spec in items:
        try:
            threshold = float(spec["threshold"])
            pattern = spec.get("pattern")
            if pattern:
                re.compile(pattern)
        except (TypeError, KeyError, ValueError, re.error):
            raise ConfigError(
                f"{source}: slo.query_classes.{name} is invalid",
                accepted=["{threshold: seconds, pattern: optional regex}"],
            ) from None
        out.append(QueryClass(str(name), threshold, pattern))
    return tuple(out)


DEFAULT = SLO()
