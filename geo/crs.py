"""Coordinate reference systems by reference: OGC API - Features Part 2 (OGC 18-058r1).

Every layer is stored in CRS84 (WGS 84 longitude, latitude), the default of Part 1. A request may ask
for its geometries in another supported CRS (`crs`, /req/crs/fc-crs-action) and give its `bbox` in one
(`bbox-crs`, /req/crs/fc-bbox-crs-action); a download may be written in one.

Axis order. In the API (items, one item, GeoJSON downloads) coordinates come in the order the CRS
defines (Part 2: the `Content-Crs` header names the CRS, and the request's `crs` is the "prior
arrangement" of RFC 7946 section 4): EPSG:4326 is latitude, longitude; CRS84 longitude, latitude;
EPSG:3857 and the UTM zones easting, northing. A `bbox` with `bbox-crs` EPSG:4326 is therefore
`minLat,minLon,maxLat,maxLon`. File formats that carry CRS metadata (GeoPackage, Shapefile,
FlatGeobuf, GeoParquet) keep x = easting or longitude whatever the CRS, as GDAL and the GeoParquet
specification define; so does CSV, whose columns say which is which.

Identifiers are the URIs of Part 2 (/req/crs/crs-uri, /rec/crs/crs-format-model), matched exactly: any
other value, including the `[EPSG:4326]` safe CURIE, is not in the collection's `crs` list and so is a
400 (/req/crs/fc-crs-valid-value: the parameter's schema is `format: uri`); the message names the URI
to use. pyproj Transformers are built once per pair (they are thread-safe since pyproj 3.1).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import orjson
import shapely
from fastapi import Query
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from geo.errors import InvalidInput
from geo.query.featuretable import FeatureTable, IntArray
from geo.query.rows import compact

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"

Box = tuple[float, float, float, float]
Geometries = npt.NDArray[np.object_]

# Web Mercator is a square world of ±pi x the WGS 84 semi-major axis (EPSG:3857 area of use, which stops
# at 85.06°N/S, in metres); beyond it PROJ wraps the longitude round.
_MERCATOR_EDGE = math.pi * 6378137.0
# Where a box in a northern UTM zone means what it says: 2,000 km either side of the central meridian
# (PROJ's transverse Mercator stays within millimetres out to 3,900 km) and from the equator to 84°N.
# Afghanistan (60.5-75°E) lies within each of the three zones' reach. Further out PROJ answers inf, or
# wraps round the pole.
_UTM_DOMAIN: Box = (500_000.0 - 2_000_000.0, 0.0, 500_000.0 + 2_000_000.0, 9_330_000.0)
# Points per kilometre of a projected box's edge when its outline is carried into longitude, latitude
# (the edges of a UTM box are curves there), and the most per edge.
_DENSIFY_PER_M = 1 / 1000
_DENSIFY_MAX = 1000


@dataclass(frozen=True)
class Crs:
    """One supported CRS: its URI, what pyproj calls it, and how its coordinates are ordered."""

    uri: str
    code: str
    title: str
    # Latitude before longitude (EPSG:4326); projected CRSs are easting, northing.
    lat_first: bool = False
    projected: bool = False
    # A box in this CRS is a longitude-latitude rectangle too (Mercator: x follows the longitude only,
    # y the latitude only), so its corners alone carry it over.
    rectilinear: bool = True
    # Where a box in this CRS is meaningful, in its own units; None: longitude and latitude ranges.
    domain: Box | None = None

    @property
    def is_default(self) -> bool:
        """Whether this is CRS84, the storage and default CRS (nothing to transform)."""
        return self.uri == CRS84

    @property
    def header(self) -> str:
        """The `Content-Crs` value: the URI in angle brackets (/req/crs/ogc-crs-header-value)."""
        return f"<{self.uri}>"

    @property
    def urn(self) -> str:
        """The OGC URN, as GeoJSON's (2008) `crs` member and GDAL name it."""
        authority, _, number = self.code.partition(":")
        if self.is_default:
            return "urn:ogc:def:crs:OGC:1.3:CRS84"
        return f"urn:ogc:def:crs:{authority}::{number}"

    @property
    def file_crs(self) -> str:
        """The CRS a file format records: EPSG:4326 for CRS84 too (the formats put longitude first)."""
        return "EPSG:4326" if self.is_default else self.code

    @property
    def label(self) -> str:
        """A short name for file names and messages, e.g. `EPSG-32642`."""
        return self.code.replace(":", "-")


def _utm(zone: int) -> Crs:
    return Crs(f"{EPSG}326{zone}", f"EPSG:326{zone}", f"WGS 84 / UTM zone {zone}N", projected=True,
               rectilinear=False, domain=_UTM_DOMAIN)


SUPPORTED: dict[str, Crs] = {c.uri: c for c in (
    Crs(CRS84, "OGC:CRS84", "WGS 84 longitude, latitude (the default)"),
    Crs(f"{EPSG}4326", "EPSG:4326", "WGS 84 latitude, longitude", lat_first=True),
    Crs(f"{EPSG}3857", "EPSG:3857", "WGS 84 / Pseudo-Mercator (web maps)", projected=True,
        domain=(-_MERCATOR_EDGE, -_MERCATOR_EDGE, _MERCATOR_EDGE, _MERCATOR_EDGE)),
    _utm(41), _utm(42), _utm(43),
)}
# The `crs` list of every collection (/req/crs/fc-md-crs-list: it includes CRS84, Part 1's default).
URIS: tuple[str, ...] = tuple(SUPPORTED)
DEFAULT = SUPPORTED[CRS84]

CrsParam = Annotated[str | None, Query(
    description="The CRS of the geometries in the response, as a URI (OGC API - Features Part 2). "
                "Supported: " + ", ".join(f"`{u}`" for u in URIS) + ". EPSG:4326 comes as latitude, "
                "longitude. Default: CRS84 (longitude, latitude).",
    examples=[f"{EPSG}32642"])]
BboxCrsParam = Annotated[str | None, Query(
    alias="bbox-crs",
    description="The CRS of `bbox`, as a URI (OGC API - Features Part 2; the same list as `crs`). With "
                "EPSG:4326 the box is `minLat,minLon,maxLat,maxLon`; in a projected CRS it is "
                "`minEasting,minNorthing,maxEasting,maxNorthing` in metres. Default: CRS84.",
    examples=[f"{EPSG}3857"])]
# The response header of items and items/{id} (/req/crs/ogc-crs-header), for the OpenAPI document.
CONTENT_CRS_HEADER: dict[str, dict[str, Any]] = {"Content-Crs": {
    "description": "The CRS of the geometries in the body: a URI in angle brackets (OGC API - Features "
                   "Part 2).",
    "required": True, "schema": {"type": "string"}, "example": f"<{CRS84}>"}}


_bad = InvalidInput.about


_CODE = re.compile(r"(?:EPSG|OGC)[:/]+(?:[0-9.]+[:/]+)?([0-9A-Za-z]+)", re.IGNORECASE)


def _hint(value: str) -> str:
    """`did you mean <uri>?` for a CRS written another way (a CURIE, a URN, `EPSG:32642`, https)."""
    match = _CODE.search(value)
    if match is not None:
        wanted = match.group(1).upper()
        for crs in SUPPORTED.values():
            if crs.code.partition(":")[2].upper() == wanted:
                return f" Did you mean {crs.uri}?"
    return ""


def parse(value: str | None, field: str = "crs") -> Crs:
    """The CRS a `crs` or `bbox-crs` value names (CRS84 when not given); an unsupported one is a 400
    problem that lists the supported URIs (/req/crs/crs-exception, /req/crs/bbox-crs-exception)."""
    if value is None or value == "":
        return DEFAULT
    crs = SUPPORTED.get(value)
    if crs is None:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise _bad(field, f"{shown!r} is not a supported CRS.{_hint(value)} The supported CRSs (URIs, "
                          f"exactly as written): {', '.join(URIS)}")
    return crs


@cache
def _transformer(source: str, target: str, always_xy: bool) -> Transformer:
    # Built once per pair and kept: building one costs a database lookup (milliseconds).
    return Transformer.from_crs(source, target, always_xy=always_xy)


def _apply(transformer: Transformer) -> Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]:
    def transform(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        out = np.column_stack([x, y])
        # A third coordinate (an ellipsoidal height) is the same in each of these CRSs (one datum).
        return np.column_stack([out, coords[:, 2]]) if coords.shape[1] == 3 else out
    return transform


def to_crs(geometries: Geometries, crs: Crs, *, gis_order: bool = False) -> Geometries:
    """CRS84 geometries in `crs`, in its own axis order, or with x = easting/longitude (`gis_order`,
    for file formats). New geometries: the stored ones are shared and never changed."""
    if crs.is_default or (gis_order and not crs.projected):
        return geometries
    transformer = _transformer(DEFAULT.code, crs.code, gis_order)
    # include_z=None keeps each geometry's own dimensions (shapely 2.1; its stubs still say bool).
    keep_dimensions: Any = None
    out: Geometries = shapely.transform(geometries, _apply(transformer), include_z=keep_dimensions)
    return out


def _with_geometry(feature: Mapping[str, Any], geometry: str | None, bounds: Sequence[float]) -> bytes:
    out: dict[str, Any] = {**feature, "geometry": None if geometry is None else orjson.Fragment(geometry)}
    if "bbox" in feature and geometry is not None:
        out["bbox"] = [float(v) for v in bounds]
    return orjson.dumps(out)


def encode(features: Sequence[Mapping[str, Any]], geometries: Geometries, crs: Crs) -> list[bytes]:
    """Each feature's GeoJSON in `crs` (its geometries already parsed: `geometries`, in CRS84).

    The geometries are carried over in one pyproj call and written by GEOS (shortest round-trip
    decimals); a feature's own `bbox` is recomputed in the new CRS and axis order.
    """
    moved = to_crs(geometries, crs)
    texts = shapely.to_geojson(moved) if len(moved) else np.array([], dtype=object)
    bounds = shapely.bounds(moved) if len(moved) else np.empty((0, 4))
    return [_with_geometry(f, t, b) for f, t, b in zip(features, texts.tolist(), bounds, strict=True)]


def feature_collection(encoded: Iterable[bytes], extra: Mapping[str, Any]) -> bytes:
    """A FeatureCollection of already encoded features, with extra top-level members first."""
    head = {"type": "FeatureCollection", **extra}
    return orjson.dumps(head)[:-1] + b',"features":[' + b",".join(encoded) + b"]}"


def encoded_in(table: FeatureTable, indices: IntArray, crs: Crs) -> list[bytes]:
    """The features at `indices` as GeoJSON in `crs`, each encoded once per table version and CRS.

    The encodings are kept with the table (whose version never changes) as they are first asked for:
    a client paging through a layer in UTM pays for each feature once, and memory grows only with
    what is asked, at most one copy of the layer per CRS (a later version keeps the encodings of the
    features it did not change: FeatureTable.row_cache). Two requests that encode the same feature at
    once both write the same bytes.
    """
    if crs.is_default:
        return table.encoded_at(indices)
    kept = table.row_cache(("encoded-in", crs.uri))
    missing = [int(i) for i in indices if kept[i] is None]
    if missing:
        rows = np.array(missing, dtype=np.intp)
        for i, body in zip(missing, encode(table.decode(rows), table.geometries[rows], crs), strict=True):
            kept[i] = compact(body)  # kept: an exact-size copy, not orjson's buffer
    return [b for i in indices if (b := kept[i]) is not None]


def features_page(table: FeatureTable, indices: IntArray, extra: Mapping[str, Any],
                  properties: Sequence[str] | None, crs: Crs) -> bytes:
    """A page of items in `crs`: in CRS84 the bytes the table holds, joined (nothing is reprojected
    or re-encoded); in another CRS the features' encodings in it (`encoded_in`), or, when only some
    properties are asked for, this page's features encoded afresh."""
    if crs.is_default:
        return table.feature_collection(indices, extra, properties)
    if properties is None:
        return feature_collection(encoded_in(table, indices, crs), extra)
    features = [table.selected(int(i), properties) for i in indices]
    return feature_collection(encode(features, table.geometries[indices], crs), extra)


def feature_bytes(table: FeatureTable, index: int, crs: Crs) -> bytes:
    """One feature's GeoJSON in `crs` (in CRS84: the bytes the table holds)."""
    if crs.is_default:
        return table.encoded[index]
    return encoded_in(table, np.array([index], dtype=np.intp), crs)[0]


def parse_header(value: str | None) -> Crs:
    """The CRS a request's `Content-Crs` header declares for its body (CRS84 without one): a supported
    URI in angle brackets (/req/crs/ogc-crs-header-value), else a 400 problem naming the header
    (Part 4, /req/features/crs-other-crs B: an unsupported CRS is an error)."""
    if value is None:
        return DEFAULT
    text = value.strip()
    if not (len(text) > 2 and text.startswith("<") and text.endswith(">")):
        # `<>` too: an empty URI names no CRS (parse would read it as "not given").
        raise _bad("Content-Crs", "must be a CRS URI in angle brackets, e.g. <" + CRS84 + ">")
    return parse(text[1:-1], "Content-Crs")


def _leaves(node: Any, out: list[list[Any]]) -> None:
    """Collect the positions (arrays that start with a number) of a GeoJSON `coordinates` value."""
    if isinstance(node, list) and node:
        if isinstance(node[0], int | float) and not isinstance(node[0], bool):
            out.append(node)
        else:
            for child in node:
                _leaves(child, out)


def geometry_to_crs84(geometry: Any, crs: Crs) -> Any:
    """A request body's GeoJSON geometry, given in `crs` (in its axis order), in CRS84: a new object,
    each position's first two numbers carried over (a height is kept). Anything that is not a
    well-formed position is left as it is, for the body's validation to name; a position that cannot
    be carried over is a 400 problem."""
    if crs.is_default or not isinstance(geometry, dict):
        return geometry
    copy: dict[str, Any] = orjson.loads(orjson.dumps(geometry))
    positions: list[list[Any]] = []
    for part in [copy, *(g for g in copy.get("geometries") or [] if isinstance(g, dict))]:
        _leaves(part.get("coordinates"), positions)
    positions = [p for p in positions if len(p) >= 2 and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in p[:2])]
    if not positions:
        return copy
    xs, ys = _transformer(crs.code, DEFAULT.code, False).transform(
        [float(p[0]) for p in positions], [float(p[1]) for p in positions])
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise _bad("geometry", f"has positions that cannot be carried from {crs.code} to longitude, latitude")
    for position, x, y in zip(positions, np.atleast_1d(xs).tolist(), np.atleast_1d(ys).tolist(), strict=True):
        position[0], position[1] = x, y
    return copy


# A decimal number as a query parameter takes it (bbox, bbox-crs boxes, queryable values): ASCII digits,
# an optional sign, fraction and exponent (float() alone would also read "1_0", Arabic-Indic digits and
# "inf").
DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _numbers(raw: str, crs: Crs) -> Box:
    order = ("minLat,minLon,maxLat,maxLon" if crs.lat_first
             else "minEasting,minNorthing,maxEasting,maxNorthing" if crs.projected
             else "minLon,minLat,maxLon,maxLat")
    parts = [p.strip() for p in raw.split(",")]
    if len(parts) == 6:
        raise _bad("bbox", f"6 numbers give heights, but bbox-crs {crs.uri} has two axes: give 4 ({order})")
    if len(parts) != 4 or not all(DECIMAL.fullmatch(p) for p in parts):
        raise _bad("bbox", f"must be 4 comma-separated numbers in bbox-crs {crs.uri}: {order}")
    a, b, c, d = (float(p) for p in parts)
    if not all(math.isfinite(n) for n in (a, b, c, d)):
        raise _bad("bbox", f"must be 4 finite numbers: {order}")
    return a, b, c, d


def _edge(start: tuple[float, float], end: tuple[float, float]) -> npt.NDArray[np.float64]:
    length = math.dist(start, end)
    count = min(_DENSIFY_MAX, max(2, math.ceil(length * _DENSIFY_PER_M) + 1))
    t = np.linspace(0.0, 1.0, count)[:-1]
    return np.column_stack([start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t])


def _projected_box(box: Box, crs: Crs, field: str = "bbox") -> tuple[Box, BaseGeometry | None]:
    """A projected box as a CRS84 box and, when its edges curve there, its exact outline (errors name
    `field`)."""
    minx, miny, maxx, maxy = box
    if minx > maxx or miny > maxy:
        raise _bad(field, "the minimum must not exceed the maximum")
    lo_x, lo_y, hi_x, hi_y = crs.domain or box
    # Clipped to where the CRS is defined: a box beyond it (the whole Mercator world and more) keeps
    # its meaning, rather than wrapping round the antimeridian or the pole.
    minx, miny, maxx, maxy = max(minx, lo_x), max(miny, lo_y), min(maxx, hi_x), min(maxy, hi_y)
    if minx > maxx or miny > maxy:
        raise _bad(field, f"lies outside the area where {crs.code} is defined here: easting "
                           f"{lo_x:.0f} to {hi_x:.0f}, northing {lo_y:.0f} to {hi_y:.0f} (metres)")
    to_lonlat = _transformer(crs.code, DEFAULT.code, False)
    if crs.rectilinear:
        lons, lats = to_lonlat.transform([minx, maxx], [miny, maxy])
        return (float(lons[0]), float(lats[0]), float(lons[1]), float(lats[1])), None
    corners = [(minx, miny), (maxx, miny), (maxx, maxy), (minx, maxy), (minx, miny)]
    ring = np.concatenate([_edge(a, b) for a, b in itertools.pairwise(corners)])
    lons, lats = to_lonlat.transform(ring[:, 0], ring[:, 1])
    if not (np.isfinite(lons).all() and np.isfinite(lats).all()):
        raise _bad(field, f"reaches beyond where {crs.code} can be converted to longitude, latitude")
    outline: BaseGeometry = shapely.Polygon(np.column_stack([lons, lats]))
    if outline.is_empty or outline.area == 0:
        # A box of no width (a line or a point in metres) selects what it touches.
        outline = shapely.LineString(np.column_stack([lons, lats])) if (minx, miny) != (maxx, maxy) \
            else shapely.Point(lons[0], lats[0])
    x0, y0, x1, y1 = outline.bounds
    return (float(x0), float(y0), float(x1), float(y1)), outline


def selection_box(raw_bbox: str | None, raw_crs: str | None,
                  parse_crs84: Callable[[str | None], Box | None]) -> tuple[Box | None, BaseGeometry | None]:
    """`bbox` read in `bbox-crs` (/req/crs/fc-bbox-crs-action): the CRS84 box that selects features,
    and, for a box whose edges curve in longitude-latitude (UTM), its outline there.

    A UTM box is a curved quadrilateral in longitude, latitude: its edges are densified (a point each
    kilometre, at most 1,000 per edge), carried into CRS84, and the features are those that intersect
    that outline (the STRtree first takes the outline's bounding box). Boxes in CRS84 and EPSG:4326
    (its axes swapped) keep every rule of `parse_crs84`, which checks and returns CRS84 boxes.
    """
    crs = parse(raw_crs, "bbox-crs")
    if raw_bbox is None or raw_bbox.strip() == "":
        return None, None
    if raw_crs is None or raw_crs == "":
        # No bbox-crs: Part 1's rules, CRS84 or (6 numbers) CRS84h (/req/crs/fc-bbox-crs-default-value).
        return parse_crs84(raw_bbox), None
    numbers = _numbers(raw_bbox, crs)
    if crs.projected:
        return _projected_box(numbers, crs)
    if crs.lat_first:
        min_lat, min_lon, max_lat, max_lon = numbers
        if not (-90 <= min_lat <= 90 and -90 <= max_lat <= 90):
            raise _bad("bbox", f"bbox-crs {crs.uri} puts latitude first (minLat,minLon,maxLat,maxLon); "
                               "latitudes must lie within ±90")
        numbers = (min_lon, min_lat, max_lon, max_lat)
    # repr() writes each float so that it reads back as the same number.
    return parse_crs84(",".join(repr(v) for v in numbers)), None


def envelope_to_crs84(box: Box, crs: Crs, field: str = "filter") -> dict[str, Any]:
    """A box given in `crs` (its axis order: EPSG:4326 latitude first), such as a CQL2 BBOX literal
    under `filter-crs`, as a CRS84 GeoJSON Polygon: a rectangle, or, for a UTM box, its outline with
    the edges densified as `selection_box` does (errors name `field`)."""
    if crs.projected:
        bounds, outline = _projected_box(box, crs, field)
        shape = outline if outline is not None else shapely.box(*bounds)
    else:
        x1, y1, x2, y2 = (box[1], box[0], box[3], box[2]) if crs.lat_first else box
        shape = shapely.box(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    geometry: dict[str, Any] = orjson.loads(shapely.to_geojson(shape))
    return geometry
