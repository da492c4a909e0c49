"""Finished item pages kept as bytes, keyed by what changes them, valid while their collection's version is.

FastAPI spends most of an item request resolving parameters; a repeated page (the same map view,
a client paging the same layer) is answered from here without that work. An entry is served only
while the collection's table version is the one it was built from, so a write is visible at once.

The key holds only what the page depends on: path, query, the scheme and host its links are built
from, HTML or JSON (negotiated from Accept, not the raw header) and gzip or not. Requests a cache
should not remember (a long query, a malformed host) pass through uncached. Entries are charged
their key, headers and body; the cache is bounded by count and by those bytes (geo.lru).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from itertools import chain

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo.catalogue import Catalogue
from geo.errors import GeoError
from geo.html import wants_html
from geo.http import first_values
from geo.http.conditional import etag_matches
from geo.lru import SizedLRU

ITEMS_PATH = re.compile(r"^/collections/([^/]+)/items(?:/[^/]+)?$")
# A host name or IPv4 address, or a bracketed IPv6 address, with an optional port (RFC 3986 3.2.2);
# at most 255 characters (RFC 1035 2.3.4 allows 253 for the name, plus the port).
HOST = re.compile(r"(?:[A-Za-z0-9._~-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
# Longer queries are answered, not remembered: a cache of one-off URLs only costs memory.
MAX_QUERY = 2048
# The Entry object, its start message dict and the key tuple (their contents are counted apart).
ENTRY_BYTES = 400
# What the start message costs beyond its headers' bytes: the dict and its list; and per header, the
# 2-tuple and the two bytes objects around its name and value. Counted by formula rather than by
# walking the message (footprint), which cost 12 us on every new page.
START_BYTES = sys.getsizeof({"type": "", "status": 0, "headers": []}) + sys.getsizeof([])
HEADER_BYTES = sys.getsizeof((b"", b"")) + 2 * sys.getsizeof(b"")


def _start_bytes(start: Message) -> int:
    """What a kept `http.response.start` message occupies (test_caching checks it against tracemalloc)."""
    headers = start.get("headers", [])
    # The names' and values' lengths summed in C (chain, map): a generator cost a page a microsecond.
    return START_BYTES + (8 + HEADER_BYTES) * len(headers) + sum(map(len, chain.from_iterable(headers)))

Key = tuple[str, bytes, str, str, str, bool, bool]


@dataclass(frozen=True, slots=True)
class Entry:
    """One finished response."""

    version: str
    start: Message
    body: bytes
    etag: str | None


def cache_key(scope: Scope, host: str | None, accept: str, accept_encoding: str) -> Key | None:
    """What the page depends on (given the request's Host, Accept and Accept-Encoding headers, "" for
    one absent), or None when the request should not be cached."""
    query: bytes = scope.get("query_string", b"")
    if len(query) > MAX_QUERY:
        return None
    if host is None:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else ""
    elif not HOST.fullmatch(host):
        return None
    # wants_html is the negotiation the page itself makes; without "text/html" in Accept it is False
    # (asked first: it spares the common API request building a Request).
    html = "text/html" in accept and wants_html(Request(scope), None)
    return (scope["path"], query, scope.get("root_path", ""), scope.get("scheme", "http"), host,
            html, "gzip" in accept_encoding)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


class ResponseCache:
    """An LRU of successful GET responses on item paths, bounded by entry count and bytes."""

    # The paths it answers (group 1: the collection), and whether a response depends on `Accept` (an item
    # page is JSON or HTML; a vector tile is always MVT): a subclass serves another path the same way.
    path: re.Pattern[str] = ITEMS_PATH
    by_accept: bool = True

    def __init__(self, app: ASGIApp, catalogue: Catalogue, max_bytes: int = 64 << 20,
                 max_entries: int = 4096, max_entry: int = 1 << 20) -> None:
        self.app = app
        self.catalogue = catalogue
        self.max_entry = max_entry
        self._entries: SizedLRU[Entry] = SizedLRU(max_entries, max_bytes)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def used_bytes(self) -> int:
        """What the entries are charged: keys, headers and bodies."""
        return self._entries.used_bytes

    def _version(self, collection_id: str) -> str | None:
        try:
            return self.catalogue.get(collection_id).table().version
        except GeoError:
            return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer from the cache, or pass through and remember a 200 response."""
        match = self.path.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        version = self._version(match.group(1))
        if version is None:
            await self.app(scope, receive, send)
            return
        # The headers this layer reads, found in one pass (as Headers.get reads them: the first of each).
        host, accept, encodings, none_match, since = map(_text, first_values(
            scope["headers"], b"host", b"accept", b"accept-encoding", b"if-none-match", b"if-modified-since"))
        key = cache_key(scope, host, (accept or "") if self.by_accept else "", encodings or "")
        if key is None:
            await self.app(scope, receive, send)
            return
        entry = self._entries.get(key)
        # If-Modified-Since needs the app's clock; the cache answers only If-None-Match itself.
        if entry is not None and entry.version == version and since is None:
            if self._conditional_hit(none_match, entry):
                await send({"type": "http.response.start", "status": 304,
                            "headers": [(b"etag", entry.etag.encode())] if entry.etag else []})
                await send({"type": "http.response.body", "body": b""})
                return
            # A copy: outer layers (CORS, HEAD) may add headers in place, for this request only.
            await send({**entry.start, "headers": list(entry.start["headers"])})
            await send({"type": "http.response.body", "body": entry.body})
            return
        if none_match is not None or since is not None:
            await self.app(scope, receive, send)  # the app answers conditionals it has not cached
            return
        await self.app(scope, receive, self._recorder(key, version, send))

    @staticmethod
    def _conditional_hit(wanted: str | None, entry: Entry) -> bool:
        return wanted is not None and entry.etag is not None and etag_matches(wanted, entry.etag)

    def _recorder(self, key: Key, version: str, send: Send) -> Send:
        start: Message | None = None
        chunks: list[bytes] = []
        size = 0

        async def record(message: Message) -> None:
            nonlocal start, size
            if message["type"] == "http.response.start":
                # Kept as it leaves this layer: outer layers may change the message in place later.
                ok = message["status"] == 200
                start = {**message, "headers": list(message.get("headers", []))} if ok else None
            elif message["type"] == "http.response.body" and start is not None:
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_entry:
                    start, chunks[:] = None, []  # too big to keep: stop holding a copy now
                else:
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        self._store(key, version, start, b"".join(chunks))
            await send(message)

        return record

    def _store(self, key: Key, version: str, start: Message, body: bytes) -> None:
        etag = _text(first_values(start.get("headers", []), b"etag")[0])
        # footprint(key), spelled out for the flat tuple a key is: the tuple and each item.
        cost = (sys.getsizeof(key) + sum(map(sys.getsizeof, key)) + _start_bytes(start)
                + sys.getsizeof(body) + sys.getsizeof(etag) + ENTRY_BYTES)
        self._entries.put(key, Entry(version, start, body, etag), cost)
