"""A collection's tile from its in-memory read model: the features the filters keep (the items' own
`Collection.check`/`evaluate`, so the semantics are identical) that the spatial index finds in the tile
and its buffer, clustered at low zooms where the collection has a status, encoded as MVT."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from geo.catalogue import Collection
from geo.query.featuretable import FeatureTable, IntArray
from geo.query.params import Filters
from geo.tiles.cluster import CLUSTER_BELOW, Clusters, cluster
from geo.tiles.encode import BUFFER, encode, project
from geo.tiles.grid import EXTENT, Tile

# The properties a tile carries, when a feature has them and they are plain values: enough to label,
# colour and filter features on a map (a popup fetches the item by id).
TILE_PROPERTIES = ("name", "name_prs", "name_ps", "name_iso", "code", "kind", "status", "category",
                   "province")
# The filter column clusters count by.
STATUS = "status"


def tile_bytes(coll: Collection, table: FeatureTable, filters: Filters, tile: Tile) -> bytes:
    """The MVT of `coll` at `tile`, filtered like its items (raises InvalidInput as the items do);
    b"" when no feature is in the tile."""
    plan = coll.check(filters, table)
    found = table.select(bbox=tile.lonlat_bounds(BUFFER / EXTENT))
    if not plan.selects_all and len(found):
        keep = np.zeros(len(table), dtype=bool)
        keep[coll.evaluate(plan)] = True
        found = found[keep[found]]
    if not len(found):
        return b""
    statuses = coll.vocabularies.get(STATUS)
    features: list[dict[str, Any]] = []
    if statuses and STATUS in table.filter_columns and tile.z < CLUSTER_BELOW:
        where = _points(table)[found]
        points = ~np.isnan(where["lon"])
        px, py = tile.to_pixels(where["lon"][points], where["lat"][points])
        groups = cluster(px, py, _status_codes(table, statuses, found[points]), len(statuses))
        features += _cluster_features(groups, statuses)
        found = np.concatenate([found[points][groups.singles], found[~points]])
    features += _plain_features(table, found, table.geometries[found], tile)
    return encode(coll.id, features)


POINT = np.dtype([("lon", np.float64), ("lat", np.float64)])


def _points(table: FeatureTable) -> npt.NDArray[np.void]:
    """Each feature's point (lon, lat; NaN for a feature that is no point), kept per version and carried
    over by later versions, from the table's shapes: clustering reads coordinates from here (getting
    them from 100,000 geometries cost 9 ms a tile; this, once, about 20 ms)."""
    def compute(shapes: npt.NDArray[np.object_]) -> npt.NDArray[np.void]:
        out = np.full(len(shapes), np.nan, dtype=POINT)
        points = (shapely.get_type_id(shapes) == shapely.GeometryType.POINT) & ~shapely.is_empty(shapes)
        xy = shapely.get_coordinates(shapes[points])
        out["lon"][points], out["lat"][points] = xy[:, 0], xy[:, 1]
        return out
    return table.geometry_rows("tile points", compute)


def _status_codes(table: FeatureTable, statuses: tuple[str, ...], rows: IntArray) -> npt.NDArray[np.int8]:
    """The status of the features at `rows` as its index in `statuses` (-1: none): the table's own codes
    of its `status` filter column, renumbered (no feature is read)."""
    codes, vocabulary = table.codes(STATUS)
    index = np.full(len(vocabulary) + 1, -1, dtype=np.int8)  # the last entry: code -1, no status
    for value, code in vocabulary.items():
        if value in statuses:
            index[code] = statuses.index(value)
    return index[codes[rows]]


def _cluster_features(groups: Clusters, statuses: tuple[str, ...]) -> list[dict[str, Any]]:
    """One point feature per cluster: `cluster` true, `count`, and `count_<status>` for every status."""
    out = []
    for px, py, count, by_status in zip(groups.px.tolist(), groups.py.tolist(), groups.counts.tolist(),
                                        groups.by_status.tolist(), strict=True):
        props: dict[str, Any] = {"cluster": True, "count": count}
        props.update({f"count_{s}": n for s, n in zip(statuses, by_status, strict=True)})
        out.append({"geometry": shapely.Point(px, py), "properties": props})
    return out


def _plain_features(table: FeatureTable, rows: IntArray, shapes: Any, tile: Tile) -> list[dict[str, Any]]:
    """The features themselves, in tile pixels, with their id and TILE_PROPERTIES."""
    if not len(rows):
        return []
    pixels = project(shapes, tile)
    kept = ~shapely.is_empty(pixels)
    out = []
    for feature, shape in zip(table.decode(rows[kept]), pixels[kept], strict=True):
        props = feature.get("properties") or {}
        small = {k: v for k in TILE_PROPERTIES if isinstance(v := props.get(k), str | int | float)}
        out.append({"geometry": shape, "properties": {"id": str(feature["id"]), **small}})
    return out
