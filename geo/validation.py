"""Check a project feature sent by a client, field by field, and say what is wrong."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import shapely
from pydantic import ValidationError
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from geo.errors import InvalidFeature, InvalidInput
from geo.models import SERVER_FIELDS, ProjectProperties
from geo.spatial import Placement, swapped

GEOMETRY_TYPES = ("Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon")
# How many arrays deep the positions lie in each type's `coordinates`.
NESTING = {"Point": 0, "LineString": 1, "MultiPoint": 1, "Polygon": 2, "MultiLineString": 2,
           "MultiPolygon": 3}
# Elevations in metres (RFC 7946: height above the WGS84 ellipsoid). The Earth's land surface lies
# between about -430 m (Dead Sea) and 8,849 m (Everest); Afghanistan between ~250 m and 7,492 m.
Z_RANGE = (-1000.0, 9000.0)
LON_LAT = ("coordinates are WGS84 [longitude, latitude] in degrees (longitude within ±180, latitude within "
           "±90)")

Placer = Callable[[BaseGeometry], Placement]


@dataclass(frozen=True)
class CheckedFeature:
    """A feature that passed every check: clean properties, its geometry, and where it lies."""

    properties: dict[str, Any]
    geometry: dict[str, Any]
    province: str | None


def parse_json(body: bytes) -> Any:
    """Parse a request body, or say where the JSON breaks."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"The body is not valid JSON: {exc}",
                           errors=[{"field": "body", "message": str(exc)}]) from exc


_fail = InvalidFeature.about


def _positions(coordinates: Any, depth: int) -> Iterator[Any]:
    """The positions in a GeoJSON coordinates array nested `depth` arrays deep (without recursion)."""
    stack = [(coordinates, depth)]
    while stack:
        node, level = stack.pop()
        if not isinstance(node, list):
            raise _fail("geometry.coordinates", "must be nested arrays of positions for this geometry type")
        if level == 0:
            yield node
        else:
            stack.extend((child, level - 1) for child in node)


def _number(value: Any) -> bool:
    # bool is an int in Python, but `true` is not a coordinate.
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and math.isfinite(value))


def check_positions(kind: str, coordinates: Any) -> None:
    """Check every position before shapely sees it: 2 or 3 finite numbers, all alike, within range."""
    dimensions: set[int] = set()
    for position in _positions(coordinates, NESTING[kind]):
        if len(position) not in (2, 3):
            raise _fail("geometry.coordinates", "a position is [longitude, latitude] or [longitude, "
                                                f"latitude, elevation]; got {len(position)} values")
        if not all(_number(v) for v in position):
            raise _fail("geometry.coordinates", "coordinates must be finite numbers")
        if not (-180 <= position[0] <= 180 and -90 <= position[1] <= 90):
            raise _fail("geometry.coordinates", LON_LAT)
        dimensions.add(len(position))
        if len(position) == 3 and not Z_RANGE[0] <= position[2] <= Z_RANGE[1]:
            raise _fail("geometry.coordinates", f"elevation (the third value) is in metres and must lie "
                                                f"between {Z_RANGE[0]:g} and {Z_RANGE[1]:g}")
    if len(dimensions) > 1:
        raise _fail("geometry.coordinates", "all positions must have the same number of values (2 or 3)")


def check_geometry(raw: Any) -> BaseGeometry:
    """Turn a GeoJSON geometry into a valid shapely geometry, or raise with the reason."""
    if not isinstance(raw, dict):
        raise _fail("geometry", "a GeoJSON geometry object is required")
    kind = raw.get("type")
    if kind not in GEOMETRY_TYPES:
        raise _fail("geometry.type", f"must be one of {', '.join(GEOMETRY_TYPES)}, not {kind!r}")
    check_positions(kind, raw.get("coordinates"))
    try:
        geom = shapely.from_geojson(orjson.dumps({"type": kind, "coordinates": raw.get("coordinates")}))
    except (shapely.errors.GEOSException, ValueError, TypeError, orjson.JSONEncodeError) as exc:
        raise _fail("geometry.coordinates", f"cannot be read as a {kind}: {exc}") from exc
    if geom is None or geom.is_empty:
        raise _fail("geometry.coordinates", "the geometry is empty")
    coords = shapely.get_coordinates(geom, include_z=bool(shapely.has_z(geom)))
    if not np.isfinite(coords).all():
        raise _fail("geometry.coordinates", "coordinates must be finite numbers")
    xs, ys = coords[:, 0], coords[:, 1]
    if (abs(xs) > 180).any() or (abs(ys) > 90).any():
        raise _fail("geometry.coordinates", LON_LAT)
    if not geom.is_valid:
        raise _fail("geometry", f"the geometry is not valid: {explain_validity(geom)}")
    return geom


def check_feature(body: Any, place: Placer) -> CheckedFeature:
    """Validate a GeoJSON Feature for the projects layer and place it in a province."""
    if not isinstance(body, dict):
        raise _fail("body", "a GeoJSON Feature object is required")
    if body.get("type") != "Feature":
        raise _fail("type", f"must be 'Feature', not {body.get('type')!r}")
    geom = check_geometry(body.get("geometry"))
    raw_props = body.get("properties")
    if not isinstance(raw_props, dict):
        raise _fail("properties", "an object with at least name, category and status is required")
    props = {k: v for k, v in raw_props.items() if k not in SERVER_FIELDS}
    try:
        clean = ProjectProperties.model_validate(props).to_properties()
    except ValidationError as exc:
        errors = [{"field": "properties." + ".".join(str(p) for p in e["loc"]) if e["loc"]
                   else "properties", "message": e["msg"]} for e in exc.errors()]
        raise InvalidFeature("; ".join(f"{e['field']}: {e['message']}" for e in errors),
                             errors=errors) from exc
    placement = place(geom)
    if not placement.inside:
        message = "the geometry lies outside Afghanistan"
        if place(swapped(geom)).inside:
            message += ("; the coordinates look like [latitude, longitude]: GeoJSON wants "
                        "[longitude, latitude] (RFC 7946), so swap them")
        raise _fail("geometry", message)
    geometry = orjson.loads(shapely.to_geojson(geom))
    return CheckedFeature(clean, geometry, placement.province)
