"""A cache bounded in bytes as well as entries, for values derived from what clients send.

Entry counts alone do not bound memory when keys are as long as a client makes them (statement
strings with inlined literals, paths): a cache of 4,096 entries of 8 KiB holds 32 MiB. This one
counts approximate bytes and starts over when either bound is reached: O(1), no bookkeeping per
hit, and a workload of repeated keys refills it at once.
"""

from __future__ import annotations

from typing import Any

ENTRY_OVERHEAD = 120  # dict slot, key tuple and small objects, roughly


class BoundedCache:
    __slots__ = ("data", "size", "max_bytes", "max_entries")

    def __init__(self, max_bytes: int, max_entries: int = 4096):
        self.data: dict[Any, Any] = {}
        self.size = 0
        self.max_bytes = max_bytes
        self.max_entries = max_entries

    def get(self, key: Any) -> Any:
        return self.data.get(key)

    def put(self, key: Any, value: Any, nbytes: int) -> Any:
        """Keep ``value`` (about ``nbytes`` with its key) unless it alone is over a quarter of
        the budget; returns ``value``."""
        nbytes += ENTRY_OVERHEAD
        if nbytes * 4 > self.max_bytes:
            return value
        if self.size + nbytes > self.max_bytes or len(self.data) >= self.max_entries:
            self.data.clear()
            self.size = 0
        self.data[key] = value
        self.size += nbytes
        return value

    def clear(self) -> None:
        self.data.clear()
        self.size = 0
