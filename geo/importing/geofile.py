"""Read GeoJSON and GeoPackage files to import: each feature is a row, its properties the cells and its
geometry the row's location (unless the row gives lon/lat or WKT columns)."""

from __future__ import annotations

import math
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
import shapely

from geo.crs import SUPPORTED, geometry_to_crs84
from geo.errors import GeoError
from geo.importing.sources import MAX_ROWS, SourceRow, Table, check_columns, too_many_rows, unreadable

CRS84_NAMES = frozenset({"urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84",
                         "urn:ogc:def:crs:EPSG::4326", "EPSG:4326"})


def _crs_member(doc: dict[str, Any]) -> Any:
    """The CRS a (2008-style) `crs` member names, as geo.crs knows it; None for CRS84 or none given."""
    member = doc.get("crs")
    if member is None:
        return None
    name = member.get("properties", {}).get("name") if isinstance(member, dict) else None
    if not isinstance(name, str) or name in CRS84_NAMES:
        if name is None:
            raise unreadable("the `crs` member must name a CRS (RFC 7946 GeoJSON has none: leave it out)")
        return None
    for crs in SUPPORTED.values():
        if name in (crs.urn, crs.uri, crs.code):
            return crs
    raise unreadable(f"the file's CRS {name[:80]!r} is not one this service converts; save the file in "
                     "WGS 84 longitude, latitude (RFC 7946)")


def read_geojson(data: bytes) -> Table:
    """A FeatureCollection's (or one Feature's) features as rows, numbered from 1; geometries carried
    into CRS84 from the CRS a `crs` member names (as `geo export --crs` writes it)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise unreadable(f"not valid JSON: {exc}") from None
    if isinstance(doc, dict) and doc.get("type") == "Feature":
        doc = {"type": "FeatureCollection", "features": [doc]}
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or \
            not isinstance(doc.get("features"), list):
        raise unreadable("a GeoJSON FeatureCollection (or Feature) is required")
    crs = _crs_member(doc)
    features: list[Any] = doc["features"]
    if len(features) > MAX_ROWS:
        raise too_many_rows(len(features))
    names: dict[str, None] = {}
    rows = []
    for number, feature in enumerate(features, start=1):
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            rows.append(SourceRow(number, {}, problem="not a GeoJSON Feature object"))
            continue
        props = feature.get("properties")
        cells = props if isinstance(props, dict) else {}
        names.update(dict.fromkeys(str(k) for k in cells))
        geometry = feature.get("geometry")
        if crs is not None:
            try:
                geometry = geometry_to_crs84(geometry, crs)
            except GeoError as exc:
                rows.append(SourceRow(number, cells, problem=exc.detail))
                continue
        rows.append(SourceRow(number, cells, geometry))
    columns = check_columns(list(names))
    return Table("geojson", columns, rows)


def _cell(value: Any) -> Any:
    """A GeoPackage value as a plain Python one (NaN and NaT are empty cells, timestamps dates)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars
    if hasattr(value, "to_pydatetime"):
        value = None if value != value else value.to_pydatetime()  # pandas Timestamp (NaT != NaT)
    if isinstance(value, datetime | date) or not isinstance(value, bytes):
        return value
    return None  # a blob: nothing a project property holds


def read_gpkg(data: bytes) -> Table:
    """The first layer of a GeoPackage (the one named `projects` if there is one) as rows, numbered from
    1, with geometries carried into CRS84 from the layer's CRS."""
    import geopandas as gpd
    import pyogrio

    # GDAL reads a GeoPackage (SQLite) from a file: a private temporary one, removed at once.
    with tempfile.TemporaryDirectory(prefix="geo-import-") as folder:
        path = Path(folder) / "upload.gpkg"
        path.write_bytes(data)
        try:
            layers = [str(name) for name, _kind in pyogrio.list_layers(path)]
            if not layers:
                raise unreadable("the GeoPackage has no layer")
            layer = "projects" if "projects" in layers else layers[0]
            info = pyogrio.read_info(path, layer=layer)
            if int(info.get("features") or 0) > MAX_ROWS:
                raise too_many_rows(int(info["features"]))
            frame = pyogrio.read_dataframe(path, layer=layer)
        except GeoError:
            raise
        except Exception as exc:  # pyogrio raises several types (DataSourceError, DataLayerError, ...)
            raise unreadable(f"not a readable GeoPackage: {exc}") from None
    geometry_name = frame.active_geometry_name if isinstance(frame, gpd.GeoDataFrame) else None
    if geometry_name is not None and frame.crs is not None and not frame.crs.equals("EPSG:4326"):
        try:
            frame = frame.to_crs("EPSG:4326")
        except Exception as exc:  # pyproj's errors for a CRS it cannot carry over
            raise unreadable(f"the layer's CRS cannot be carried to WGS 84: {exc}") from None
    names = [str(c) for c in frame.columns if c != geometry_name]
    columns = check_columns(names)
    geometries = list(frame[geometry_name]) if geometry_name else [None] * len(frame)
    records = frame[names].to_dict("records")
    rows = []
    for number, (record, geom) in enumerate(zip(records, geometries, strict=True), start=1):
        geometry = None if geom is None or geom.is_empty else orjson.loads(shapely.to_geojson(geom))
        rows.append(SourceRow(number, {k: _cell(v) for k, v in record.items()}, geometry))
    return Table("gpkg", columns, rows)
