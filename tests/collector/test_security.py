"""The stack beyond localhost: authenticated Prometheus and Alertmanager (the real binaries with the
shipped web configuration and flags), no lifecycle or remote-write endpoints unless asked for, a
preflight that refuses to publish without authentication, and nothing else published."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import bcrypt
import pytest
import yaml

from tests.fixtures.binaries import require
from tests.fixtures.net import wait_for
from tests.fixtures.prometheus import PrometheusServer, _start, basic_auth

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR = ROOT / "collector"
USER = "otel-perf"
PUBLISHED = {("otel-collector", 4317), ("otel-collector", 4318), ("prometheus", 9090), ("alertmanager", 9093),
             ("grafana", 3000)}


@pytest.fixture(scope="module")
def secrets_dir():
    with tempfile.TemporaryDirectory(prefix="stack-secrets-") as tmp:
        directory = Path(tmp) / "secrets"
        out = subprocess.run([sys.executable, str(COLLECTOR / "make_secrets.py"), str(directory)],
                             capture_output=True, text=True, check=True)
        assert "created otlp-token, prometheus-password, prometheus-web.yml" in out.stdout
        yield directory


def password(secrets: Path, service: str) -> str:
    return (secrets / f"{service}-password").read_text().strip()


def status(url: str, method: str = "GET", auth: str | None = None, body: bytes | None = None) -> int:
    headers = {"Authorization": auth} if auth else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method=method, headers=headers),
                                    timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_secrets_are_random_hashed_and_kept(secrets_dir):
    web = yaml.safe_load((secrets_dir / "prometheus-web.yml").read_text())
    digest = web["basic_auth_users"][USER]
    assert bcrypt.checkpw(password(secrets_dir, "prometheus").encode(), digest.encode())
    assert password(secrets_dir, "prometheus") not in (secrets_dir / "prometheus-web.yml").read_text()
    assert len((secrets_dir / "otlp-token").read_text().strip()) >= 40
    assert password(secrets_dir, "prometheus") != password(secrets_dir, "alertmanager")
    before = {p.name: p.read_text() for p in secrets_dir.iterdir()}
    again = subprocess.run([sys.executable, str(COLLECTOR / "make_secrets.py"), str(secrets_dir)],
                           capture_output=True, text=True, check=True)
    assert "all present, kept" in again.stdout
    assert {p.name: p.read_text() for p in secrets_dir.iterdir()} == before  # never rotated behind your back
    assert oct(secrets_dir.stat().st_mode & 0o777) == "0o700"
    assert "collector/secrets/" in (ROOT / ".gitignore").read_text().splitlines()


def test_prometheus_with_the_shipped_flags_refuses_the_unauthenticated_and_the_admin_endpoints(secrets_dir):
    binary = require("prometheus", "prometheus")
    workdir = Path(tempfile.mkdtemp(prefix="prometheus-auth-"))
    config = yaml.safe_load((COLLECTOR / "prometheus/prometheus.yml").read_text())
    config["rule_files"] = []
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    auth = (USER, password(secrets_dir, "prometheus"))

    def factory(port: int) -> PrometheusServer:
        argv = ["env", f"PROMETHEUS_WEB_CONFIG={secrets_dir / 'prometheus-web.yml'}",
                "sh", str(COLLECTOR / "prometheus/entrypoint.sh"), binary,
                f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}"]
        return PrometheusServer("prometheus", argv, port, workdir, "/-/ready", auth)

    prom = _start(factory)
    try:
        good, bad = basic_auth(*auth), basic_auth(USER, "wrong")
        query = f"{prom.url}/api/v1/query?query=vector(1)"
        assert status(query) == 401 and status(query, auth=bad) == 401
        assert status(query, auth=good) == 200
        assert prom.query("vector(1)")[0]["value"][1] == "1"
        # No remote shutdown or reload, even with credentials; no remote write unless asked for.
        assert status(f"{prom.url}/-/reload", "POST", good, b"") in (403, 404)
        assert status(f"{prom.url}/-/quit", "POST", good, b"") in (403, 404)
        assert status(f"{prom.url}/api/v1/write", "POST", good, b"") == 404
        assert status(f"{prom.url}/-/reload", "POST", None, b"") == 401
        assert prom._proc.poll() is None  # still running
    finally:
        prom.stop()


def test_remote_write_receiver_only_when_asked_for(tmp_path):
    script = COLLECTOR / "prometheus/entrypoint.sh"
    echo = tmp_path / "echo-args"
    echo.write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\n")
    echo.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_")}
    off = subprocess.run(["sh", str(script), str(echo), "--config.file=x"], env=env, capture_output=True, text=True)
    on = subprocess.run(["sh", str(script), str(echo), "--config.file=x"], capture_output=True, text=True,
                        env={**env, "PROMETHEUS_REMOTE_WRITE_RECEIVER": "true"})
    assert off.stdout.split() == ["--config.file=x", "--web.config.file=/run/secrets/prometheus_web"]
    assert on.stdout.split()[-1] == "--web.enable-remote-write-receiver"
    assert not any("lifecycle" in arg for arg in off.stdout.split() + on.stdout.split())


def test_alertmanager_with_the_shipped_web_config_refuses_unauthenticated_silences(start_alertmanager,
                                                                                   secrets_dir):
    auth = (USER, password(secrets_dir, "alertmanager"))
    am = start_alertmanager("route: {receiver: none}\nreceivers: [{name: none}]\n",
                            web_config=secrets_dir / "alertmanager-web.yml", auth=auth)
    now = datetime.now(timezone.utc)
    silence = json.dumps({"matchers": [{"name": "alertname", "value": ".+", "isRegex": True}],
                          "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
                          "createdBy": "attacker", "comment": "mute every page"}).encode()
    assert status(f"{am.url}/api/v2/silences", "POST", None, silence) == 401
    assert status(f"{am.url}/api/v2/alerts") == 401
    assert status(f"{am.url}/api/v2/silences", "POST", basic_auth(*auth), silence) == 200
    assert len(am._request("/api/v2/silences")) == 1


def test_prometheus_alerts_reach_the_authenticated_alertmanager(start_prometheus, start_alertmanager, secrets_dir):
    """The shipped prometheus.yml authenticates to Alertmanager with the generated password file."""
    am_auth = (USER, password(secrets_dir, "alertmanager"))
    am = start_alertmanager("route: {receiver: none}\nreceivers: [{name: none}]\n",
                            web_config=secrets_dir / "alertmanager-web.yml", auth=am_auth)
    config = yaml.safe_load((COLLECTOR / "prometheus/prometheus.yml").read_text())
    manager = config["alerting"]["alertmanagers"][0]
    assert manager["basic_auth"]["password_file"] == "/run/secrets/alertmanager_password"
    manager["basic_auth"]["password_file"] = str(secrets_dir / "alertmanager-password")
    manager["static_configs"][0]["targets"] = [f"127.0.0.1:{am.port}"]
    rules = "groups: [{name: t, rules: [{alert: AuthTest, expr: vector(1), labels: {severity: critical}}]}]\n"
    start_prometheus(yaml.safe_dump(config), rule_files={"rules/t.yml": rules})
    wait_for(lambda: any(a["labels"].get("alertname") == "AuthTest" for a in am.alerts()), timeout=60,
             what="the alert at the authenticated Alertmanager")


def test_preflight_refuses_to_publish_without_authentication(tmp_path, secrets_dir):
    def preflight(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", str(COLLECTOR / "preflight.sh")], capture_output=True, text=True,
                              env={"PATH": os.environ["PATH"], **env})

    assert preflight().returncode == 0  # localhost by default
    assert preflight(STACK_BIND="127.0.0.1", SECRETS=str(tmp_path)).returncode == 0
    missing = preflight(STACK_BIND="0.0.0.0", SECRETS=str(tmp_path), OTLP_AUTH="on")
    assert missing.returncode == 1 and len(missing.stderr.splitlines()) == 1
    assert "secret otlp-token is missing" in missing.stderr and "make stack-secrets" in missing.stderr
    no_token = preflight(STACK_BIND="0.0.0.0", SECRETS=str(secrets_dir))
    assert no_token.returncode == 1 and "compose.exposed.yaml" in no_token.stderr
    assert preflight(STACK_BIND="0.0.0.0", SECRETS=str(secrets_dir), OTLP_AUTH="on").returncode == 0


def test_compose_publishes_only_authenticated_ports():
    compose = yaml.safe_load((COLLECTOR / "compose.yaml").read_text())
    exposed = yaml.safe_load((COLLECTOR / "compose.exposed.yaml").read_text())
    services = compose["services"]
    published = {(name, int(str(port).rsplit(":", 2)[-1].split("/")[0]))
                 for name, svc in services.items() for port in svc.get("ports", [])}
    assert published == PUBLISHED  # Tempo, the Collector's :8888/:13133 and the gateway stay inside
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("${STACK_BIND:-127.0.0.1}:"), (name, port)
        if name not in ("preflight", "otelcol-queue-init", "probe", "otel-gateway", "tempo"):
            assert svc["depends_on"]["preflight"] == {"condition": "service_completed_successfully"}, name
    assert "--web.enable-lifecycle" not in services["prometheus"]["command"]
    assert "--web.enable-remote-write-receiver" not in services["prometheus"]["command"]
    assert "--web.config.file=/run/secrets/alertmanager_web" in services["alertmanager"]["command"]
    assert services["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert set(compose["secrets"]) >= {"otlp_token", "prometheus_web", "prometheus_password", "alertmanager_web",
                                       "alertmanager_password"}
    assert exposed["services"]["preflight"]["environment"]["OTLP_AUTH"] == "on"
    assert "--config=/etc/otelcol/exposed.yaml" in exposed["services"]["otel-collector"]["command"]
    datasources = yaml.safe_load((ROOT / "grafana/provisioning/datasources/datasources.yaml").read_text())
    prometheus = next(d for d in datasources["datasources"] if d["uid"] == "prometheus")
    assert prometheus["basicAuth"] is True and prometheus["basicAuthUser"] == USER
    assert prometheus["secureJsonData"]["basicAuthPassword"] == "$__file{/run/secrets/prometheus_password}"


def test_collector_overlay_requires_the_token_on_both_otlp_protocols():
    overlay = yaml.safe_load((COLLECTOR / "otelcol-exposed.yaml").read_text())
    agent = yaml.safe_load((COLLECTOR / "otelcol-agent.yaml").read_text())
    protocols = overlay["receivers"]["otlp"]["protocols"]
    assert set(protocols) == set(agent["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    for protocol in protocols.values():
        assert protocol["auth"]["authenticator"] == "bearertokenauth/otlp"
    # Lists are replaced by an overlay: every extension the agent runs must still be there.
    assert set(agent["service"]["extensions"]) < set(overlay["service"]["extensions"])


def stack_copy(tmp_path: Path, edit=None) -> Path:
    """A copy of collector/'s compose files and Collector configs, edited by ``edit(folder)``."""
    folder = tmp_path / "collector"
    folder.mkdir()
    for name in ("compose.yaml", "compose.exposed.yaml", "otelcol-agent.yaml", "otelcol-exposed.yaml"):
        (folder / name).write_text((COLLECTOR / name).read_text())
    if edit:
        edit(folder)
    return folder / "compose.yaml"


def rewrite(path: Path, change) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_validate_passes_the_shipped_exposed_configuration(tmp_path):
    from otel_perf.tools import stack_auth
    from otel_perf.tools.validate import validate

    assert stack_auth.problems(COLLECTOR / "compose.yaml") == []
    assert [str(p) for p in validate([COLLECTOR / "compose.yaml"]) if not p.warning] == []


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda f: (f / "compose.exposed.yaml").unlink(), "no compose.exposed.yaml beside it"),
        (lambda f: rewrite(f / "otelcol-exposed.yaml",
                           lambda d: d["receivers"]["otlp"]["protocols"]["http"].pop("auth")),
         "services.otel-collector (port 4317, 4318) is published without authentication in the exposed "
         "configuration: receivers.otlp.protocols.http has no auth.authenticator"),
        (lambda f: rewrite(f / "otelcol-exposed.yaml", lambda d: d["service"].update(extensions=["health_check"])),
         "authenticator 'bearertokenauth/otlp' is not a running extension"),
        (lambda f: rewrite(f / "compose.yaml",
                           lambda d: d["services"]["prometheus"]["command"].append("--web.enable-lifecycle")),
         "services.prometheus (port 9090) is published without authentication in the exposed configuration: "
         "--web.enable-lifecycle"),
        (lambda f: rewrite(f / "compose.yaml",
                           lambda d: d["services"]["alertmanager"]["command"].remove(
                               "--web.config.file=/run/secrets/alertmanager_web")),
         "services.alertmanager (port 9093) is published without authentication"),
        (lambda f: rewrite(f / "compose.yaml",
                           lambda d: d["services"]["grafana"]["environment"].update(GF_AUTH_ANONYMOUS_ENABLED="true")),
         "services.grafana (port 3000) is published without authentication in the exposed configuration: "
         "anonymous access is on"),
        (lambda f: rewrite(f / "compose.yaml", lambda d: d["services"]["tempo"].update(
            ports=["${STACK_BIND:-127.0.0.1}:3200:3200"])),
         "services.tempo (port 3200) is published without authentication in the exposed configuration: no known "
         "authentication"),
    ],
    ids=["no-overlay", "otlp-http-open", "authenticator-not-running", "lifecycle", "alertmanager-open",
         "grafana-anonymous", "tempo-published"],
)
def test_validate_names_every_unauthenticated_published_port(tmp_path, edit, expected):
    from otel_perf.tools import stack_auth

    messages = stack_auth.problems(stack_copy(tmp_path, edit))
    assert any(expected in m for m in messages), messages
    assert all("tempo" in m for m in messages) if "tempo" in expected else len(messages) == 1


def test_exposed_collector_answers_401_without_the_token_and_takes_an_app_that_sends_it(start_collector, tmp_path,
                                                                                         secrets_dir):
    """The real Collector with the shipped agent config and the shipped exposed overlay."""
    from tests.fixtures.otelcol import Agent
    from tests.fixtures.otlp import GrpcReceiver
    from tests.fixtures.procs import serve

    tempo = GrpcReceiver()
    exposed = yaml.safe_load((COLLECTOR / "otelcol-exposed.yaml").read_text())
    exposed["extensions"]["bearertokenauth/otlp"]["filename"] = str(secrets_dir / "otlp-token")  # /run/secrets there
    agent = Agent(start_collector, tempo.endpoint, tmp_path / "queue", extra=exposed)
    token = (secrets_dir / "otlp-token").read_text().strip()
    empty = b'{"resourceSpans": []}'
    url = f"{agent.otlp_http}/v1/traces"
    assert status(url, "POST", None, empty) == 401
    assert status(url, "POST", "Bearer wrong-token", empty) == 401
    assert status(url, "POST", f"Bearer {token}", empty) == 200

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    with grpc.insecure_channel(agent.otlp_grpc.removeprefix("http://")) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stub.Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=10,
                    metadata=[("authorization", f"Bearer {token}")])

    server = serve(OTEL_EXPORTER_OTLP_ENDPOINT=agent.otlp_http, OTEL_SERVICE_NAME="token-sender",
                   OTEL_EXPORTER_OTLP_HEADERS=f"Authorization=Bearer%20{token}", OTEL_BSP_SCHEDULE_DELAY="200",
                   OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    try:
        for _ in range(3):
            urllib.request.urlopen(f"{server.url}/items/7", timeout=10).read()
        wait_for(lambda: [s for s in tempo.spans() if s.name == "GET /items/{item_id}"], timeout=30,
                 what="the app's spans through the authenticated Collector")
    finally:
        server.stop()


def test_doctor_says_when_the_exposed_collector_answers_401(start_collector, tmp_path, secrets_dir):
    from tests.fixtures.otelcol import Agent
    from tests.fixtures.otlp import GrpcReceiver

    exposed = yaml.safe_load((COLLECTOR / "otelcol-exposed.yaml").read_text())
    exposed["extensions"]["bearertokenauth/otlp"]["filename"] = str(secrets_dir / "otlp-token")
    agent = Agent(start_collector, GrpcReceiver().endpoint, tmp_path / "queue", extra=exposed)
    token = (secrets_dir / "otlp-token").read_text().strip()
    script = str(Path(sys.executable).with_name("otel-perf"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    base["OTEL_EXPORTER_OTLP_ENDPOINT"] = agent.otlp_http
    refused = subprocess.run([script, "doctor"], env=base, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "answers 401" in refused.stderr and "OTEL_EXPORTER_OTLP_HEADERS" in refused.stderr
    assert "REFUSED (401)" in refused.stdout
    accepted = subprocess.run([script, "doctor"], capture_output=True, text=True, timeout=60,
                              env={**base, "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{token}"})
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "REFUSED" not in accepted.stdout and "reachable" in accepted.stdout
