"""Weeks of metric history for a real Prometheus: histograms written as OpenMetrics, backfilled with
``promtool tsdb create-blocks-from openmetrics``, then Prometheus started on that data directory.

A ``Histogram`` is a distribution (cumulative share per bucket boundary) and a rate; ``write`` turns
it into cumulative ``_bucket``/``_count``/``_sum`` samples every ``interval`` seconds, with a daily
wave in the traffic and, optionally, a ``slowdown``: every duration multiplied by a factor inside a
time range (the distribution is stretched, so p95 moves by that factor). Distributions come either
from a real scrape of the example service (``from_scrape``) or from a log-normal model (``lognormal``).
"""

from __future__ import annotations

import bisect
import math
import subprocess
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.binaries import require


@dataclass
class Histogram:
    metric: str  # Prometheus name without _bucket/_count/_sum
    labels: dict[str, str]
    rate: float  # observations per second
    cdf: list[tuple[float, float]]  # (le, share <= le), increasing, finite boundaries only
    mean: float
    errors: float = 0.0  # share written under the 5xx status label (http only)
    error_labels: dict[str, str] = field(default_factory=dict)

    def share(self, bound: float, factor: float = 1.0) -> float:
        """Share <= ``bound`` once every duration is multiplied by ``factor`` (linear inside a bucket)."""
        x = bound / factor
        les = [0.0] + [b for b, _ in self.cdf]
        shares = [0.0] + [s for _, s in self.cdf]
        i = bisect.bisect_right(les, x)
        if i >= len(les):
            return 1.0 if x > les[-1] * 4 else shares[-1] + (1 - shares[-1]) * (x - les[-1]) / (les[-1] * 3)
        lo, hi = les[i - 1], les[i]
        return shares[i - 1] + (shares[i] - shares[i - 1]) * (x - lo) / (hi - lo)


def lognormal(metric: str, labels: dict[str, str], rate: float, median: float, sigma: float,
              bounds: Iterable[float], errors: float = 0.0, error_labels: dict[str, str] | None = None) -> Histogram:
    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf((math.log(x) - math.log(median)) / (sigma * math.sqrt(2))))

    return Histogram(metric, labels, rate, [(b, cdf(b)) for b in bounds], median * math.exp(sigma ** 2 / 2),
                     errors, error_labels or {})


def from_scrape(text: str, metric: str, by: tuple[str, ...], seconds: float, status: str | None = None,
                keep: dict[str, str] | None = None) -> list[Histogram]:
    """One Histogram per ``by`` label set of ``metric`` in a Prometheus exposition ``text`` (all other
    labels summed), its rate being the count over ``seconds`` of traffic; ``status`` names the label
    whose 5xx share becomes ``errors``."""
    buckets: dict[tuple, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[tuple, float] = defaultdict(float)
    sums: dict[tuple, float] = defaultdict(float)
    failed: dict[tuple, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        if family.name != metric:
            continue
        for s in family.samples:
            key = tuple(s.labels.get(k, "") for k in by)
            if s.name.endswith("_bucket"):
                buckets[key][float(s.labels["le"])] += s.value
            elif s.name.endswith("_count"):
                counts[key] += s.value
                if status and s.labels.get(status, "").startswith("5"):
                    failed[key] += s.value
            elif s.name.endswith("_sum"):
                sums[key] += s.value
    out = []
    for key, n in counts.items():
        if n <= 0:
            continue
        cdf = [(le, c / n) for le, c in sorted(buckets[key].items()) if math.isfinite(le)]
        labels = {**dict(zip(by, key, strict=True)), **(keep or {})}
        error_labels = {status: "500"} if status else {}
        if status:
            labels[status] = "200"
        out.append(Histogram(metric, labels, n / seconds, cdf, sums[key] / n, failed[key] / n, error_labels))
    return out


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))


def write(path: Path, histograms: list[Histogram], start: float, end: float, interval: int, common: dict[str, str],
          slowdown: tuple[float, float, float] | None = None) -> None:
    """OpenMetrics text for every histogram, samples every ``interval`` s in [start, end]."""
    times = [start + i * interval for i in range(int((end - start) // interval) + 1)]
    by_family: dict[str, list[Histogram]] = defaultdict(list)
    for h in histograms:
        by_family[h.metric].append(h)
    with open(path, "w") as out:
        for metric, members in by_family.items():
            out.write(f"# TYPE {metric} histogram\n")
            for h in members:
                parts = [(1 - h.errors, h.labels)] + ([(h.errors, {**h.labels, **h.error_labels})] if h.errors else [])
                for share, labels in parts:
                    lbl = {**common, **labels}
                    cum_b = [0.0] * len(h.cdf)
                    cum_n = cum_s = 0.0
                    rows: dict[str, list[str]] = defaultdict(list)
                    for t in times:
                        factor = slowdown[2] if slowdown and slowdown[0] <= t < slowdown[1] else 1.0
                        n = h.rate * interval * share * (1 + 0.5 * math.sin(2 * math.pi * t / 86400))
                        cum_n += n
                        cum_s += n * h.mean * factor
                        for i, (le, _) in enumerate(h.cdf):
                            cum_b[i] += n * h.share(le, factor)
                            rows[repr(le)].append(f"{cum_b[i]:.3f} {t:.0f}")
                        rows["+Inf"].append(f"{cum_n:.3f} {t:.0f}")
                        rows["count"].append(f"{cum_n:.3f} {t:.0f}")
                        rows["sum"].append(f"{cum_s:.6f} {t:.0f}")
                    for le in [repr(le) for le, _ in h.cdf] + ["+Inf"]:
                        name = f"{metric}_bucket{{{_labels({**lbl, 'le': le})}}}"
                        out.writelines(f"{name} {v}\n" for v in rows[le])
                    for suffix in ("count", "sum"):
                        name = f"{metric}_{suffix}{{{_labels(lbl)}}}"
                        out.writelines(f"{name} {v}\n" for v in rows[suffix])
        out.write("# EOF\n")


def backfill(openmetrics: Path, data_dir: Path) -> None:
    promtool = require("promtool", "prometheus")
    data_dir.mkdir(parents=True, exist_ok=True)
    # A few large blocks: with the default 2h blocks promtool re-reads the file once per 2 hours of history.
    run = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=1000h",
                          str(openmetrics), str(data_dir)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"promtool backfill failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"


def backfill_rules(rule_file: Path, url: str, start: float, end: float, data_dir: Path) -> None:
    """Evaluate recording rules over [start, end] against Prometheus at ``url`` into blocks (their
    group interval is the step): the history of recorded series, as if the rules had always run."""
    promtool = require("promtool", "prometheus")
    run = subprocess.run([promtool, "tsdb", "create-blocks-from", "rules", f"--start={int(start)}", f"--end={int(end)}",
                          f"--url={url}", f"--output-dir={data_dir}", str(rule_file)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"promtool rule backfill failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
