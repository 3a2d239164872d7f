"""The OTLP/HTTP exporters' transport on the standard library's ``http.client``.

The upstream exporters send through ``requests`` by default, and importing it (with urllib3,
charset-normalizer, cookie jars...) is a fifth of an instrumented program's start-up CPU: every
program pays it, at the latest for the metrics flushed at exit. The exporters take a pluggable
transport (their ``_transport`` argument); this one keeps one keep-alive connection per exporter
and leaves everything else to the exporter: retries with backoff and ``Retry-After``,
compression, headers, timeouts, the request-size limit.

``transport_for(signal)`` reads the certificates as the exporter does, plus the CA bundle requests
takes from ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``. It returns None, so the exporter builds its
own ``requests`` transport as before, wherever ``requests`` would behave differently from a plain
connection: a proxy in the environment, a ``.netrc`` file (requests reads credentials from it),
or a credential-provider session.
"""

from __future__ import annotations

import http.client
import os
import threading
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport

# What ``requests`` reads from the environment (trust_env) that a plain connection does not do.
_REQUESTS_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NETRC")
_CREDENTIALS = "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER"


class _ConnectError(ConnectionError):
    """The connection could not be made (refused, unresolvable, timed out while connecting)."""


class _Result(BaseHTTPResult):
    __slots__ = ("_body", "_headers")

    def __init__(self, status_code: int | None = None, reason: str | None = None, error: Exception | None = None,
                 body: bytes = b"", headers: Any = None):
        object.__setattr__(self, "status_code", status_code)  # the base is a frozen dataclass
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "error", error)
        object.__setattr__(self, "_body", body)
        object.__setattr__(self, "_headers", headers if headers is not None else {})

    def content(self) -> bytes:
        return self._body

    def headers(self) -> Any:
        return self._headers  # http.client's message: case-insensitive, like requests'


class StdlibTransport(BaseHTTPTransport):
    """POSTs over one reused ``http.client`` connection; ``verify``/``cert`` as in requests."""

    def __init__(self, *, verify: bool | str = True, cert: str | tuple[str, str] | None = None):
        self._verify = verify
        self._cert = cert
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._origin: tuple[str, str] | None = None
        self._context: Any = None

    def _tls(self) -> Any:
        if self._context is None:
            import ssl  # only for https endpoints

            context = ssl.create_default_context(cafile=self._verify if isinstance(self._verify, str) else None)
            if self._verify is False:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if isinstance(self._cert, tuple):
                context.load_cert_chain(self._cert[0], self._cert[1])
            elif self._cert:
                context.load_cert_chain(self._cert)
            self._context = context
        return self._context

    def _connection(self, scheme: str, netloc: str, timeout: float | None) -> http.client.HTTPConnection:
        if self._conn is not None and self._origin == (scheme, netloc):
            return self._conn
        self.close()
        if scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(netloc, timeout=timeout, context=self._tls())
        elif scheme == "http":
            conn = http.client.HTTPConnection(netloc, timeout=timeout)
        else:
            raise ValueError(f"unsupported URL scheme {scheme!r}")
        try:
            conn.connect()
        except OSError as exc:  # socket.gaierror and timeouts included
            conn.close()
            raise _ConnectError(str(exc)) from exc
        self._conn, self._origin = conn, (scheme, netloc)
        return conn

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None, timeout: float | None = None,
                data: bytes | None = None) -> BaseHTTPResult:
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        with self._lock:
            try:
                conn = self._connection(parts.scheme, parts.netloc, timeout)
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
                conn.request(method, target, body=data, headers=headers or {})
                response = conn.getresponse()
                body = response.read()
                if response.will_close:
                    self.close()
                return _Result(response.status, response.reason, None, body, response.headers)
            except Exception as exc:  # the exporter decides: retry a connection error, report the rest
                self.close()
                return _Result(error=exc)

    def is_connection_error(self, exception: Exception | None) -> bool:
        # What the requests transport retries: connection errors (refused, reset, closed by the
        # peer, unresolvable), timeouts and TLS errors.
        return isinstance(exception, (ConnectionError, TimeoutError)) or type(exception).__module__ == "ssl"

    def close(self) -> None:
        conn, self._conn, self._origin = self._conn, None, None
        if conn is not None:
            conn.close()


def transport_for(signal: str) -> StdlibTransport | None:
    """A transport for ``signal`` (``TRACES``, ``METRICS``, ``LOGS``) configured from the same
    variables as the upstream exporter's; None where only requests behaves as the user expects."""
    env = os.environ
    if any(env.get(name) for name in _REQUESTS_ENV) or env.get(_CREDENTIALS) or env.get(
            f"OTEL_PYTHON_EXPORTER_OTLP_HTTP_{signal}_CREDENTIAL_PROVIDER"):
        return None
    if os.path.exists(os.path.expanduser("~/.netrc")) or os.path.exists(os.path.expanduser("~/_netrc")):
        return None
    verify: bool | str = (env.get(f"OTEL_EXPORTER_OTLP_{signal}_CERTIFICATE") or env.get("OTEL_EXPORTER_OTLP_CERTIFICATE")
                          or env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or True)
    key = env.get(f"OTEL_EXPORTER_OTLP_{signal}_CLIENT_KEY") or env.get("OTEL_EXPORTER_OTLP_CLIENT_KEY")
    client_cert = (env.get(f"OTEL_EXPORTER_OTLP_{signal}_CLIENT_CERTIFICATE")
                   or env.get("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"))
    cert = (client_cert, key) if client_cert and key else client_cert
    return StdlibTransport(verify=verify, cert=cert)
