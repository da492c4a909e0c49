"""The bounded LRU that both caches of rendered output use: the response cache of finished item pages
(geo.http.responsecache) and, here, `PageCache`, the rendered `/map` pages.

Every entry is charged what it holds in memory (key, value and the objects around them), so a
client that varies a key (a long query, a new header) cannot grow the process past the budget:
the least recently used entries go first, by count and by bytes.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Hashable
from threading import Lock
from typing import Generic, TypeVar

V = TypeVar("V")

# What an OrderedDict slot (hash table entry and its linked-list node) costs beyond key and value.
SLOT_BYTES = 120


def footprint(obj: object) -> int:
    """The bytes `obj` occupies, counting the items of tuples, lists and dicts (deep for plain data)."""
    size = sys.getsizeof(obj)
    if isinstance(obj, tuple | list):
        return size + sum(footprint(item) for item in obj)
    if isinstance(obj, dict):
        return size + sum(footprint(k) + footprint(v) for k, v in obj.items())
    return size


class HashedKey:
    """A key that is hashed once, when made (a tuple is hashed again at every lookup; one holding a
    compiled filter and a collection's queryables costs microseconds each time). Equal to another
    HashedKey of an equal key; raises TypeError, as hash does, when the key cannot be hashed."""

    __slots__ = ("_hash", "key")

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self._hash = hash(key)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HashedKey):
            return NotImplemented
        return self._hash == other._hash and self.key == other.key

    def __repr__(self) -> str:
        return f"HashedKey({self.key!r})"


class SizedLRU(Generic[V]):
    """An LRU bounded by entry count and by bytes; thread-safe (pages render in worker threads)."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = Lock()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def used_bytes(self) -> int:
        """What the entries are charged in total."""
        return self._bytes

    def get(self, key: Hashable) -> V | None:
        """The value, marked as just used; None when absent."""
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: Hashable, value: V, cost: int) -> bool:
        """Remember `value`, charged `cost` bytes; False (and nothing kept) when it alone is over budget."""
        cost += SLOT_BYTES
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if cost > self.max_bytes or self.max_entries < 1:
                return False
            self._items[key] = (value, cost)
            self._bytes += cost
            while self._bytes > self.max_bytes or len(self._items) > self.max_entries:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
            return True


class PageCache:
    """Rendered pages by key (Folium takes milliseconds per page; a repeated key is free)."""

    def __init__(self, max_entries: int = 64, max_bytes: int = 8 << 20) -> None:
        self._pages: SizedLRU[str] = SizedLRU(max_entries, max_bytes)

    def __len__(self) -> int:
        return len(self._pages)

    @property
    def used_bytes(self) -> int:
        """What the cached pages and their keys are charged."""
        return self._pages.used_bytes

    def get(self, key: Hashable) -> str | None:
        """The cached page, or None."""
        return self._pages.get(key)

    def put(self, key: Hashable, page: str) -> None:
        """Remember a page (charged its key and its text)."""
        self._pages.put(key, page, footprint(key) + footprint(page))
