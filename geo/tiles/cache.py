"""Finished tiles kept as bytes within a memory budget (GEO_TILE_CACHE_BYTES), least recently used out
first. Keyed by the tile's ETag, which names the collection's version, the filters and z/x/y: a write
makes new keys, and the old tiles age out."""

from __future__ import annotations

from geo.lru import SizedLRU

# Most tiles kept whatever their size (empty tiles cost only their key).
MAX_ENTRIES = 100_000
# What a key (a 26-character ETag string) and its bytes object cost beyond the tile's own bytes.
KEY_BYTES = 120


class TileCache:
    """Encoded tiles by ETag, bounded by bytes; thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self._tiles: SizedLRU[bytes] = SizedLRU(MAX_ENTRIES if max_bytes > 0 else 0, max_bytes)

    def __len__(self) -> int:
        return len(self._tiles)

    @property
    def used_bytes(self) -> int:
        """What the kept tiles and their keys are charged."""
        return self._tiles.used_bytes

    def get(self, etag: str) -> bytes | None:
        """The tile with this ETag, or None."""
        return self._tiles.get(etag)

    def put(self, etag: str, tile: bytes) -> None:
        """Keep a tile (dropped at once when it alone is over the budget)."""
        self._tiles.put(etag, tile, KEY_BYTES + len(tile))
