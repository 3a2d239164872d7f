"""One summary for a service of several processes (pre-fork workers, multiprocessing children).

The first process of a service (the supervisor, or a single server) names a private directory in
the environment; every other process inherits it (by fork or by spawn) and, at its exit, leaves its
partial summary there instead of printing one. The first process merges them at its own exit (a
supervisor outlives its workers) and prints, and writes OTEL_PERF_SUMMARY_FILE, once for all.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from otel_perf._internal.summary import Summary

DIR_ENV = "OTEL_PERF_SUMMARY_DIR"
_owner = False  # this process merges (it named the directory)
_part = os.urandom(4).hex()  # this process's part: rewritten by each checkpoint, never duplicated


def join() -> None:
    """Name the directory if no parent process did; then this process is the one that merges."""
    global _owner
    if os.environ.get(DIR_ENV):
        return
    # Named now, created by the first process with something to leave: no cost without workers.
    import tempfile  # (with shutil and random) only in the process that names it

    os.environ[DIR_ENV] = os.path.join(tempfile.gettempdir(), f"otel-perf-summary-{os.getpid()}-{os.urandom(8).hex()}")
    _owner = True


def forked() -> None:
    """In a forked child: the parent merges, this process leaves its part."""
    global _owner, _part
    _owner = False
    _part = os.urandom(4).hex()


def is_owner() -> bool:
    return _owner


def leave(summary: Summary) -> bool:
    """A worker's checkpoint or exit: write (or rewrite) its part for the owner to merge; False when
    there is no owner."""
    directory = os.environ.get(DIR_ENV)
    if _owner or not directory:
        return False
    os.makedirs(directory, mode=0o700, exist_ok=True)
    part = os.path.join(directory, f"{os.getpid()}-{_part}")
    with open(part + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(summary.state(), fh)
    os.replace(part + ".tmp", part + ".json")  # the owner never reads half a part
    return True


def gather(summary: Summary) -> None:
    """The owner's exit: merge every part left by the other processes, then remove them."""
    directory = os.environ.get(DIR_ENV)
    if not _owner or not directory or not os.path.isdir(directory):
        return
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json"):
            try:
                with open(os.path.join(directory, name), encoding="utf-8") as fh:
                    summary.merge(json.load(fh))
            except (OSError, ValueError):
                continue  # a worker killed while writing: its part is lost, the rest still counts
    import shutil

    shutil.rmtree(directory, ignore_errors=True)
