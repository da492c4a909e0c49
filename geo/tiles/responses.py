"""Finished tile responses kept as they leave the app (gzipped or not), answered before FastAPI resolves
a single parameter: a cached tile costs a dictionary lookup, not a route's dependencies.

The item pages' response cache (geo.http.responsecache) with the tile path instead of the items': the
same key (path, query, host, scheme, gzip), the same rule that an entry is served only while its
collection's version is the one it was built from (a write is visible at once), the same 304 answer to
an If-None-Match naming its ETag. Bounded by GEO_TILE_CACHE_BYTES (0: nothing kept).
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp

from geo.catalogue import Catalogue
from geo.http.responsecache import ResponseCache
from geo.tiles.grid import TMS_ID

TILE_PATH = re.compile(rf"^/collections/([^/]+)/tiles/{TMS_ID}/[0-9]{{1,2}}/[0-9]{{1,9}}/[0-9]{{1,9}}$")
# Tiles are small (a few kB; the largest, provinces at low zooms, tens of kB): one over this is not kept.
MAX_TILE = 1 << 20
# Most tiles kept whatever their size.
MAX_ENTRIES = 100_000


class TileResponses(ResponseCache):
    """An LRU of successful tile responses, bounded by bytes: the items' cache on the tile path, with a key
    that takes no `Accept` (a tile is always MVT)."""

    path = TILE_PATH
    by_accept = False

    def __init__(self, app: ASGIApp, catalogue: Catalogue, max_bytes: int) -> None:
        super().__init__(app, catalogue, max_bytes=max_bytes, max_entries=MAX_ENTRIES if max_bytes else 0,
                         max_entry=MAX_TILE)
