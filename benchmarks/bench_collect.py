"""Collection-time cost of the request-duration histogram at a given request rate.

Deterministic: records one interval's worth of values (rate x interval, spread over a few series
like a real service's routes and status codes), then measures the CPU time of one ``collect()``
of an in-memory reader, and the CPU time per recorded value. Side by side in one run:

- ``sdk``: the SDK's synchronous histogram, one ``record`` per value (vanilla OpenTelemetry);
- ``otel-perf``: ``DeferredHistogram`` (pre-bucketed per series, handed over at collection).

    python benchmarks/bench_collect.py [--rate 2000] [--interval 60] [--series 12]
"""

from __future__ import annotations

import argparse
import random
import time

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_perf._internal.catalogue import HTTP_SERVER_DURATION
from otel_perf._internal.config.sla import DEFAULT
from otel_perf._internal.sdk.deferred import DeferredHistogram


def run(kind: str, values: list[float], series: list[dict]) -> tuple[float, float]:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("bench")
    if kind == "sdk":
        histogram = meter.create_histogram(HTTP_SERVER_DURATION.name,
                                           explicit_bucket_boundaries_advisory=list(DEFAULT.http_buckets))
    else:
        histogram = DeferredHistogram(meter, HTTP_SERVER_DURATION, DEFAULT.http_buckets)
    record, n = histogram.record, len(series)
    started = time.process_time()
    for i, value in enumerate(values):
        record(value, series[i % n])
    recorded = time.process_time() - started
    started = time.process_time()
    data = reader.get_metrics_data()
    collected = time.process_time() - started
    count = sum(p.count for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                if m.name == HTTP_SERVER_DURATION.name for p in m.data.data_points)
    assert count == len(values), (kind, count)
    return recorded / len(values) * 1e6, collected * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=2000, help="requests per second")
    parser.add_argument("--interval", type=float, default=60.0, help="metric export interval (s)")
    parser.add_argument("--series", type=int, default=12, help="attribute sets (route x status)")
    args = parser.parse_args()
    rng = random.Random(1)
    values = [rng.lognormvariate(-3.5, 1.0) for _ in range(int(args.rate * args.interval))]
    series = [{"http.request.method": "GET", "url.scheme": "http", "http.route": f"/r{i // 2}",
               "http.response.status_code": 200 if i % 2 else 500} for i in range(args.series)]
    print(f"{len(values):,} values ({args.rate}/s x {args.interval:g} s) over {args.series} series")
    print(f"{'':<10} {'record µs/value':>16} {'one collect() CPU ms':>21}")
    for kind in ("sdk", "otel-perf"):
        per_value, collect_ms = run(kind, values, series)
        print(f"{kind:<10} {per_value:>16.2f} {collect_ms:>21.1f}")


if __name__ == "__main__":
    main()
