"""No span lost through the shipped agent config (retries + persistent sending queue), real binary.

Traffic is a real SDK exporting OTLP/gRPC to the agent (it never sees a failure: the agent accepts and
queues); the trace backend is an OTLP receiver on a fixed port that the test stops and starts.
Every span carries a sequence number, so "every span arrived" is an exact set comparison.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest

from tests.fixtures.net import wait_for
from tests.fixtures.otelcol import Agent, TraceSink, sdk_tracer
from tests.fixtures.otlp import attributes

RATE = 200  # spans per second, steady


class Traffic:
    """Spans at a steady rate from a background thread until stopped."""

    def __init__(self, endpoint: str) -> None:
        self.tracer, self.provider = sdk_tracer(endpoint)
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - start) * RATE)
            while self.sent < due:
                with self.tracer.start_as_current_span("steady") as span:
                    span.set_attribute("seq", self.sent)
                self.sent += 1
            time.sleep(0.01)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(10)
        assert self.provider.force_flush(60_000), "the SDK could not hand every span to the agent"
        self.provider.shutdown()
        return self.sent


def received(sink: TraceSink) -> list[int]:
    return [attributes(s.attributes)["seq"] for s in sink.spans() if s.name == "steady"]


def assert_all_arrive(sink: TraceSink, sent: int, timeout: float = 120) -> None:
    wait_for(lambda: len(set(received(sink))) >= sent, timeout=timeout, interval=0.5,
             what=f"{sent} spans at the backend (got {len(set(received(sink)))})")
    seqs = received(sink)
    assert sorted(set(seqs)) == list(range(sent)), "missing spans"
    # OTLP delivery is at-least-once: a request the backend took just as it went down is sent again.
    # At most one such request (<= max_size 10000 spans of the exporter's batch) may repeat.
    assert len(seqs) - sent <= 10_000, f"{len(seqs) - sent} duplicate spans"


@pytest.fixture
def sink():
    receiver = TraceSink()
    yield receiver
    receiver.stop()


def test_backend_down_for_15s_under_steady_traffic(start_collector, sink, tmp_path):
    agent = Agent(start_collector, sink.endpoint, tmp_path / "queue")
    traffic = Traffic(f"127.0.0.1:{agent.grpc}")
    wait_for(lambda: received(sink), timeout=30, what="the first spans")
    sink.stop()
    time.sleep(12)  # the outage itself (15 s in all)
    # retried, not failed: the data waits in the queue (send_failed counts only what retries gave up on)
    queued = agent.collector.metric("otelcol_exporter_queue_size", exporter="otlp_grpc/tempo")
    time.sleep(3)
    during = traffic.sent
    sink.start()
    time.sleep(3)  # traffic goes on after the backend is back
    sent = traffic.stop()
    assert sent > during > RATE * 15
    assert_all_arrive(sink, sent)
    assert queued > 0  # the outage was real
    assert agent.collector.metric("otelcol_exporter_send_failed_spans_total") == 0


def test_collector_restart_keeps_the_persistent_queue(start_collector, sink, tmp_path):
    agent = Agent(start_collector, sink.endpoint, tmp_path / "queue")
    sink.stop()  # everything the agent accepts from now on waits in its persistent queue
    traffic = Traffic(f"127.0.0.1:{agent.grpc}")
    time.sleep(5)
    assert agent.collector.stop(signal.SIGTERM) == 0
    time.sleep(1)  # the SDK retries while the agent is away
    agent.collector.start()
    time.sleep(3)
    sent = traffic.stop()
    assert any(agent.queue_dir.iterdir()), "no persistent queue on disk"
    sink.start()
    assert_all_arrive(sink, sent)
