"""The SLA spec: every threshold in one place.

Runtime behaviour (slow-query marking, N+1, the local summary's verdicts), histogram bucket
boundaries and the generated alert rules, dashboards and Collector policies all read from here.
Values are in seconds (CLS is unitless, ratios are fractions). Users override them in the YAML
file's ``slo:`` section, with ``OTEL_PERF_SLO_<KEY>`` or ``configure(slo={...})``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from otel_perf._internal.config.errors import ConfigError, unknown


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

    def with_overrides(self, values: Any, source: str) -> SLO:
        """Return a copy with ``values`` applied; a bad key or value raises ConfigError naming it.

        ``source`` names where the values came from: a template with ``{key}``/``{KEY}`` (an
        environment variable such as ``OTEL_PERF_SLO_{KEY}``) or a prefix (``perf.yml`` gives
        ``perf.yml: slo.db_slow``). ``query_classes`` merge by name with the defaults; ``null``
        as a class's value removes it.
        """
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source.split('{')[0].rstrip('_')}: slo must be a mapping, not {type(values).__name__}",
                              accepted=["key: value pairs of the SLA table"])
        known = {f.name for f in fields(self)}
        changes: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                raise unknown(f"{_label(source, key)}: unknown SLO key", key, known)
            if key == "query_classes":
                changes[key] = _query_classes(self.query_classes, value, _label(source, key))
            else:
                changes[key] = _check(key, value, _label(source, key))
        spec = replace(self, **changes)
        for name in VITAL_BUCKETS:  # the good threshold must lie below the poor one
            good, poor = getattr(spec, name), getattr(spec, f"{name}_poor")
            if good >= poor:
                key = name if name in changes else f"{name}_poor"
                raise ConfigError(f"{_label(source, key)}: {name}={good:g} is not below {name}_poor={poor:g}",
                                  accepted=[f"{name} < {name}_poor"])
        return spec

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


# What each key accepts: (minimum, maximum, open at the minimum, open at the maximum, kind, meaning).
_FRACTION = (0.0, 1.0, True, True, float, "a fraction between 0 and 1 (exclusive)")
_SHARE = (0.0, 1.0, True, False, float, "a fraction above 0, at most 1")
_SECONDS = (0.0, 3600.0, True, False, float, "seconds above 0, at most 3600")
_RANGES: dict[str, tuple[float, float, bool, bool, type, str]] = {
    "http_latency": _SECONDS, "db_slow": _SECONDS, "db_mean": _SECONDS,
    "http_latency_target": _FRACTION, "http_error_rate": _FRACTION, "throughput_drop": _FRACTION,
    "cpu": _SHARE, "memory": _SHARE,
    "regression": (0.0, 100.0, True, False, float, "a fraction above 0 (0.2 = 20 % worse)"),
    "n_plus_one": (2, 1_000_000, False, False, int, "a whole number of statements, at least 2"),
    "cls": (0.0, 10.0, True, False, float, "a layout-shift score above 0"),
    "cls_poor": (0.0, 10.0, True, False, float, "a layout-shift score above 0"),
}


def _label(source: str, key: str) -> str:
    if "{key}" in source or "{KEY}" in source:
        return source.format(key=key, KEY=key.upper())
    return f"{source}: slo.{key}"


def _check(key: str, value: Any, label: str) -> float | int:
    """``value`` as the number ``key`` takes, or ConfigError naming ``label`` and the range."""
    low, high, low_open, high_open, kind, meaning = _RANGES.get(key, _SECONDS)
    try:
        if isinstance(value, bool) or isinstance(value, (list, dict, tuple)):
            raise ValueError
        number = float(value)
        if kind is int:
            if number != int(number):
                raise ValueError
            number = int(number)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{label}={value!r} is not {'a whole number' if kind is int else 'a number'}",
                          accepted=[meaning]) from None
    if (number != number or number < low or number > high or (low_open and number == low)
            or (high_open and number == high)):
        raise ConfigError(f"{label}={value!r} is out of range", accepted=[meaning])
    return number


def _query_classes(defaults: tuple[QueryClass, ...], value: Any, label: str) -> tuple[QueryClass, ...]:
    """Merge ``{name: {threshold: s, pattern: re}}`` (or a list of mappings with ``name``) into
    ``defaults`` by name: an entry replaces the class of its name (keeping its pattern unless it
    gives one), ``name: null`` removes it."""
    accepted = ["{name: {threshold: seconds, pattern: optional regex}} or name: null to remove a default"]
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)) and all(isinstance(v, Mapping) and v.get("name") for v in value):
        items = [(v["name"], {k: x for k, x in v.items() if k != "name"}) for v in value]
    else:
        raise ConfigError(f"{label}={value!r} is invalid", accepted=accepted)
    merged = {qc.name: qc for qc in defaults}
    for name, spec in items:
        if spec is None:
            merged.pop(str(name), None)
            continue
        where = f"{label}.{name}"
        if not isinstance(spec, Mapping) or "threshold" not in spec:
            raise ConfigError(f"{where}={spec!r} is invalid", accepted=accepted)
        for extra in set(spec) - {"threshold", "pattern"}:
            raise unknown(f"{where}: unknown field", extra, ["threshold", "pattern"])
        threshold = _check("threshold", spec["threshold"], f"{where}.threshold")
        # A class named again keeps its default pattern unless given one (null: no pattern).
        pattern = spec["pattern"] if "pattern" in spec else getattr(merged.get(str(name)), "pattern", None)
        if pattern is not None:
            try:
                re.compile(str(pattern))
            except re.error as exc:
                raise ConfigError(f"{where}.pattern={pattern!r} is not a regular expression ({exc})",
                                  accepted=["a Python regular expression"]) from None
        merged[str(name)] = QueryClass(str(name), threshold, str(pattern) if pattern else None)
    return tuple(merged.values())


DEFAULT = SLO()
