"""The standard-library OTLP/HTTP transport sends what the upstream (requests) transport sends, and
the exporters' retry logic sees the same outcomes through it."""

from __future__ import annotations

import gzip
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_perf._internal.sdk import http_transport
from otel_perf._internal.sdk.http_transport import StdlibTransport, transport_for
from tests.fixtures.net import free_port


class _JoiningServer(ThreadingHTTPServer):
    # server_close() waits for every connection's thread: none outlives the test (other tests
    # compare process-wide figures such as thread and descriptor counts)
    daemon_threads = False
    block_on_close = True


class Recorder:
    """A loopback server recording every request; answers with the queued statuses, then 200."""

    def __init__(self):
        self.requests: list[dict] = []
        self.statuses: list[tuple[int, dict]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                recorder.requests.append({"path": self.path, "body": body,
                                          "headers": {k.lower(): v for k, v in self.headers.items()}})
                status, headers = recorder.statuses.pop(0) if recorder.statuses else (200, {})
                self.send_response(status)
                for key, value in {"content-length": "0", **headers}.items():
                    self.send_header(key, value)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = _JoiningServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _spans():
    provider = TracerProvider()
    tracer = provider.get_tracer("t")
    spans = []
    for i in range(3):
        span = tracer.start_span(f"s{i}", attributes={"k": i})
        span.end()
        spans.append(span)
    return spans


_SAME = ("content-type", "user-agent", "content-encoding", "x-tenant")


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip, Compression.Deflate])
def test_same_request_as_the_requests_transport(recorder, compression):
    spans = _spans()
    for transport in (None, StdlibTransport()):  # None: the exporter's own (requests)
        exporter = OTLPSpanExporter(endpoint=recorder.endpoint, headers={"X-Tenant": "a"}, compression=compression,
                                    _transport=transport)
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
    upstream, ours = recorder.requests
    assert ours["path"] == upstream["path"] == "/v1/traces"
    # gzip stamps the time into its header: compare what was compressed
    assert _decoded(ours) == _decoded(upstream)
    assert {k: ours["headers"].get(k) for k in _SAME} == {k: upstream["headers"].get(k) for k in _SAME}


def _decoded(request: dict) -> bytes:
    encoding = request["headers"].get("content-encoding")
    body = request["body"]
    return gzip.decompress(body) if encoding == "gzip" else zlib.decompress(body) if encoding == "deflate" else body


def test_connection_is_reused(recorder):
    transport = StdlibTransport()
    exporter = OTLPSpanExporter(endpoint=recorder.endpoint, _transport=transport)
    for _ in range(3):
        assert exporter.export(_spans()) is SpanExportResult.SUCCESS
    assert transport._conn is not None and len(recorder.requests) == 3
    exporter.shutdown()
    assert transport._conn is None


def test_retryable_status_is_retried_after_retry_after(recorder):
    recorder.statuses = [(503, {"retry-after": "0"}), (429, {"retry-after": "0"})]
    exporter = OTLPSpanExporter(endpoint=recorder.endpoint, _transport=StdlibTransport())
    assert exporter.export(_spans()) is SpanExportResult.SUCCESS
    assert len(recorder.requests) == 3
    exporter.shutdown()  # closes the connection: no socket outlives the test


def test_client_error_is_not_retried(recorder):
    recorder.statuses = [(400, {})]
    exporter = OTLPSpanExporter(endpoint=recorder.endpoint, _transport=StdlibTransport())
    assert exporter.export(_spans()) is SpanExportResult.FAILURE
    assert len(recorder.requests) == 1
    exporter.shutdown()


def test_refused_connection_is_a_connection_error():
    transport = StdlibTransport()
    result = transport.request("POST", f"http://127.0.0.1:{free_port()}/v1/traces", data=b"x", timeout=1)
    assert result.status_code is None and transport.is_connection_error(result.error)
    assert not transport.is_connection_error(ValueError("not a connection problem"))


@pytest.fixture
def plain_env(monkeypatch, tmp_path):
    """No proxy, CA bundle, credential provider or .netrc in the environment."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in (*http_transport._REQUESTS_ENV, http_transport._CREDENTIALS, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_requests_keeps_what_only_requests_does(monkeypatch, plain_env):
    assert isinstance(transport_for("TRACES"), StdlibTransport)
    for name in ("HTTPS_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://proxy:3128")
        assert transport_for("TRACES") is None
        monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_PYTHON_EXPORTER_OTLP_HTTP_LOGS_CREDENTIAL_PROVIDER", "mine")
    assert transport_for("LOGS") is None and transport_for("TRACES") is not None
    monkeypatch.delenv("OTEL_PYTHON_EXPORTER_OTLP_HTTP_LOGS_CREDENTIAL_PROVIDER")
    (plain_env / ".netrc").write_text("machine collector login a password b\n")
    assert transport_for("TRACES") is None


def test_certificates_from_the_same_variables(monkeypatch, plain_env):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", "/metrics-ca.pem")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/client.pem")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/client.key")
    assert transport_for("TRACES")._verify == "/ca.pem"
    assert transport_for("METRICS")._verify == "/metrics-ca.pem"
    assert transport_for("LOGS")._cert == ("/client.pem", "/client.key")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_CLIENT_KEY")
    assert transport_for("LOGS")._cert == "/client.pem"
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_CERTIFICATE")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/curl-ca.pem")  # requests' fallback CA bundle
    assert transport_for("TRACES")._verify == "/curl-ca.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/requests-ca.pem")
    assert transport_for("TRACES")._verify == "/requests-ca.pem"
