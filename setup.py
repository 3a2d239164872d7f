"""Build hook: the stack files (collector/, grafana/) ship in the wheel as otel_perf/tools/stack/.

The repository's collector/ and grafana/ stay the one source of truth; they are copied at build
time only (tests/test_packaging.py checks the built wheel holds exactly these files).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

STACK_DIRS = ("collector", "grafana")


class BuildWithStack(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout itself
            return
        target = Path(self.build_lib) / "otel_perf" / "tools" / "stack"
        for name in STACK_DIRS:
            shutil.rmtree(target / name, ignore_errors=True)
            # collector/secrets/ holds a stack's generated credentials (git-ignored): never shipped
            shutil.copytree(Path(__file__).parent / name, target / name,
                            ignore=shutil.ignore_patterns("secrets", "__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithStack})
