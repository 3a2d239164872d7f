"""Prometheus started on a data directory filled beforehand (backfilled history), with long retention."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.fixtures.binaries import require
from tests.fixtures.prometheus import PrometheusServer, _start


@pytest.fixture
def history_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="history-") as tmp:
        yield Path(tmp)


@pytest.fixture
def prometheus_on(history_dir) -> Iterator[Callable[..., PrometheusServer]]:
    """``prometheus_on(config: dict, rule_files: {name: text})``: Prometheus on ``history_dir/data``."""
    binary = require("prometheus", "prometheus")
    servers: list[PrometheusServer] = []

    def start(config: dict, rule_files: dict[str, str] | None = None) -> PrometheusServer:
        for name, text in (rule_files or {}).items():
            (history_dir / "rules").mkdir(exist_ok=True)
            (history_dir / "rules" / name).write_text(text)
        if rule_files:
            config = {**config, "rule_files": [f"rules/{name}" for name in sorted(rule_files)]}
        (history_dir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))

        def factory(port: int) -> PrometheusServer:
            argv = [binary, f"--config.file={history_dir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={history_dir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.tsdb.retention.time=400d",  # keep the backfilled weeks
                    "--query.lookback-delta=2h"]  # history is sampled hourly: instant queries still see it
            return PrometheusServer("prometheus", argv, port, history_dir, "/-/ready")

        server = _start(factory)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


from tests.examples.conftest import timeline_dsn  # noqa: E402, F401  (the seeded example database)
