"""The package layout holds: a small public API, no import cycles, a runtime that never needs the tools."""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import otel_perf
from otel_perf._internal.config.settings import Settings

ROOT = Path(otel_perf.__file__).parent
RUNTIME = ("otel_perf._internal", "otel_perf.auto")  # what runs inside the user's program
TOOL_LIBRARIES = ("click", "rich", "yaml", "grafana_foundation_sdk", "locust")


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = ("otel_perf", *path.relative_to(ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: frozenset[str] = frozenset()) -> set[str]:
    """Every module ``name`` imports, at module level or inside functions (absolute names). ``from
    pkg import module`` counts as importing the module only: parent packages are always loaded first."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = frozenset(mods)
    return {name: {m for m in imports(name, path, known) if m in mods and m != name} for name, path in mods.items()}


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [node, nxt]) if nxt in stack else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    assert cycles == []


def test_runtime_never_imports_the_tools_or_the_package_root():
    for name, deps in graph().items():
        if name.startswith(RUNTIME):
            assert not [d for d in deps if d.startswith("otel_perf.tools")], name
            assert "otel_perf" not in deps, f"{name} imports the package root"
    for name, path in modules().items():
        if name.startswith(RUNTIME) or name == "otel_perf":
            used = {m.split(".")[0] for m in imports(name, path)} & set(TOOL_LIBRARIES)
            # settings.py reads an OTEL_PERF_CONFIG file with PyYAML when there is one, and says how to install it.
            assert used <= ({"yaml"} if name == "otel_perf._internal.config.settings" else set()), (name, used)


def test_public_api_is_small():
    assert sorted(otel_perf.__all__) == sorted(
        ["configure", "shutdown", "ConfigError", "query_class", "OtelPerfMiddleware", "__version__"]
    )
    for name in otel_perf.__all__:
        assert getattr(otel_perf, name) is not None


def test_configure_takes_every_setting_as_a_typed_keyword():
    parameters = inspect.signature(otel_perf.configure).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())
    assert list(parameters)[: len(fields(Settings))] == [f.name for f in fields(Settings)]
    assert list(parameters)[len(fields(Settings)):] == ["span_processors", "metric_readers", "views"]
    assert all(p.annotation is not inspect.Parameter.empty for p in parameters.values())


def test_run_works_without_the_tool_libraries(tmp_path):
    """The lean install: with click, rich, PyYAML and the rest unimportable, `otel-perf run` still runs
    the program instrumented (local mode summary included)."""
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for lib in TOOL_LIBRARIES:
        (blocked / f"{lib}.py").write_text(f"raise ImportError('{lib} is not installed (lean install)')\n")
    script = Path(sys.executable).with_name("otel-perf")
    program = (
        "import sys, otel_perf._internal.sdk.providers as p; "
        "assert p.current() is not None; "
        f"assert not set(sys.modules) & set({TOOL_LIBRARIES!r}), sorted(set(sys.modules) & set({TOOL_LIBRARIES!r})); "
        "print('instrumented')"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(PYTHONPATH=str(blocked), OTEL_EXPORTER_OTLP_ENDPOINT="", OTEL_PERF_SUMMARY="false",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    result = subprocess.run([str(script), "run", "python", "-c", program], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "instrumented" in result.stdout
    tools = subprocess.run([str(script), "generate", "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert tools.returncode == 2 and "pip install 'otel-perf[tools]'" in tools.stderr
