"""GeoParquet, written by geopandas with pyarrow (this GDAL has no Parquet driver)."""

from __future__ import annotations

from pathlib import Path

from geo.formats.gdal import frame
from geo.formats.selection import Selection


def write_parquet(sel: Selection, path: Path) -> None:
    """GeoParquet 1.1 with WKB geometry and a per-row bbox column, so readers can skip row groups; its CRS
    in the file's metadata (PROJJSON), x = easting or longitude as GeoParquet requires."""
    frame(sel.columns, sel.geometries, crs=sel.crs.file_crs).to_parquet(path, index=False, compression="zstd",
                                                  write_covering_bbox=True)
