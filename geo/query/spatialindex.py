"""A spatial index that outlives writes: an STRtree over the rows one version had, plus a brute-force
check of the few rows added or changed since.

A shapely STRtree cannot be updated, so a table version does not build one per write: it reuses the
tree of the version it came from, skips the tree's rows it no longer has, and tests its own newer
rows (the "delta") one by one, vectorised. When the delta passes `rebuild_after(rows)` rows the
version builds a new tree over all its rows, on the first spatial query that finds it so large, and
the versions made from it afterwards share that tree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

from geo.query.rows import IntArray, Rows

BoolArray = npt.NDArray[np.bool_]
# A version tolerates at least this many rows outside its tree.
REBUILD_AT_LEAST = 256


def boxes(west: float, south: float, east: float, north: float) -> list[shapely.Polygon]:
    """A lon/lat box as polygons: one, or two when west > east (the box crosses the antimeridian,
    /req/core/fc-bbox-definition): west..180 and -180..east."""
    if west <= east:
        return [shapely.box(west, south, east, north)]
    return [shapely.box(west, south, 180, north), shapely.box(-180, south, east, north)]


def rebuild_after(rows: int) -> int:
    """How many rows outside the tree a version tolerates before it builds a new tree.

    Testing 1,000 points against a box costs about as much as one tree query; rebuilding at 100,000
    rows costs about 10 ms, so it happens once every 1,500 or so writes there."""
    return max(REBUILD_AT_LEAST, rows // 64)


@dataclass(frozen=True)
class SpatialIndex:
    """An STRtree over some slots of a storage, and which slots it holds."""

    tree: STRtree
    # The slot of each tree item (-1: a row that a compaction of the storage left behind).
    slots: IntArray
    # By slot: whether the tree holds that slot's geometry.
    covered: BoolArray
    # By tree item: whether its geometry is a point, which meets a box exactly when its envelope does.
    points: BoolArray

    @classmethod
    def build(cls, rows: Rows, slots: IntArray) -> SpatialIndex:
        """A tree over the rows at `slots`."""
        covered = np.zeros(rows.size, dtype=bool)
        covered[slots] = True
        geometries = rows.geometries(slots)
        points = shapely.get_type_id(geometries) == shapely.GeometryType.POINT
        return cls(STRtree(geometries), slots.copy(), covered, points)

    def renumbered(self, renumber: IntArray, size: int) -> SpatialIndex:
        """The same tree over a compacted storage (`renumber`: old slot -> new slot or -1, `size` slots)."""
        moved = np.full(len(self.slots), -1, dtype=np.intp)
        ok = self.slots >= 0
        moved[ok] = renumber[self.slots[ok]]
        covered = np.zeros(size, dtype=bool)
        covered[moved[moved >= 0]] = True
        return SpatialIndex(self.tree, moved, covered, self.points)

    def outside(self, slots: IntArray) -> IntArray:
        """The positions of `slots` (a version's rows) whose geometry the tree does not hold."""
        held = np.zeros(len(slots), dtype=bool)
        inside = slots < len(self.covered)
        held[inside] = self.covered[slots[inside]]
        return np.flatnonzero(~held)

    def items(self, box: BaseGeometry) -> IntArray:
        """The tree items whose geometry intersects `box` (a rectangle), in no particular order.

        The tree's own `predicate="intersects"` tests every candidate with GEOS (about 150 us for
        1,500 points at 100,000 rows); a point's test is its envelope's, which the tree has already
        made (about 15 us), so only the other candidates are tested."""
        candidates = self.tree.query(box)
        shapes = ~self.points[candidates]
        if shapes.any():
            others = candidates[shapes]
            keep = np.ones(len(candidates), dtype=bool)
            keep[shapes] = shapely.intersects(self.tree.geometries[others], box)
            candidates = candidates[keep]
        return candidates

    def query(self, box: BaseGeometry, position: IntArray) -> IntArray:
        """The positions (`position`: slot -> position in a version, -1 when it lacks the slot) of the
        tree's rows whose geometry intersects `box`."""
        hits = self.slots[self.items(box)]
        hits = hits[(hits >= 0) & (hits < len(position))]
        found = position[hits]
        return found[found >= 0]
