"""The framework versions the HTTP side is proved on, each in a cached virtual environment.

``newest`` is the test environment itself (``pip install -e '.[test]'`` takes the newest
FastAPI/Starlette); the others are plain venvs under ``.venv-matrix/<name>/`` (git-ignored) with
otel-perf installed editable plus pinned framework versions. A venv is rebuilt only when its pins
or the project's dependencies change (a hash stored beside it), so after the first run a matrix
test costs the scenario alone.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".venv-matrix"

# name -> pinned requirements; "newest" runs in the test environment (see module docstring)
ENVS: dict[str, list[str]] = {
    "fastapi-0.115": ["fastapi==0.115.14", "starlette==0.46.2", "uvicorn==0.34.3", "websockets==15.0.1",
                      "httpx==0.28.1"],
    "fastapi-0.141": ["fastapi==0.141.0", "starlette==1.3.1", "uvicorn==0.40.0", "websockets==15.0.1",
                      "httpx==0.28.1"],
    "newest": [],
    "django-5.2": ["django==5.2.19", "uvicorn==0.55.0", "websockets==15.0.1", "httpx==0.28.1"],
}


def python(name: str) -> str:
    """The interpreter of environment ``name``, building or refreshing it when needed."""
    pins = ENVS[name]
    if not pins:
        return sys.executable
    target = CACHE / name
    digest = hashlib.sha256("\n".join([*pins, *_runtime_dependencies()]).encode()).hexdigest()
    stamp = target / "otel-perf-matrix.sha256"
    exe = target / "bin" / "python"
    if exe.exists() and stamp.exists() and stamp.read_text() == digest:
        return str(exe)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(target)], check=True)
    quiet = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run([str(exe), "-m", "pip", "install", "-q", "-e", str(ROOT), *pins],
                            env=quiet, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"could not build the {name} environment ({' '.join(pins)}):\n{result.stderr[-3000:]}")
    stamp.write_text(digest)
    return str(exe)


def _runtime_dependencies() -> list[str]:
    """otel-perf's own requirements (not its extras: test-only changes keep the venvs)."""
    text = (ROOT / "pyproject.toml").read_text()
    try:
        import tomllib
    except ImportError:  # Python 3.10: any change to the file rebuilds
        return [text]
    return list(tomllib.loads(text)["project"]["dependencies"])


if __name__ == "__main__":  # build them all ahead of a test run: python -m tests.matrix.envs
    for env_name in ENVS:
        print(env_name, python(env_name), flush=True)
