"""Formats GDAL writes (through pyogrio): GeoPackage, FlatGeobuf, KML and zipped Shapefile.

Each records the CRS it is written in (the GeoPackage's spatial reference table, FlatGeobuf's header,
the Shapefile's .prj); x is the easting or longitude in each, as GDAL writes them. KML is WGS 84
longitude, latitude by its specification (OGC KML 2.2), so it is written in CRS84 only.
"""

from __future__ import annotations

import csv
import html
import re
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geo.crs import DEFAULT
from geo.formats.columns import Column
from geo.formats.selection import Selection

# What the formats record for CRS84 (longitude first, as GDAL puts it in every format).
CRS = DEFAULT.file_crs
# dBASE limits: field names of 10 bytes, text values of 254 bytes.
DBF_NAME = 10
DBF_TEXT = 254
# Shapefiles hold one geometry family per file: GEOS type ids grouped into points, lines, polygons.
_FAMILIES = {"points": (0, 4), "lines": (1, 2, 5), "polygons": (3, 6)}
# Characters XML 1.0 cannot hold, even escaped (C0 controls other than tab, newline and return).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _array(col: Column) -> Any:
    """The column as an array whose dtype keeps missing values missing."""
    if col.kind == "bool":
        return pd.array(col.values, dtype="boolean")
    if col.kind == "int":
        return pd.array(col.values, dtype="Int64")
    if col.kind == "float":
        return np.array([np.nan if v is None else v for v in col.values], dtype=np.float64)
    return np.array(col.values, dtype=object)


def frame(columns: list[Column], geometries: np.ndarray, rename: dict[str, str] | None = None,
          crs: str = CRS) -> gpd.GeoDataFrame:
    """A GeoDataFrame of the columns (nullable dtypes, so a missing value stays missing), its
    geometries (x = easting or longitude) in `crs`."""
    rename = rename or {}
    data = {rename.get(c.name, c.name): _array(c) for c in columns}
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geometries, crs=crs))


def write_gpkg(sel: Selection, path: Path) -> None:
    """A GeoPackage with one layer named after the collection (and its R-tree spatial index)."""
    data = frame(sel.columns, sel.geometries, crs=sel.crs.file_crs)
    pyogrio.write_dataframe(data, path, layer=sel.layer, driver="GPKG",
                            layer_options={"SPATIAL_INDEX": "YES"})


def write_fgb(sel: Selection, path: Path) -> None:
    """A FlatGeobuf file with its packed Hilbert R-tree index."""
    data = frame(sel.columns, sel.geometries, crs=sel.crs.file_crs)
    pyogrio.write_dataframe(data, path, layer=sel.layer, driver="FlatGeobuf",
                            layer_options={"SPATIAL_INDEX": "YES"})


def kml_text(value: str) -> str:
    """Text for a KML balloon: Google Earth renders `name`, `description` and ExtendedData values as
    HTML, so markup is escaped (shown, never run); characters XML cannot hold are dropped."""
    return html.escape(_NOT_XML.sub("", value), quote=False)


def kml_link(value: str) -> str | None:
    """A URL for a KML balloon: http(s) only (a `javascript:` or `data:` link would run when clicked)."""
    return kml_text(value) if urlsplit(value.strip()).scheme.lower() in ("http", "https") else None


def _kml_columns(columns: list[Column]) -> list[Column]:
    out: list[Column] = []
    for col in columns:
        if col.kind != "str":
            out.append(col)
            continue
        clean = kml_link if col.name.endswith("url") else kml_text
        out.append(Column(col.name, col.kind, [None if v is None else clean(v) for v in col.values]))
    return out


def write_kml(sel: Selection, path: Path) -> None:
    """KML through LIBKML: `name` and `description` become the placemark's own, the rest ExtendedData;
    every text is balloon-safe (`kml_text`, `kml_link`). Always CRS84 (the routes refuse another CRS)."""
    if not sel.crs.is_default:
        raise ValueError("KML is written in CRS84 only")
    pyogrio.write_dataframe(frame(_kml_columns(sel.columns), sel.geometries), path, layer=sel.layer,
                            driver="LIBKML")


def short_names(names: list[str], limit: int = DBF_NAME) -> dict[str, str]:
    """Unique field names of at most `limit` characters (dBASE compares them without case)."""
    taken: set[str] = set()
    out: dict[str, str] = {}
    for name in names:
        short = name[:limit]
        n = 1
        while short.lower() in taken:
            suffix = f"_{n}"
            short = name[:limit - len(suffix)] + suffix
            n += 1
        taken.add(short.lower())
        out[name] = short
    return out


def cut_text(value: str, limit: int = DBF_TEXT) -> str:
    """`value` cut to at most `limit` UTF-8 bytes on a character boundary."""
    raw = value.encode()
    return value if len(raw) <= limit else raw[:limit].decode("utf-8", "ignore")


def _dbf_columns(columns: list[Column]) -> tuple[list[Column], dict[str, int]]:
    """Columns with text cut to the dBASE limit, and how many values each column lost."""
    out: list[Column] = []
    cut: dict[str, int] = {}
    for col in columns:
        if col.kind != "str":
            out.append(col)
            continue
        values = [None if v is None else cut_text(v) for v in col.values]
        cut[col.name] = sum(1 for a, b in zip(values, col.values, strict=True) if a != b)
        out.append(Column(col.name, col.kind, values))
    return out, cut


def write_shp_zip(sel: Selection, path: Path) -> None:
    """A zip of Shapefiles (one per geometry family present), each with .prj and .cpg, plus a
    `<layer>_fields.csv` sidecar mapping the 10-character field names to the full ones."""
    folder = path.parent / f"{sel.layer}-shp"
    folder.mkdir()
    columns, cut = _dbf_columns(sel.columns)
    names = short_names([c.name for c in columns])
    geoms = sel.geometries
    type_ids = shapely.get_type_id(geoms)
    present = {fam: np.flatnonzero(np.isin(type_ids, ids)) for fam, ids in _FAMILIES.items()}
    present = {fam: rows for fam, rows in present.items() if len(rows)} or {"points": np.arange(0)}
    for family, rows in present.items():
        stem = sel.layer if len(present) == 1 else f"{sel.layer}_{family}"
        part = [Column(c.name, c.kind, [c.values[i] for i in rows]) for c in columns]
        # A Shapefile of points holds Point or MultiPoint, not both: promote when they are mixed.
        promote = family == "points" and bool((type_ids[rows] == 4).any())
        data = frame(part, geoms[rows], names, crs=sel.crs.file_crs)
        pyogrio.write_dataframe(data, folder / f"{stem}.shp", layer=stem, driver="ESRI Shapefile",
                                encoding="UTF-8", promote_to_multi=promote or None)
    with (folder / f"{sel.layer}_fields.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["shapefile_field", "full_name", "type", "values_cut_to_254_bytes"])
        for col in columns:
            writer.writerow([names[col.name], col.name, col.kind, cut.get(col.name, 0)])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in sorted(folder.iterdir()):
            archive.write(member, member.name)
