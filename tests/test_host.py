"""What otel-perf guarantees to the program it runs in (docs/guarantees.md): its logging is
untouched, diagnostics reach stderr, environment problems never raise, memory stays bounded under
hostile traffic, and no SQL literal leaves the process on an error path."""

from __future__ import annotations

import asyncio
import gc
import http.client as httpclient
import logging
import os
import random
import socket
import string
import subprocess
import sys
import threading
import tracemalloc

import httpx
import psycopg
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from otel_perf._internal.config.settings import Settings
from otel_perf._internal.integrations import asgi as http
from otel_perf._internal.integrations.asgi import middleware
from otel_perf._internal.sdk import fast_otlp, health, providers
from tests.fixtures.net import free_port, wait_for
from tests.fixtures.procs import BIN, env


@pytest.fixture
def pipeline():
    """Factory: the real SDK pipeline (batching, OTLP exporters) built by providers.start."""
    started = []

    def make(**options):
        settings = Settings.resolve({"summary": "false", **options}, environ={})
        telemetry = providers.start(settings)
        providers.take_current()
        started.append(telemetry)
        return telemetry

    yield make
    providers.take_current()
    http.uninstall()
    from otel_perf._internal.sdk import logs

    logs.stop()  # the tap on the logging module
    for t in started:
        for p in (t.tracer_provider, t.meter_provider, t.logger_provider):
            if p is not None:
                p.shutdown()


class InThreadServer:
    """A real uvicorn server running ``app`` in a thread of this process."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, port=self.port, log_level="warning", access_log=False,
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=20, what="uvicorn to start")

    def get_all(self, paths):
        conn = httpclient.HTTPConnection("127.0.0.1", self.port, timeout=10)
        statuses = []
        for path in paths:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        conn.close()
        return statuses

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


def scan_paths(n, seed=3):
    rng = random.Random(seed)
    return ["/" + "".join(rng.choices(string.ascii_letters, k=rng.randint(2000, 6000))) for _ in range(n)]


def test_memory_stays_bounded_under_a_404_scan(pipeline, otlp_http):
    from tests.apps.starlette_app import app

    telemetry = pipeline(endpoint=otlp_http.endpoint, logs_exporter="none", bsp_schedule_delay=100)
    http.install(telemetry)
    server = InThreadServer(app)
    try:
        assert set(server.get_all([f"/items/{i}" for i in range(300)])) == {200}  # warm every cache
        telemetry.tracer_provider.force_flush()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        assert set(server.get_all(scan_paths(1000))) == {404}
        telemetry.tracer_provider.force_flush()
        telemetry.meter_provider.force_flush()
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
    finally:
        server.stop()
    ours = [tracemalloc.Filter(True, "*/otel_perf/*")]
    grown = sum(s.size_diff for s in after.filter_traces(ours).compare_to(before.filter_traces(ours), "filename"))
    # ~4 MB of paths went through; what otel-perf still holds of them must be small.
    assert grown < 1_000_000, f"otel-perf holds {grown / 1e6:.1f} MB more after the scan"
    assert fast_otlp.cached_bytes() <= fast_otlp._CACHE_BYTES
    exported = [s for s in otlp_http.spans() if s.name == "GET"]
    assert len(exported) == 1000  # every scan request still reported


# -- the program's logging ----------------------------------------------------------------------


def run_program(tmp_path, code: str, **environ: str) -> subprocess.CompletedProcess:
    """``otel-perf run python program.py`` with a clean environment."""
    program = tmp_path / "program.py"
    program.write_text(code)
    return subprocess.run([str(BIN / "otel-perf"), "run", sys.executable, str(program)], env=env(**environ),
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)


APP_LOGGING = {
    "basicConfig": (
        "import logging\n"
        "logging.basicConfig(level=logging.INFO, format='APP %(levelname)s %(message)s')\n"
        "log = logging.getLogger('app')\n"
        "log.info('hello info')\n"
        "log.warning('hello warning')\n",
        ["APP INFO hello info", "APP WARNING hello warning"],
    ),
    "no configuration": (  # Python's last resort prints WARNING and up to stderr
        "import logging\n"
        "logging.getLogger('app').info('not shown')\n"
        "logging.getLogger('app').warning('hello warning')\n",
        ["hello warning"],
    ),
}


@pytest.mark.parametrize("case", list(APP_LOGGING))
def test_the_programs_logging_prints_what_it_printed_before(tmp_path, otlp_http, case):
    code, expected = APP_LOGGING[case]
    bare = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    # A service name given: otel-perf's own one-line notice about the default name stays out of the way.
    result = run_program(tmp_path, code, OTEL_EXPORTER_OTLP_ENDPOINT=otlp_http.endpoint, OTEL_PERF_SUMMARY="false",
                         OTEL_SERVICE_NAME="logging-test")
    assert result.returncode == 0, result.stderr
    assert bare.stderr.splitlines() == expected  # what the program prints on its own
    assert result.stderr.splitlines() == expected  # ... and under otel-perf, line for line
    records = [r for req in otlp_http.logs for rl in req.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert [r.body.string_value for r in records] == ["hello warning"]  # and the warning is exported


def test_a_dead_collector_is_reported_on_stderr(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code = (
        "import logging, time\n"
        "from opentelemetry import trace\n"
        "for _ in range(5):\n"
        "    trace.get_tracer('app').start_span('work').end()\n"
        "    logging.getLogger('app').warning('app warning')\n"
        "    time.sleep(0.3)\n"
    )
    result = run_program(tmp_path, code, OTEL_EXPORTER_OTLP_ENDPOINT=dead, OTEL_METRIC_EXPORT_INTERVAL="200",
                         OTEL_BSP_SCHEDULE_DELAY="100", OTEL_EXPORTER_OTLP_TIMEOUT="1", OTEL_PERF_SUMMARY="false",
                         OTEL_PERF_SHUTDOWN_TIMEOUT="0.5")
    assert result.returncode == 0, result.stderr
    problems = [line for line in result.stderr.splitlines() if "NOT being delivered" in line]
    assert len(problems) == 1, result.stderr  # said once (rate-limited), on stderr
    assert dead in problems[0]  # and where it was going
    assert "Traceback" not in result.stderr


def test_unrelated_sdk_warnings_are_not_swallowed(pipeline, caplog):
    telemetry = pipeline(traces_exporter="none", metrics_exporter="none", logs_exporter="none")
    failures = dict(health.HEALTH.failures)
    histogram = telemetry.meter_provider.get_meter("t").create_histogram("h")
    with caplog.at_level(logging.WARNING):
        histogram.record(-1.0)  # the SDK warns: a histogram takes no negative values
    assert "must be non-negative" in caplog.text
    assert health.HEALTH.failures == failures  # and it is no export failure


# -- no SQL literal on error paths ----------------------------------------------------------------

EMAIL = "someone.secret@example.org"


def test_database_error_texts_are_scrubbed_everywhere_they_are_exported(pipeline, otlp_http, postgres):
    from otel_perf import OtelPerfMiddleware

    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS host_users (email text UNIQUE)")
        conn.execute("DELETE FROM host_users")
        conn.execute("INSERT INTO host_users VALUES (%s)", (EMAIL,))

    async def signup(request):
        try:
            with psycopg.connect(postgres.dsn, autocommit=True) as conn:
                conn.execute("INSERT INTO host_users VALUES (%s)", (EMAIL,))
        except psycopg.Error:
            logging.getLogger("app").error("signup failed", exc_info=True)  # what Django does too
            raise
        return PlainTextResponse("ok")

    telemetry = pipeline(endpoint=otlp_http.endpoint, bsp_schedule_delay=100)
    http.install(telemetry)
    app = OtelPerfMiddleware(Starlette(routes=[Route("/signup", signup, methods=["POST"])]))

    async def post():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.post("/signup")

    assert asyncio.run(post()).status_code == 500
    telemetry.tracer_provider.force_flush()
    telemetry.logger_provider.force_flush()
    wait_for(lambda: otlp_http.logs and any(s.name == "POST /signup" for s in otlp_http.spans()), timeout=20,
             what="the span and the log record")
    (span,) = [s for s in otlp_http.spans() if s.name == "POST /signup"]
    (event,) = [e for e in span.events if e.name == "exception"]
    exported = str(otlp_http.traces) + str(otlp_http.logs)
    assert "example.org" not in exported and "someone" not in exported
    event_attrs = {kv.key: kv.value.string_value for kv in event.attributes}
    assert event_attrs["exception.type"] == "psycopg.errors.UniqueViolation"
    assert "(SQLSTATE 23505)" in event_attrs["exception.message"]
    assert "host_users_email_key" in event_attrs["exception.message"]  # still useful
    assert "Key (email)=(?)" in event_attrs["exception.stacktrace"] or "DETAIL" not in event_attrs["exception.stacktrace"]
    records = [r for req in otlp_http.logs for rl in req.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    (record,) = [r for r in records if r.body.string_value == "signup failed"]
    log_attrs = {kv.key: kv.value.string_value for kv in record.attributes}
    assert "23505" in log_attrs["exception.message"]


# -- environment problems warn, they never raise ----------------------------------------------------


def test_a_busy_prometheus_port_disables_the_exporter_not_the_program(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = "import otel_perf\notel_perf.configure(metrics_exporter='prometheus')\nprint('still running')\n"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                                env=env(OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1", OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
                                        OTEL_TRACES_EXPORTER="none", OTEL_LOGS_EXPORTER="none"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "still running\n"
    assert "prometheus metrics disabled" in result.stderr and "Traceback" not in result.stderr


def test_a_broken_exporter_library_disables_that_exporter_not_the_program(tmp_path, otlp_http):
    """grpcio whose native library does not load (a wheel for another libc, a half-done upgrade)."""
    broken = tmp_path / "broken" / "grpc"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('libgrpc.so: cannot open shared object file')\n")
    code = (
        "import otel_perf\n"
        "otel_perf.configure(traces_protocol='grpc', metrics_exporter='none', logs_exporter='none')\n"
        "print('still running')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env=env(PYTHONPATH=str(broken.parent), OTEL_EXPORTER_OTLP_ENDPOINT=otlp_http.endpoint))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "still running\n"
    assert "span exporter disabled: ImportError: libgrpc.so" in result.stderr


def installed_instrumentations(root, **modules: str):
    """Fake installed distributions, one per ``name=source``: each declares an
    ``opentelemetry_instrumentor`` entry point ``name`` -> ``name:Instrumentor`` in module ``source``."""
    root.mkdir()
    for name, source in modules.items():
        (root / f"{name}.py").write_text(source)
        info = root / f"{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[opentelemetry_instrumentor]\n{name} = {name}:Instrumentor\n")
    return root


INSTRUMENTOR = (
    "import sys\n"
    "class Instrumentor:\n"
    "    def instrument(self, **kwargs):\n"
    "        {body}\n"
    "    def uninstrument(self, **kwargs):\n"
    "        pass\n"
)


@pytest.mark.parametrize("launcher", ["otel-perf run", "opentelemetry-instrument"])
def test_a_failing_instrumentation_is_skipped_the_others_load(tmp_path, launcher):
    """Third-party instrumentations that fail to import (a native library for another libc) or to
    instrument (a library version they do not know) cost a warning; the program runs and the
    instrumentations after them still load. Upstream's loader re-raises the second kind into the program."""
    first = installed_instrumentations(
        tmp_path / "first",
        aa_native="raise ImportError('libnative.so: cannot open shared object file')\n",
        ab_version=INSTRUMENTOR.format(body="raise AttributeError(\"module 'lib' has no attribute 'Client'\")"),
        ac_missing=INSTRUMENTOR.format(body="import lib_submodule_gone  # noqa"),
    )
    last = installed_instrumentations(
        tmp_path / "last", zz_good=INSTRUMENTOR.format(body="print('zz_good instrumented', file=sys.stderr)"))
    argv = [str(BIN / "otel-perf"), "run"] if launcher == "otel-perf run" else [str(BIN / "opentelemetry-instrument")]
    result = subprocess.run([*argv, sys.executable, "-c", "print('still running')"], capture_output=True, text=True,
                            timeout=60, env=env(PYTHONPATH=f"{first}{os.pathsep}{last}", OTEL_TRACES_EXPORTER="none",
                                                OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
                                                OTEL_PERF_SUMMARY="false"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "still running\n"
    assert "zz_good instrumented" in result.stderr, result.stderr
    assert "Failed to auto initialize" not in result.stderr, result.stderr
    for name in ("aa_native", "ab_version"):  # each named once in a warning (upstream skips ImportErrors itself)
        assert name in result.stderr, result.stderr


def test_a_third_party_import_error_in_our_integration_is_a_warning(monkeypatch, tmp_path, caplog):
    """One of our integrations whose dependency is missing or broken is switched off with a warning;
    configure() does not raise and the other integrations are installed."""
    from otel_perf._internal import integrations

    (tmp_path / "needs_gone_lib.py").write_text("import gone_lib  # a dependency removed by a partial upgrade\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "fine_integration.py").write_text("INSTALLED = []\ndef install(t):\n    INSTALLED.append(t)\n")
    monkeypatch.setattr(integrations, "OURS", {"gone": "needs_gone_lib", "fine": "fine_integration"})
    telemetry = type("Telemetry", (), {"settings": Settings.resolve({"summary": "false"}, environ={})})()
    with caplog.at_level(logging.WARNING, logger="otel_perf"):
        integrations.install(telemetry, entry_points=False)
    import fine_integration

    assert fine_integration.INSTALLED == [telemetry]
    assert any("could not enable gone instrumentation" in r.getMessage() and r.exc_info
               and r.exc_info[1].name == "gone_lib" for r in caplog.records), caplog.text


def test_spec_valid_settings_run(tmp_path, otlp_http):
    code = "from opentelemetry import trace\ntrace.get_tracer('app').start_span('listed').end()\nprint('still running')\n"
    result = run_program(tmp_path, code, OTEL_EXPORTER_OTLP_ENDPOINT=otlp_http.endpoint,
                         OTEL_TRACES_EXPORTER="otlp,console", OTEL_EXPORTER_OTLP_PROTOCOL="http/json",
                         OTEL_PERF_SUMMARY="false")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("still running\n")
    assert '"name": "listed"' in result.stdout  # the console exporter
    assert [s.name for s in otlp_http.spans()] == ["listed"]  # and OTLP
    assert "http/json" in result.stderr  # said once: sent as http/protobuf


# -- one server stopping is not the process ending ---------------------------------------------------


class Hanging:
    """An endpoint that accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


def test_a_stopping_uvicorn_server_leaves_telemetry_on_and_the_loop_free(pipeline):
    import uvicorn

    from tests.apps.starlette_app import app

    hanging = Hanging()
    telemetry = pipeline(endpoint=hanging.endpoint, timeout=10, bsp_schedule_delay=60_000,
                         metrics_exporter="none", logs_exporter="none", shutdown_timeout=1.5)
    providers._current = telemetry  # as configure() leaves it
    http.install(telemetry)  # patches uvicorn's Server.shutdown (uvicorn is already imported)
    ports = free_port(), free_port()
    servers = [uvicorn.Server(uvicorn.Config(app, port=p, log_level="warning", lifespan="off")) for p in ports]
    events = []

    def get(port, path):
        conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status

    async def main():
        tasks = [asyncio.create_task(s.serve()) for s in servers]
        while not all(s.started for s in servers):
            await asyncio.sleep(0.01)
        assert await asyncio.to_thread(get, ports[0], "/fast") == 200  # a span waits in the queue
        servers[0].should_exit = True
        for _ in range(1000):  # until A flushes (on its thread) or is done
            if tasks[0].done() or any(t.name == "otel-perf-flush" for t in threading.enumerate()):
                break
            await asyncio.sleep(0.01)
        # A's flush is stuck on the hanging Collector; B must still be served meanwhile.
        status = await asyncio.to_thread(get, ports[1], "/items/7")
        events.append(("b answered", status, tasks[0].done()))
        await tasks[0]
        events.append(("a stopped",))
        assert await asyncio.to_thread(get, ports[1], "/items/8") == 200
        servers[1].should_exit = True
        await tasks[1]

    try:
        asyncio.run(main())
    finally:
        hanging.close()
    assert events[0] == ("b answered", 200, False)  # while A was still stopping
    assert providers.current() is telemetry  # the process's telemetry is not one server's to end
    assert middleware.ACTIVE is not None  # instrumentation still on after A stopped


# -- query classes under concurrency --------------------------------------------


def test_one_query_class_object_shared_by_concurrent_tasks():
    from otel_perf import query_class
    from otel_perf._internal.query_classes import CURRENT

    rls = query_class("rls")
    seen = []

    async def task(name, first: asyncio.Event, second: asyncio.Event):
        async with rls:
            seen.append((name, CURRENT.get().name))
            first.set()
            await second.wait()
        seen.append((name, CURRENT.get()))

    async def run():  # A enters, B enters, A exits while B is inside, then B exits
        a_in, b_in, b_out = asyncio.Event(), asyncio.Event(), asyncio.Event()
        ta = asyncio.create_task(task("a", a_in, b_in))
        await a_in.wait()
        tb = asyncio.create_task(task("b", b_in, b_out))
        await ta
        b_out.set()
        await tb

    asyncio.run(run())
    assert seen == [("a", "rls"), ("b", "rls"), ("a", None), ("b", None)]
    assert CURRENT.get() is None


@pytest.mark.timeout(60)
def test_the_stat_statements_poller_gives_up_on_a_hanging_server():
    """A server that accepts and never answers: the poll fails (and is retried later) instead of
    holding its thread, and the exit waiting for it, for ever."""
    from opentelemetry.sdk.metrics import MeterProvider

    from otel_perf._internal.integrations.pg_stat_statements import StatStatements

    hanging = Hanging()
    port = hanging.endpoint.rsplit(":", 1)[1]
    poller = StatStatements(MeterProvider().get_meter("t"), f"postgresql://postgres@127.0.0.1:{port}/app")
    try:
        with pytest.raises(psycopg.OperationalError):
            poller.poll()
    finally:
        hanging.close()


# -- import hooks ----------------------------------------------------------------------------------

HOOK_DURING_IMPORT = """
import threading
from otel_perf._internal import patching

import gate
thread = threading.Thread(target=__import__, args=("half_built",))
thread.start()
assert gate.inside.wait(10), "half_built never started executing"
seen = []
def patch(module):
    seen.append(module.Client.__name__)  # defined at the end of the module
threading.Timer(0.5, gate.finish.set).start()
patching.when_imported("half_built", patch)
thread.join(10)
print(seen)
"""


def test_a_hook_registered_while_another_thread_imports_the_module_patches_the_whole_module(tmp_path):
    """configure() on one thread while another is still executing psycopg's import: the module is
    already in sys.modules, half built; the patch must see it whole, not fail on a missing class."""
    (tmp_path / "gate.py").write_text("import threading\ninside, finish = threading.Event(), threading.Event()\n")
    (tmp_path / "half_built.py").write_text(
        "import gate\ngate.inside.set()\ngate.finish.wait(10)\nclass Client:\n    pass\n")
    result = subprocess.run([sys.executable, "-c", HOOK_DURING_IMPORT], capture_output=True, text=True, timeout=60,
                            env=env(PYTHONPATH=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "['Client']\n", result.stdout + result.stderr
