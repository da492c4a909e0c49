"""Server-side clustering of points at low zooms: a grid over each tile, one cluster per occupied cell.

Each cluster carries how many points it holds (`count`) and how many of each status (`count_<status>`),
so a map can draw status-coloured clusters without the points. A cell holding one point gives that
point itself. Only points inside the tile proper (half-open pixel ranges, no buffer) are counted, so
every point is in exactly one tile of a zoom: the clusters of a zoom's tiles add up to the matches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geo.tiles.grid import EXTENT

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]
# Cells a tile side: 8 gives cells of 32 screen pixels on 256-pixel tiles (about supercluster's radius).
CELLS = 8
# Below this zoom the points of a clustered collection are clustered; from it on they are drawn one by
# one (zoom 14 is a tile of about 2.4 km across in Afghanistan).
CLUSTER_BELOW = 14


@dataclass(frozen=True)
class Clusters:
    """The clusters of one tile: their pixel positions, counts, counts by status (a row per cluster,
    a column per status), and the rows (of the input) of points that are alone in their cell."""

    px: FloatArray
    py: FloatArray
    counts: IntArray
    by_status: IntArray
    singles: IntArray


def cluster(px: FloatArray, py: FloatArray, status: npt.NDArray[np.int8], statuses: int) -> Clusters:
    """Cluster points given in tile pixels (`status`: each point's status code, 0..statuses-1, -1 for
    none). Points outside the tile proper are left out."""
    inside = np.flatnonzero((px >= 0) & (px < EXTENT) & (py >= 0) & (py < EXTENT))
    size = EXTENT // CELLS
    x, y = px[inside], py[inside]
    cells = (y // size).astype(np.intp) * CELLS + (x // size).astype(np.intp)
    # Counted with bincount over the CELLS^2 cells (no sort: the cells are few and known).
    counts = np.bincount(cells, minlength=CELLS * CELLS)
    codes = status[inside].astype(np.intp)
    known = codes >= 0
    by_status = np.bincount(cells[known] * statuses + codes[known],
                            minlength=CELLS * CELLS * statuses).reshape(CELLS * CELLS, statuses)
    many = np.flatnonzero(counts > 1)
    # The members' mean position: the cluster sits where its points are, not at the cell's centre.
    cx = np.bincount(cells, weights=x, minlength=CELLS * CELLS)[many] / counts[many]
    cy = np.bincount(cells, weights=y, minlength=CELLS * CELLS)[many] / counts[many]
    singles = inside[counts[cells] == 1]
    return Clusters(cx, cy, counts[many], by_status[many], singles)
