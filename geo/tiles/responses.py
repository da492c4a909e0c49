"""Finished tile responses kept as they leave the app (gzipped or not), answered before FastAPI resolves
a single parameter: a cached tile costs a dictionary lookup, not a route's dependencies.

The item pages' response cache (geo.http.responsecache) with the tile path instead of the items': the
same key (path, query, host, scheme, gzip), the same rule that an entry is served only while its
collection's version is the one it was built from (a write is visible at once), the same 304 answer to
an If-None-Match naming its ETag. Bounded by GEO_TILE_CACHE_BYTES (0: nothing kept).
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from geo.catalogue import Catalogue
from geo.http import first_values
from geo.http.responsecache import ResponseCache, cache_key

TILE_PATH = re.compile(r"^/collections/([^/]+)/tiles/WebMercatorQuad/[0-9]{1,2}/[0-9]{1,9}/[0-9]{1,9}$")
# Tiles are small (a few kB; the largest, provinces at low zooms, tens of kB): one over this is not kept.
MAX_TILE = 1 << 20
# Most tiles kept whatever their size.
MAX_ENTRIES = 100_000


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


class TileResponses(ResponseCache):
    """An LRU of successful tile responses, bounded by bytes."""

    def __init__(self, app: ASGIApp, catalogue: Catalogue, max_bytes: int) -> None:
        super().__init__(app, catalogue, max_bytes=max_bytes, max_entries=MAX_ENTRIES if max_bytes else 0,
                         max_entry=MAX_TILE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a tile from the cache, or pass through and remember a 200 response."""
        match = TILE_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        version = self._version(match.group(1))
        if version is None:  # no such collection, or it is unavailable: the app answers the problem
            await self.app(scope, receive, send)
            return
        host, encodings, none_match, since = map(_text, first_values(
            scope["headers"], b"host", b"accept-encoding", b"if-none-match", b"if-modified-since"))
        # A tile does not depend on Accept (it is always MVT): the key takes none.
        key = cache_key(scope, host, "", encodings or "")
        if key is None:
            await self.app(scope, receive, send)
            return
        entry = self._entries.get(key)
        if entry is not None and entry.version == version and since is None:
            if self._conditional_hit(none_match, entry):
                await send({"type": "http.response.start", "status": 304,
                            "headers": [(b"etag", entry.etag.encode())] if entry.etag else []})
                await send({"type": "http.response.body", "body": b""})
                return
            await send({**entry.start, "headers": list(entry.start["headers"])})
            await send({"type": "http.response.body", "body": entry.body})
            return
        if none_match is not None or since is not None:
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, self._recorder(key, version, send))
