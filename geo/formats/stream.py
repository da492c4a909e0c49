"""Formats written as a stream of chunks: GeoJSON, newline-delimited GeoJSON and CSV.

GeoJSON and GeoJSONSeq join the per-feature bytes the table already holds (in CRS84; in another CRS
each feature is encoded again, `Selection.encoded`). CSV is written here rather than by GDAL so it can
neutralise spreadsheet formulas cell by cell; the service writes it to a file first (`write_csv`), like
the GDAL formats, because it costs CPU per row.

A GeoJSON file in another CRS than CRS84 holds its coordinates in that CRS's axis order, as the API's
items do (OGC API - Features Part 2: asking for the CRS is the "prior arrangement" of RFC 7946 section
4), and names the CRS in the `crs` member of GeoJSON's 2008 specification, which GDAL reads and writes
(RFC 7946 dropped it; readers ignore it). GDAL reads a GeoJSON file's coordinates as x, y = longitude,
latitude whatever that member says, so a file in EPSG:4326 (latitude first) comes out swapped there:
CRS84, the default, is the one to give GIS tools. GeoJSONSeq has no place for it: the `Content-Crs`
header names it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import shapely

from geo.formats.selection import Selection

CHUNK = 1000  # features per chunk: large enough to amortise the join, small enough to stream
BOM = "\ufeff".encode()
# A text cell starting with one of these is read as a formula by spreadsheets (CSV injection);
# a leading apostrophe makes it text. Tab and carriage return are on OWASP's list too.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _geojson_head(sel: Selection) -> bytes:
    head: dict[str, object] = {"type": "FeatureCollection", "name": sel.layer}
    if not sel.crs.is_default:
        head["crs"] = {"type": "name", "properties": {"name": sel.crs.urn}}
    return orjson.dumps(head)[:-1] + b',"features":['


_GEOJSON_TAIL = b"]}\n"


def _encoded_size(sel: Selection) -> int:
    return sum([len(e) for e in sel.encoded])


def geojson_size(sel: Selection) -> int:
    """The byte length of `geojson_chunks(sel)`, known before streaming (GDAL's /vsicurl/ needs it)."""
    return len(_geojson_head(sel)) + _encoded_size(sel) + max(len(sel) - 1, 0) + len(_GEOJSON_TAIL)


def geojsonseq_size(sel: Selection) -> int:
    """The byte length of `geojsonseq_chunks(sel)`."""
    return _encoded_size(sel) + len(sel)


def geojson_chunks(sel: Selection) -> Iterator[bytes]:
    """A GeoJSON FeatureCollection, named after the layer."""
    yield _geojson_head(sel)
    enc = sel.encoded
    for start in range(0, len(enc), CHUNK):
        body = b",".join(enc[start:start + CHUNK])
        yield body if start == 0 else b"," + body
    yield _GEOJSON_TAIL


def geojsonseq_chunks(sel: Selection) -> Iterator[bytes]:
    """One GeoJSON Feature per line (newline-delimited, as GDAL's GeoJSONSeq driver reads it)."""
    enc = sel.encoded
    for start in range(0, len(enc), CHUNK):
        yield b"".join([e + b"\n" for e in enc[start:start + CHUNK]])


def neutralise(cell: str) -> str:
    """A text cell that a spreadsheet will not run as a formula."""
    return "'" + cell if cell.startswith(FORMULA_START) else cell


def csv_chunks(sel: Selection) -> Iterator[bytes]:
    """UTF-8 CSV: the attributes, `lon`/`lat` for points (`easting`/`northing` in a projected CRS), and
    the geometry as `WKT`, x first (longitude or easting, even in EPSG:4326: a CSV has no place for
    its CRS, so its column names say which is which)."""
    columns = sel.columns
    geoms = sel.geometries
    wkt = shapely.to_wkt(geoms, rounding_precision=-1) if len(geoms) else np.array([], dtype=object)
    # Points get lon/lat columns too (spreadsheets and "add delimited text" read those most easily).
    xs = np.full(len(geoms), np.nan)
    ys = np.full(len(geoms), np.nan)
    points = np.flatnonzero(shapely.get_type_id(geoms) == 0)
    coords = shapely.get_coordinates(geoms[points])
    xs[points], ys[points] = coords[:, 0], coords[:, 1]
    # Only text is neutralised: numbers (a negative budget, say) stay numbers.
    cells = [[None if v is None else neutralise(v) for v in c.values] if c.kind == "str" else c.values
             for c in columns]
    lon: list[float | None] = [None if x != x else x for x in xs.tolist()]  # x != x: NaN, no point
    lat: list[float | None] = [None if y != y else y for y in ys.tolist()]
    cells += [lon, lat, list(wkt)]
    axes = ["easting", "northing"] if sel.crs.projected else ["lon", "lat"]
    header = [neutralise(c.name) for c in columns] + [*axes, "WKT"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    yield (BOM if sel.bom else b"") + buffer.getvalue().encode()
    rows = list(zip(*cells, strict=True))
    for start in range(0, len(rows), CHUNK):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(rows[start:start + CHUNK])
        yield buffer.getvalue().encode()


def write_csv(sel: Selection, path: Path) -> None:
    """The CSV written to a file: it costs CPU like the GDAL formats, so it is built under an export
    slot and then streamed from disk, with its length known (see geo.formats.slots)."""
    with path.open("wb") as out:
        for chunk in csv_chunks(sel):
            out.write(chunk)
