"""Throughput, CPU and memory of the agent Collector (`make collector`) with the shipped processors.

The shipped collector/otelcol-agent.yaml runs unchanged but for an overlay moving its listeners to free
127.0.0.1 ports; traces go through memory_limiter, resource_detection, transform/scrub and redaction
into the persistent sending queue and out to an OTLP/gRPC sink in this process. The load is
pre-encoded OTLP export requests (500 spans each, attributes the scrubbing processors work on: a query
string, an e-mail, a SQL statement, an Authorization header), sent over gRPC from this process, so the
sender costs almost nothing per span.

For each offered rate the Collector's CPU time (utime + stime from /proc) is read across the whole
window, and its resident memory sampled; a last step sends as fast as the 2 cores allow.

    python benchmarks/bench_collector.py [--seconds 20] [--rates 2000,5000,10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2  # noqa: E402
from opentelemetry.proto.common.v1 import common_pb2  # noqa: E402
from opentelemetry.proto.resource.v1 import resource_pb2  # noqa: E402
from opentelemetry.proto.trace.v1 import trace_pb2  # noqa: E402

from tests.fixtures.net import free_port, wait_for  # noqa: E402
from tests.fixtures.otelcol import BUILD, agent_overlay  # noqa: E402

BATCH = 500
TICK = os.sysconf("SC_CLK_TCK")


def kv(key: str, value) -> common_pb2.KeyValue:
    if isinstance(value, int):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(int_value=value))
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def request(seq: int) -> bytes:
    spans = []
    now = time.time_ns()
    for i in range(BATCH):
        trace_id = (seq * BATCH + i).to_bytes(16, "big")
        if i % 2 == 0:
            attrs = [kv("http.route", "/orders/{id}"), kv("http.request.method", "GET"),
                     kv("url.query", "token=abc&page=2"), kv("url.full", "http://shop/orders/7?token=abc"),
                     kv("http.request.header.authorization", "Bearer xyz"), kv("enduser.email", "a@example.com"),
                     kv("http.response.status_code", 200)]
            kind = trace_pb2.Span.SPAN_KIND_SERVER
        else:
            attrs = [kv("db.system.name", "postgresql"),
                     kv("db.query.text", "SELECT * FROM orders WHERE id = 42 AND owner = 'a@example.com'")]
            kind = trace_pb2.Span.SPAN_KIND_CLIENT
        spans.append(trace_pb2.Span(trace_id=trace_id, span_id=(i + 1).to_bytes(8, "big"), name="GET /orders/{id}",
                                    kind=kind, start_time_unix_nano=now, end_time_unix_nano=now + 5_000_000,
                                    attributes=attrs))
    resource = resource_pb2.Resource(attributes=[kv("service.name", "bench"), kv("service.instance.id", "1")])
    req = trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
        resource=resource, scope_spans=[trace_pb2.ScopeSpans(spans=spans)])])
    return req.SerializeToString()


class Sink:
    """Counts the spans the Collector exports (parsed, so the count is exact)."""

    def __init__(self) -> None:
        self.spans = 0
        self.lock = threading.Lock()
        sink = self

        def export(raw: bytes, context):
            req = trace_service_pb2.ExportTraceServiceRequest.FromString(raw)
            n = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
            with sink.lock:
                sink.spans += n
            return trace_service_pb2.ExportTraceServiceResponse()

        handler = grpc.method_handlers_generic_handler("opentelemetry.proto.collector.trace.v1.TraceService", {
            "Export": grpc.unary_unary_rpc_method_handler(
                export, request_deserializer=None,
                response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString)})
        from concurrent import futures

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_window(stub, payloads: list[bytes], pid: int, sink: Sink, rate: float | None, seconds: float) -> dict:
    sent = 0
    sink_before = sink.spans
    cpu0, t0 = proc_cpu(pid), time.monotonic()
    rss: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss.append(proc_rss_mib(pid))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lock = threading.Lock()

    def sender(k: int) -> None:
        nonlocal sent
        i = k
        while time.monotonic() - t0 < seconds:
            if rate is not None:
                with lock:
                    due = (time.monotonic() - t0) * rate
                    if sent + BATCH > due:
                        wait = (sent + BATCH - due) / rate
                    else:
                        wait = 0
                        sent += BATCH
                if wait:
                    time.sleep(min(wait, 0.05))
                    continue
            stub(payloads[i % len(payloads)], timeout=10)
            if rate is None:
                with lock:
                    sent += BATCH
            i += 1

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # the window ends when the sink has everything that was accepted (the exporter batches for <= 1 s)
    target = sink_before + sent
    wait_for(lambda: sink.spans >= target, timeout=120, interval=0.1, what="the sink to catch up")
    elapsed = time.monotonic() - t0
    cpu = proc_cpu(pid) - cpu0
    stop.set()
    sampler.join()
    return {"offered": rate, "spans": sent, "seconds": elapsed, "spans_per_s": sent / elapsed,
            "cpu_s": cpu, "cpu_ms_per_1000": 1000 * cpu / sent * 1000, "cpu_cores": cpu / elapsed,
            "rss_mib_max": max(rss) if rss else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rates", default="2000,5000,10000")
    parser.add_argument("--binary", default=str(BUILD))
    args = parser.parse_args()
    if not Path(args.binary).exists():
        sys.exit(f"{args.binary} not found: run `make collector`")

    import subprocess

    sink = Sink()
    work = Path(tempfile.mkdtemp(prefix="bench-otelcol-"))
    health, grpc_port, http_port, telemetry = (free_port() for _ in range(4))
    (work / "overlay.yaml").write_text(yaml.safe_dump(agent_overlay(health, grpc_port, http_port, telemetry)))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL")},
           "OTELCOL_QUEUE_DIR": str(work / "queue"), "TRACES_OTLP_ENDPOINT": f"127.0.0.1:{sink.port}",
           "PROMETHEUS_OTLP_ENDPOINT": "http://127.0.0.1:9/api/v1/otlp", "GOMAXPROCS": "2"}
    log = open(work / "otelcol.log", "wb")
    proc = subprocess.Popen([args.binary, f"--config=file:{ROOT / 'collector/otelcol-agent.yaml'}",
                             f"--config=file:{work / 'overlay.yaml'}"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        import urllib.request

        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{health}/", timeout=1).status == 200,
                 timeout=30, what="the agent")
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        stub = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                   request_serializer=None, response_deserializer=None)
        payloads = [request(i) for i in range(40)]
        run_window(stub, payloads, proc.pid, sink, 2000, 3)  # warm-up
        print(f"{'offered/s':>10} {'spans/s':>9} {'CPU ms/1000 spans':>18} {'cores':>6} {'RSS MiB':>8}")
        rates: list[float | None] = [float(r) for r in args.rates.split(",") if r] + [None]
        for rate in rates:
            r = run_window(stub, payloads, proc.pid, sink, rate, args.seconds)
            print(f"{'max' if rate is None else int(rate):>10} {r['spans_per_s']:>9.0f} {r['cpu_ms_per_1000']:>18.1f} "
                  f"{r['cpu_cores']:>6.2f} {r['rss_mib_max']:>8.0f}", flush=True)
        print(f"binary {args.binary}: {Path(args.binary).stat().st_size / 2**20:.0f} MiB")
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        sink.server.stop(0)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
