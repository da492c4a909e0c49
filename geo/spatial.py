"""Where things are: the province index and the "is it in Afghanistan?" check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry
from shapely.prepared import PreparedGeometry, prep

# Outer box of Afghanistan, used only when the province layer is unavailable.
AFGHANISTAN_BBOX = (60.47, 29.36, 74.89, 38.49)

# Simplified borders lose ~1.2 % of the area and leave a sliver gap between Paktia and Paktika:
# a point this close to a province (in degrees, ~5 km) still counts as inside it.
TOLERANCE_DEG = 0.05


@dataclass(frozen=True)
class Placement:
    """The outcome of placing a geometry: inside or not, and its province code when known."""

    inside: bool
    province: str | None


class ProvinceIndex:
    """Assigns geometries to provinces with an STRtree over the province polygons."""

    def __init__(self, codes: Sequence[str], polygons: Sequence[BaseGeometry]) -> None:
        self.codes = list(codes)
        self.polygons = np.asarray(polygons, dtype=object)
        self.tree = STRtree(self.polygons)
        self._country: PreparedGeometry[BaseGeometry] = prep(
            shapely.union_all(self.polygons).buffer(TOLERANCE_DEG))

    def place(self, geom: BaseGeometry) -> Placement:
        """Say whether `geom` lies in Afghanistan and which province holds (most of) it."""
        if not self._country.covers(geom):
            return Placement(False, None)
        hits = self.tree.query(geom, predicate="intersects")
        if len(hits) == 1:
            return Placement(True, self.codes[int(hits[0])])
        if len(hits) > 1:
            return Placement(True, self.codes[self._largest_share(geom, hits)])
        # In a border gap or just outside a simplified border: the nearest province within tolerance.
        near = self.tree.query_nearest(geom, max_distance=TOLERANCE_DEG)
        return Placement(True, self.codes[int(near[0])] if len(near) else None)

    def _largest_share(self, geom: BaseGeometry, hits: np.ndarray) -> int:
        # A road or campus across a border belongs to the province that holds most of it.
        parts = shapely.intersection(geom, self.polygons[hits])
        dim = shapely.get_dimensions(geom)
        measure = shapely.area(parts) if dim == 2 else shapely.length(parts) if dim == 1 else None
        if measure is None:
            return int(hits[0])
        return int(hits[int(np.argmax(measure))])


def in_bbox(geom: BaseGeometry, bbox: tuple[float, float, float, float] = AFGHANISTAN_BBOX) -> bool:
    """Whether `geom` lies inside the box (the fallback check without provinces)."""
    return bool(shapely.box(*bbox).covers(geom))


def swapped(geom: BaseGeometry) -> BaseGeometry:
    """The geometry with x and y exchanged, to test for latitude/longitude mix-ups."""
    return shapely.transform(geom, lambda xy: xy[:, ::-1])
