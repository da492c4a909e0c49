"""Encode one tile: lon/lat shapes projected to tile pixels, clipped to the tile (plus a buffer, so
lines and outlines do not stop short at its edges), simplified to the zoom's pixel, as Mapbox Vector
Tile 2.1 (mapbox-vector-tile, extent 4096)."""

from __future__ import annotations

from typing import Any

import mapbox_vector_tile
import numpy as np
import numpy.typing as npt
import shapely

from geo.tiles.grid import EXTENT, Tile

ObjectArray = npt.NDArray[np.object_]
# Pixels (of EXTENT) kept around the tile: 1/16 of its side, enough for a stroke's width.
BUFFER = EXTENT // 16
# Vertices closer than this (pixels of EXTENT; 16 are one screen pixel of a 256-pixel tile) to the
# simplified line are dropped: half a screen pixel, which a map cannot show.
SIMPLIFY = 8.0
OPTIONS = {"quantize_bounds": None, "y_coord_down": True, "extents": EXTENT}
MEDIA_TYPE = "application/vnd.mapbox-vector-tile"


def project(shapes: ObjectArray, tile: Tile) -> ObjectArray:
    """Shapes (lon/lat) in the tile's pixels, clipped to the tile and its buffer and simplified;
    empty where nothing is left."""
    def to_pixels(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        px, py = tile.to_pixels(coords[:, 0], coords[:, 1])
        return np.column_stack((px, py))
    pixels = shapely.transform(shapes, to_pixels)
    clipped = shapely.clip_by_rect(pixels, -BUFFER, -BUFFER, EXTENT + BUFFER, EXTENT + BUFFER)
    points = shapely.get_type_id(clipped) == 0
    out: ObjectArray = clipped.copy()
    if (~points).any():
        out[~points] = shapely.simplify(clipped[~points], SIMPLIFY, preserve_topology=True)
    return out


def encode(layer: str, features: list[dict[str, Any]]) -> bytes:
    """One MVT layer named `layer` of features (`geometry`: shapely in tile pixels, y down;
    `properties`: scalar values); b"" when there are none."""
    if not features:
        return b""
    data: bytes = mapbox_vector_tile.encode([{"name": layer, "features": features}], default_options=OPTIONS)
    return data
