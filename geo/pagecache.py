"""A small LRU of rendered pages: Folium takes tens of milliseconds, a repeated key is free."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from threading import Lock


class PageCache:
    """Rendered pages by key, the least recently used forgotten past `size`."""

    def __init__(self, size: int = 64) -> None:
        self._pages: OrderedDict[Hashable, str] = OrderedDict()
        self._size = size
        self._lock = Lock()

    def get(self, key: Hashable) -> str | None:
        """The cached page, or None."""
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
            return page

    def put(self, key: Hashable, page: str) -> None:
        """Remember a page."""
        with self._lock:
            self._pages[key] = page
            while len(self._pages) > self._size:
                self._pages.popitem(last=False)
