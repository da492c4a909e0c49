"""Finished item pages kept as bytes, keyed by request and valid while their collection's version is.

FastAPI spends most of an item request resolving parameters; a repeated page (the same map view,
a client paging the same layer) is answered from here without that work. An entry is served only
while the collection's table version is the one it was built from, so a write is visible at once.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo.caching import base_etag
from geo.catalogue import Catalogue
from geo.errors import GeoError

ITEMS_PATH = re.compile(r"^/collections/([^/]+)/items(?:/[^/]+)?$")
Key = tuple[str, bytes, str, str, str, bool]


@dataclass(frozen=True)
class Entry:
    """One finished response."""

    version: str
    start: Message
    body: bytes
    etag: str | None


class ResponseCache:
    """An LRU of successful GET responses on item paths, bounded in total bytes."""

    def __init__(self, app: ASGIApp, catalogue: Catalogue, max_bytes: int = 64 << 20,
                 max_entry: int = 1 << 20) -> None:
        self.app = app
        self.catalogue = catalogue
        self.max_bytes = max_bytes
        self.max_entry = max_entry
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _version(self, collection_id: str) -> str | None:
        try:
            return self.catalogue.get(collection_id).table().version
        except GeoError:
            return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer from the cache, or pass through and remember a 200 response."""
        match = ITEMS_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        version = self._version(match.group(1))
        if version is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key: Key = (scope["path"], scope.get("query_string", b""), headers.get("host", ""),
                    scope.get("scheme", "http"), headers.get("accept", ""),
                    "gzip" in headers.get("accept-encoding", ""))
        entry = self._entries.get(key)
        # If-Modified-Since needs the app's clock; the cache answers only If-None-Match itself.
        if entry is not None and entry.version == version and "if-modified-since" not in headers:
            self._entries.move_to_end(key)
            if self._conditional_hit(headers, entry):
                await send({"type": "http.response.start", "status": 304,
                            "headers": [(b"etag", entry.etag.encode())] if entry.etag else []})
                await send({"type": "http.response.body", "body": b""})
                return
            await send(entry.start)
            await send({"type": "http.response.body", "body": entry.body})
            return
        if "if-none-match" in headers or "if-modified-since" in headers:
            await self.app(scope, receive, send)  # the app answers conditionals it has not cached
            return
        await self.app(scope, receive, self._recorder(key, version, send))

    @staticmethod
    def _conditional_hit(headers: Headers, entry: Entry) -> bool:
        wanted = headers.get("if-none-match")
        if wanted is None or entry.etag is None:
            return False
        tags = {base_etag(t.strip().removeprefix("W/")) for t in wanted.split(",")}
        return "*" in tags or base_etag(entry.etag) in tags

    def _recorder(self, key: Key, version: str, send: Send) -> Send:
        start: Message | None = None
        chunks: list[bytes] = []

        async def record(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message if message["status"] == 200 else None
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self._store(key, version, start, b"".join(chunks))
            await send(message)

        return record

    def _store(self, key: Key, version: str, start: Message, body: bytes) -> None:
        if len(body) > self.max_entry:
            return
        etag = Headers(raw=start.get("headers", [])).get("etag")
        old = self._entries.pop(key, None)
        if old is not None:
            self._size -= len(old.body)
        self._entries[key] = Entry(version, start, body, etag)
        self._size += len(body)
        while self._size > self.max_bytes and self._entries:
            _, dropped = self._entries.popitem(last=False)
            self._size -= len(dropped.body)
