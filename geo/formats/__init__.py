"""Download formats: the registry (extension -> media type and writer) and how to produce a file.

A format either streams chunks (GeoJSON and GeoJSONSeq, joined from bytes the table holds: cheap, and big
layers never sit whole in memory) or writes a file that is then streamed from disk (CSV, the GDAL
formats and GeoParquet: these cost CPU, so the service builds only a few at once, geo.formats.slots).

Every format can be written in any supported CRS (`crs`, geo.crs) except KML, which OGC KML 2.2 fixes
to WGS 84 longitude, latitude: asking KML for another CRS is a 400 (OGC API - Features Part 2,
/per/crs/fc-crs-action, names KML as its example), never a file that silently ignores the request.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from geo.crs import CRS84, Crs
from geo.errors import InvalidInput
from geo.formats.gdal import write_fgb, write_gpkg, write_kml, write_shp_zip
from geo.formats.parquet import write_parquet
from geo.formats.selection import Selection
from geo.formats.stream import geojson_chunks, geojson_size, geojsonseq_chunks, geojsonseq_size, write_csv
from geo.responses import GEOJSON

__all__ = ["FORMATS", "MEDIA_TYPES", "Format", "Selection", "format_of", "open_download", "write_to"]

# Read size for files streamed from disk: 128 kB is where Starlette's gzip moves compression off the
# event loop into a worker thread.
BLOCK = 128 * 1024


@dataclass(frozen=True)
class Format:
    """A download format: its file extension, media type, and a streamer or a file writer."""

    extension: str
    media_type: str
    title: str
    stream: Callable[[Selection], Iterator[bytes]] | None = None
    write: Callable[[Selection, Path], None] | None = None
    # The length of a stream, where it is cheap to know first (clients show progress, GDAL's
    # /vsicurl/ refuses a body of unknown size).
    size: Callable[[Selection], int] | None = None
    # The format's specification fixes its CRS to CRS84 (KML).
    crs84_only: bool = False

    def costs(self, crs: Crs) -> bool:
        """Whether building it in `crs` costs CPU per feature (not only joining stored bytes): a written
        file, or features carried into another CRS than the stored one (then encoded again)."""
        return self.write is not None or not crs.is_default

    def check_crs(self, crs: Crs) -> None:
        """A 400 problem when this format cannot be written in `crs`."""
        if self.crs84_only and not crs.is_default:
            message = (f"{self.title} is always WGS 84 longitude, latitude ({CRS84}) by its specification; "
                       "leave out crs, or choose another format for " + crs.uri)
            raise InvalidInput(f"crs: {message}", errors=[{"field": "crs", "message": message}])


FORMATS: dict[str, Format] = {f.extension: f for f in (
    Format("geojson", GEOJSON, "GeoJSON", stream=geojson_chunks, size=geojson_size),
    Format("geojsonseq", "application/geo+json-seq", "GeoJSON, one feature per line",
           stream=geojsonseq_chunks, size=geojsonseq_size),
    Format("csv", "text/csv; charset=utf-8; header=present", "CSV (WKT, lon/lat)", write=write_csv),
    Format("kml", "application/vnd.google-earth.kml+xml", "KML", write=write_kml, crs84_only=True),
    Format("gpkg", "application/geopackage+sqlite3", "GeoPackage", write=write_gpkg),
    Format("fgb", "application/vnd.flatgeobuf", "FlatGeobuf", write=write_fgb),
    Format("parquet", "application/vnd.apache.parquet", "GeoParquet", write=write_parquet),
    Format("shp.zip", "application/zip", "Shapefile (zip)", write=write_shp_zip),
)}

MEDIA_TYPES: dict[str, str] = {ext: f.media_type for ext, f in FORMATS.items()}


def format_of(filename: str) -> Format | None:
    """The format a file name asks for by its extension (the longest that matches), or None."""
    lowered = filename.lower()
    matches = [f for ext, f in FORMATS.items() if lowered.endswith("." + ext)]
    return max(matches, key=lambda f: len(f.extension), default=None)


def _blocks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while block := handle.read(BLOCK):
            yield block


def _written(fmt: Format, sel: Selection, folder: Path) -> Path:
    if fmt.write is None:
        raise ValueError(f"{fmt.extension} is streamed, not written")
    path = folder / f"{sel.layer}.{fmt.extension}"
    fmt.write(sel, path)
    return path


def open_download(fmt: Format, sel: Selection) -> tuple[Iterator[bytes], int | None]:
    """The download's bytes as an iterator of chunks, and its size when known in advance."""
    if fmt.stream is not None:
        return fmt.stream(sel), None if fmt.size is None else fmt.size(sel)
    folder = Path(tempfile.mkdtemp(prefix="geo-download-"))
    try:
        path = _written(fmt, sel, folder)
        handle = path.open("rb")
        size = os.fstat(handle.fileno()).st_size
    finally:
        # The open handle keeps the file readable after its folder is gone; nothing is left behind
        # even when the client hangs up halfway.
        shutil.rmtree(folder, ignore_errors=True)
    return _blocks(handle), size


def write_to(fmt: Format, sel: Selection, dest: Path) -> None:
    """Write the download to `dest`, atomically (a temporary file beside it, then a rename)."""
    folder = Path(tempfile.mkdtemp(prefix=".geo-export-", dir=dest.parent))
    try:
        if fmt.stream is not None:
            path = folder / dest.name
            with path.open("wb") as out:
                for chunk in fmt.stream(sel):
                    out.write(chunk)
        else:
            path = _written(fmt, sel, folder)
        os.replace(path, dest)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
