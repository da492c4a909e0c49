"""Formats written as a stream of chunks: GeoJSON, newline-delimited GeoJSON and CSV.

GeoJSON and GeoJSONSeq join the per-feature bytes the table already holds. CSV is written here rather
than by GDAL so it can neutralise spreadsheet formulas cell by cell; the service writes it to a file
first (`write_csv`), like the GDAL formats, because it costs CPU per row.
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
    return orjson.dumps({"type": "FeatureCollection", "name": sel.layer})[:-1] + b',"features":['


_GEOJSON_TAIL = b"]}\n"


def _encoded_size(sel: Selection) -> int:
    enc = sel.table.encoded
    return sum([len(enc[i]) for i in sel.indices])


def geojson_size(sel: Selection) -> int:
    """The byte length of `geojson_chunks(sel)`, known before streaming (GDAL's /vsicurl/ needs it)."""
    return len(_geojson_head(sel)) + _encoded_size(sel) + max(len(sel) - 1, 0) + len(_GEOJSON_TAIL)


def geojsonseq_size(sel: Selection) -> int:
    """The byte length of `geojsonseq_chunks(sel)`."""
    return _encoded_size(sel) + len(sel)


def geojson_chunks(sel: Selection) -> Iterator[bytes]:
    """A GeoJSON FeatureCollection, named after the layer."""
    yield _geojson_head(sel)
    enc, idx = sel.table.encoded, sel.indices
    for start in range(0, len(idx), CHUNK):
        body = b",".join([enc[i] for i in idx[start:start + CHUNK]])
        yield body if start == 0 else b"," + body
    yield _GEOJSON_TAIL


def geojsonseq_chunks(sel: Selection) -> Iterator[bytes]:
    """One GeoJSON Feature per line (newline-delimited, as GDAL's GeoJSONSeq driver reads it)."""
    enc, idx = sel.table.encoded, sel.indices
    for start in range(0, len(idx), CHUNK):
        yield b"".join([enc[i] + b"\n" for i in idx[start:start + CHUNK]])


def neutralise(cell: str) -> str:
    """A text cell that a spreadsheet will not run as a formula."""
    return "'" + cell if cell.startswith(FORMULA_START) else cell


def csv_chunks(sel: Selection) -> Iterator[bytes]:
    """UTF-8 CSV: the attributes, `lon`/`lat` for points, and the geometry as `WKT`."""
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
    header = [neutralise(c.name) for c in columns] + ["lon", "lat", "WKT"]
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
