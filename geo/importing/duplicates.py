"""Find a project's duplicate: the same name (case and spaces aside) and category within 100 m.

Candidates are found in a grid of 0.01 degree cells (about 1 km) keyed by name and category, so that
each row costs a few dictionary look-ups whatever the store holds, and rows of the file are added as
they pass. A geometry spanning more than MAX_CELLS cells (a long road) is kept in a per-key list that
every query of that key reads. The distance is geodesic (WGS 84, pyproj.Geod) between the two
geometries' nearest points, found in a local equirectangular frame (x scaled by the cosine of the
latitude: within 100 m its error is far below a metre); 0 when they touch.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Geod
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

WITHIN_M = 100.0
CELL_DEG = 0.01
# Enough degrees to hold WITHIN_M in longitude up to latitude 60 (Afghanistan ends at 38.5 N).
MARGIN_DEG = WITHIN_M / (111_320.0 * math.cos(math.radians(60.0)))
MAX_CELLS = 64
GEOD = Geod(ellps="WGS84")

Key = tuple[str, str]


def key_of(name: object, category: object) -> Key:
    """The duplicate key: the name case-folded with its spaces collapsed, and the category."""
    return " ".join(str(name).split()).casefold(), str(category)


@dataclass(frozen=True)
class Match:
    """The project (an id, or `row N` of the file) a new one duplicates, and how far apart they are."""

    of: str
    distance_m: float


def distance_m(a: BaseGeometry, b: BaseGeometry) -> float:
    """The geodesic distance in metres between two lon/lat geometries (0 when they intersect)."""
    if a.intersects(b):
        return 0.0
    if a.geom_type == "Point" and b.geom_type == "Point":
        (x1, y1), (x2, y2) = shapely.get_coordinates(a)[0], shapely.get_coordinates(b)[0]
    else:
        scale = math.cos(math.radians((a.centroid.y + b.centroid.y) / 2))
        factor = np.array([scale, 1.0])
        sa, sb = (shapely.transform(g, lambda xy: xy * factor) for g in (a, b))
        near = shapely.get_coordinates(list(nearest_points(sa, sb)))
        (x1, y1), (x2, y2) = near[0] / factor, near[1] / factor
    return float(GEOD.inv(float(x1), float(y1), float(x2), float(y2))[2])


def _cells(bounds: Iterable[float], margin: float = 0.0) -> list[tuple[int, int]] | None:
    minx, miny, maxx, maxy = bounds
    x0, x1 = math.floor((minx - margin) / CELL_DEG), math.floor((maxx + margin) / CELL_DEG)
    y0, y1 = math.floor((miny - margin) / CELL_DEG), math.floor((maxy + margin) / CELL_DEG)
    if (x1 - x0 + 1) * (y1 - y0 + 1) > MAX_CELLS:
        return None
    return [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


class DuplicateIndex:
    """Projects by name-and-category key and grid cell, growing as rows are accepted."""

    def __init__(self) -> None:
        self._cells: dict[tuple[Key, int, int], list[int]] = defaultdict(list)
        self._large: dict[Key, list[int]] = defaultdict(list)
        self._entries: list[tuple[str, BaseGeometry]] = []

    def add(self, key: Key, geom: BaseGeometry, label: str) -> None:
        """Remember a project (`label`: its id, or `row N`)."""
        index = len(self._entries)
        self._entries.append((label, geom))
        cells = _cells(geom.bounds)
        if cells is None:
            self._large[key].append(index)
            return
        for x, y in cells:
            self._cells[(key, x, y)].append(index)

    def find(self, key: Key, geom: BaseGeometry) -> Match | None:
        """The nearest remembered project of this key within WITHIN_M, if any."""
        candidates = set(self._large.get(key, ()))
        cells = _cells(geom.bounds, MARGIN_DEG)
        if cells is None:  # a very long geometry: compare with every project of its key
            candidates.update(i for (k, _x, _y), found in self._cells.items() if k == key for i in found)
        else:
            for x, y in cells:
                candidates.update(self._cells.get((key, x, y), ()))
        best: Match | None = None
        for index in sorted(candidates):
            label, other = self._entries[index]
            distance = distance_m(geom, other)
            if distance <= WITHIN_M and (best is None or distance < best.distance_m):
                best = Match(label, round(distance, 1))
        return best
