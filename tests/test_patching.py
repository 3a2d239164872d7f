"""Post-import hooks: a patch runs right after its module's own code, once, on whichever thread
imports it; the module keeps its own loader; a failing patch never breaks the import."""

from __future__ import annotations

import importlib
import sys
import threading

import pytest

from otel_perf._internal import patching


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A fresh package ``hookpkg_<n>`` with a submodule and a data file, on sys.path."""
    name = f"hookpkg_{len(sys.modules)}_{id(tmp_path)}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("LOADED = []\n")
    (root / "sub.py").write_text("import time\nVALUE = 1\ntime.sleep(0.05)\n")
    (root / "data.txt").write_text("payload")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def test_patch_runs_after_the_import_once_with_the_real_loader(package):
    seen = []
    patching.when_imported(f"{package}.sub", lambda module: seen.append((module.VALUE, module.__loader__)))
    assert seen == []
    module = importlib.import_module(f"{package}.sub")
    importlib.import_module(f"{package}.sub")
    assert len(seen) == 1 and seen[0][0] == 1
    assert type(seen[0][1]).__name__ == "SourceFileLoader"
    assert type(module.__spec__.loader).__name__ == "SourceFileLoader" and module.__loader__ is module.__spec__.loader


def test_patch_of_an_imported_module_runs_at_once(package):
    module = importlib.import_module(package)
    patching.when_imported(package, lambda m: m.LOADED.append("now"))
    assert module.LOADED == ["now"]


def test_hooked_package_keeps_its_resources(package):
    import importlib.resources

    patching.when_imported(package, lambda m: None)
    module = importlib.import_module(package)
    assert importlib.resources.files(module).joinpath("data.txt").read_text() == "payload"


def test_a_failing_patch_is_logged_and_the_import_succeeds(package, caplog):
    def broken(module):
        raise RuntimeError("unknown version")

    patching.when_imported(f"{package}.sub", broken)
    assert importlib.import_module(f"{package}.sub").VALUE == 1
    assert "could not instrument" in caplog.text


def test_imports_on_several_threads_patch_once(package):
    seen = []
    patching.when_imported(f"{package}.sub", seen.append)
    errors = []

    def load():
        try:
            assert importlib.import_module(f"{package}.sub").VALUE == 1
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(seen) == 1


def test_a_missing_module_is_still_an_import_error(package):
    patching.when_imported(f"{package}.absent", lambda m: None)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"{package}.absent")
