"""The tile grid: OGC's WebMercatorQuad (from morecantile), the tile's box and the projection of
lon/lat coordinates into a tile's pixel space (MVT extent, y down)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import morecantile
import numpy as np
import numpy.typing as npt

from geo.crs import EPSG
from geo.errors import NotFound

TMS_ID = "WebMercatorQuad"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
CRS_3857 = f"{EPSG}3857"
# Tile pixel space of an MVT (the format's usual 4096 units a side).
EXTENT = 4096
# The deepest zoom served: 18 is about 0.6 m a pixel, finer than any project's position.
MAX_ZOOM = 18
# WebMercatorQuad's latitude limit (the square world).
MAX_LAT = 85.0511287798066

FloatArray = npt.NDArray[np.float64]


@cache
def tms() -> morecantile.TileMatrixSet:
    """The WebMercatorQuad tile matrix set (built once: morecantile parses its JSON definition)."""
    return morecantile.tms.get(TMS_ID)


@cache
def definition() -> dict[str, Any]:
    """The tile matrix set's JSON definition (OGC Two Dimensional Tile Matrix Set 2.0)."""
    doc: dict[str, Any] = tms().model_dump(mode="json", exclude_none=True, by_alias=True)
    return doc


@dataclass(frozen=True)
class Tile:
    """One tile of WebMercatorQuad: zoom, column (x, west to east) and row (y, north to south)."""

    z: int
    x: int
    y: int

    @classmethod
    def checked(cls, z: int, row: int, col: int) -> Tile:
        """The tile, or a 404 problem naming the path field that is out of the grid (OGC API - Tiles
        /req/core/tc-error: a tile outside the tileset's limits is Not Found)."""
        if not 0 <= z <= MAX_ZOOM:
            raise NotFound.about("tileMatrix", f"{z} is not a zoom level of this tileset (0 to {MAX_ZOOM})")
        side = 1 << z
        if not 0 <= row < side:
            raise NotFound.about("tileRow", f"{row} is outside 0 to {side - 1} at zoom {z}")
        if not 0 <= col < side:
            raise NotFound.about("tileCol", f"{col} is outside 0 to {side - 1} at zoom {z}")
        return cls(z, col, row)

    def lonlat_bounds(self, buffer: float = 0.0) -> tuple[float, float, float, float]:
        """The tile's (west, south, east, north) in degrees, grown by `buffer` tiles on each side."""
        n = float(1 << self.z)
        west = (self.x - buffer) / n * 360.0 - 180.0
        east = (self.x + 1 + buffer) / n * 360.0 - 180.0
        return (max(west, -180.0), _lat(self.y + 1 + buffer, n), min(east, 180.0), _lat(self.y - buffer, n))

    def to_pixels(self, lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Lon/lat (degrees) as this tile's pixel coordinates (0..EXTENT, y down), vectorised."""
        n = float(1 << self.z)
        lat = np.clip(lat, -MAX_LAT, MAX_LAT)
        px = ((lon + 180.0) / 360.0 * n - self.x) * EXTENT
        rad = np.radians(lat)
        merc = (1.0 - np.log(np.tan(rad) + 1.0 / np.cos(rad)) / math.pi) / 2.0
        py = (merc * n - self.y) * EXTENT
        return px, py


def _lat(row: float, n: float) -> float:
    """The latitude of a row edge (fractional rows allowed), clamped to the grid."""
    row = min(max(row, 0.0), n)
    return math.degrees(math.atan(math.sinh(math.pi * (1.0 - 2.0 * row / n))))
