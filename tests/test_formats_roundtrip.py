"""Every download format, read back by its reference reader, holds the same features and values.

Downloads go through HTTP; files are read back with pyogrio (GDAL) or, for GeoParquet, geopandas and
pyarrow. The expected values are taken from the items API (the JSON the service already serves), so
a format that drops, renames, retypes or mangles a value fails here.
"""

from __future__ import annotations

import csv
import html
import io
import math
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import orjson
import pandas as pd
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient

from tests.conftest import AUTH

ITEMS = "/collections/projects/items"
FORMATS = ("geojson", "geojsonseq", "csv", "kml", "gpkg", "fgb", "parquet", "shp.zip")
LAYERS = ("provinces", "salang", "projects")
# Formats that keep values as text only: numbers are compared by value, not by type.
TEXT_FORMATS = ("csv", "kml")
# Columns a reader adds on its own (KML's styling fields, the CSV's geometry helpers).
READER_EXTRAS = {"Name", "timestamp", "begin", "end", "altitudeMode", "tessellate", "extrude",
                 "visibility", "drawOrder", "icon", "lon", "lat", "WKT", "geometry"}

SCHOOL_PRS = "لیسه دخترانه کابل"
SCHOOL_PS = "د کابل د نجونو ښوونځی"
# Projects that exercise every corner: Dari and Pashto names, lists, long text, formula-like text,
# and all the geometry kinds (so the Shapefile must split into families).
EXTRA_PROJECTS: list[dict[str, Any]] = [
    {"type": "Feature", "geometry": {"type": "Point", "coordinates": [69.1723, 34.5281]},
     "properties": {"name": "Girls' secondary school", "name_prs": SCHOOL_PRS, "name_ps": SCHOOL_PS,
                    "category": "school", "status": "proposed", "budget_usd": 250000.5,
                    "funders": ["UNICEF", "وزارت معارف"], "start_date": "2026-03-01",
                    "description": '=HYPERLINK("http://evil.example","click")'}},
    {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[62.19, 34.34], [62.21, 34.34], [62.21, 34.36], [62.19, 34.36], [62.19, 34.34]]]},
     "properties": {"name": "Herat housing", "name_prs": "مسکن هرات", "category": "housing",
                    "status": "planned", "budget_usd": 1000000.0, "description": "@SUM(1,2) " + "مسکن " * 70,
                    "start_date": "2027-01-01", "end_date": "2029-12-31"}},
    {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[67.05, 36.70], [67.15, 36.72]]},
     "properties": {"name": "-Mazar ring road", "name_ps": "د مزار کړۍ سړک", "category": "transport",
                    "status": "approved", "funders": ["ADB"],
                    "description": "Lanes <2 & >1, \"fast\"; <b>not bold</b>"}},
    {"type": "Feature", "geometry": {"type": "MultiPoint", "coordinates": [[65.70, 31.61], [65.72, 31.62]]},
     "properties": {"name": "+Kandahar clinics", "category": "health", "status": "under_construction",
                    "start_date": "2024-05-01"}},
]

# One filter of each kind, with values that select a strict, non-empty subset of the projects.
FILTERS: dict[str, dict[str, str]] = {
    "status": {"status": "proposed,planned"},
    "category": {"category": "transport"},
    "province": {"province": "AF-KAB,AF-HER"},
    "bbox": {"bbox": "60,30,66,35"},
    "datetime": {"datetime": "2025-01-01/2026-12-31"},
    "cql2": {"filter": "budget_usd > 100000 AND name_prs IS NOT NULL"},
}
# What each filter selects among the two shipped projects (read from projects.geojson: the second tunnel is
# proposed, undated, 1.6 billion, with a Dari name; the highway is under construction since 2023-07-12) and
# the four above, worked out by hand, so that a download is never compared only with the same selection.
TUNNEL2, HIGHWAY = "Second Salang Tunnel", "Salang highway reconstruction"
SCHOOL, HOUSING, RING, CLINICS = ("Girls' secondary school", "Herat housing", "-Mazar ring road",
                                  "+Kandahar clinics")
SELECTED: dict[str, set[str]] = {
    "status": {TUNNEL2, SCHOOL, HOUSING},
    "category": {TUNNEL2, HIGHWAY, RING},
    "province": {SCHOOL, HOUSING},
    "bbox": {HOUSING, CLINICS},
    # Undated projects match every datetime (OGC /req/core/fc-time-response C); housing starts in 2027.
    "datetime": {TUNNEL2, HIGHWAY, SCHOOL, RING, CLINICS},
    "cql2": {TUNNEL2, SCHOOL, HOUSING},
}


@pytest.fixture
def rich_client(client: TestClient) -> TestClient:
    """The client, with the extra projects added through the API."""
    for feature in EXTRA_PROJECTS:
        assert client.post(ITEMS, json=feature, headers=AUTH).status_code == 201
    return client


def expected_features(client: TestClient, collection: str, params: dict[str, str] | None = None,
                      ) -> list[dict[str, Any]]:
    """The features the items API returns for these filters (the reference for every download)."""
    response = client.get(f"/collections/{collection}/items", params={**(params or {}), "limit": "10000"})
    assert response.status_code == 200
    features: list[dict[str, Any]] = response.json()["features"]
    return features


def canon(value: Any, loose: bool) -> Any:
    """A value in a form that compares equal across formats: None for missing, floats for numbers,
    JSON text for nested values; with `loose`, numbers written as text are read as numbers."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    text = str(value)
    if loose:
        if text == "":
            return None
        try:
            return float(text)
        except ValueError:
            pass
    return text


def cut_254(text: str) -> str:
    """What a dBASE text field of 254 bytes keeps of a UTF-8 string (dBASE pads with spaces, so a
    trailing space cannot be told from padding)."""
    return text.encode()[:254].decode("utf-8", "ignore").rstrip(" ")


def neutralised(text: str) -> str:
    """What the CSV must hold for a text cell (a leading apostrophe defuses spreadsheet formulas)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def expected_rows(features: list[dict[str, Any]], fmt: str) -> dict[str, dict[str, Any]]:
    """Each feature's expected attribute values in `fmt`, by id."""
    rows: dict[str, dict[str, Any]] = {}
    for feature in features:
        row: dict[str, Any] = {}
        for key, value in feature["properties"].items():
            if fmt == "shp.zip" and isinstance(value, list | dict):
                value = cut_254(orjson.dumps(value).decode())
            elif fmt == "shp.zip" and isinstance(value, str):
                value = cut_254(value)
            elif fmt == "csv" and isinstance(value, str):
                value = neutralised(value)
            elif fmt == "csv" and isinstance(value, list | dict):
                value = neutralised(orjson.dumps(value).decode())
            elif fmt == "kml" and isinstance(value, str | list | dict):
                # KML balloons are HTML: text is escaped so that markup shows instead of running.
                value = html.escape(value if isinstance(value, str) else orjson.dumps(value).decode(),
                                    quote=False)
            row[key] = canon(value, fmt in TEXT_FORMATS)
        rows[feature["id"]] = row
    return rows


def _frames(fmt: str, path: Path) -> Iterator[gpd.GeoDataFrame]:
    """The file's layers as GeoDataFrames, read by the format's reference reader."""
    if fmt == "parquet":
        yield gpd.read_parquet(path)
        return
    if fmt == "shp.zip":
        with zipfile.ZipFile(path) as archive:
            sidecars = [n for n in archive.namelist() if n.endswith("_fields.csv")]
            assert len(sidecars) == 1, archive.namelist()
            mapping = {r["shapefile_field"]: r["full_name"]
                       for r in csv.DictReader(io.TextIOWrapper(archive.open(sidecars[0]), "utf-8"))}
        for layer, _kind in pyogrio.list_layers(f"/vsizip/{path}"):
            frame = pyogrio.read_dataframe(f"/vsizip/{path}", layer=layer, datetime_as_string=True)
            assert all(len(c.encode()) <= 10 for c in frame.columns if c != "geometry")
            yield frame.rename(columns=mapping)
        return
    if fmt == "geojsonseq" and path.stat().st_size == 0:
        return  # an empty sequence is an empty file, which GDAL does not open
    source = f"GeoJSONSeq:{path}" if fmt == "geojsonseq" else path
    frame = pyogrio.read_dataframe(source, datetime_as_string=True)
    if fmt == "kml":
        # LIBKML reads the placemark's <name> back as `Name`.
        frame = frame.drop(columns=["name"], errors="ignore").rename(columns={"Name": "name"})
    yield frame


def read_back(fmt: str, content: bytes, folder: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """A download's rows (attribute -> canonical value) and geometries, both by feature id."""
    path = folder / f"download.{fmt}"
    path.write_bytes(content)
    rows: dict[str, dict[str, Any]] = {}
    geoms: dict[str, Any] = {}
    for frame in _frames(fmt, path):
        records = frame.drop(columns="geometry").to_dict("records")
        for record, geom in zip(records, frame.geometry, strict=True):
            fid = str(record.pop("id"))
            assert fid not in rows, f"{fid} appears twice"
            rows[fid] = {k: canon(v, fmt in TEXT_FORMATS) for k, v in record.items()
                         if k not in READER_EXTRAS}
            geoms[fid] = geom
    return rows, geoms


def assert_same(fmt: str, features: list[dict[str, Any]], content: bytes, folder: Path) -> None:
    """The download holds exactly these features: ids in order, every value, every geometry."""
    rows, geoms = read_back(fmt, content, folder)
    ids = [f["id"] for f in features]
    # Order is kept except where the format decides it: FlatGeobuf sorts by its Hilbert R-tree, and
    # a zipped Shapefile holds one file per geometry family.
    if fmt not in ("fgb", "shp.zip"):
        assert list(rows) == ids
    assert sorted(rows) == sorted(ids)
    expected = expected_rows(features, fmt)
    for fid, row in rows.items():
        want = expected[fid]
        # A column other features have is null here; every present value must match exactly.
        assert {k: v for k, v in row.items() if v is not None} == {
            k: v for k, v in want.items() if v is not None}, (fmt, fid)
    for feature in features:
        want_geom = shapely.geometry.shape(feature["geometry"])
        got = shapely.force_2d(geoms[feature["id"]])
        assert got.equals_exact(want_geom, tolerance=1e-9) or got.equals(want_geom), (fmt, feature["id"])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("layer", LAYERS)
def test_every_layer_round_trips_in_every_format(rich_client: TestClient, tmp_path: Path, layer: str,
                                                 fmt: str) -> None:
    features = expected_features(rich_client, layer)
    response = rich_client.get(f"/layers/{layer}.{fmt}")
    assert response.status_code == 200
    assert_same(fmt, features, response.content, tmp_path)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", FILTERS)
def test_every_filter_round_trips_in_every_format(rich_client: TestClient, tmp_path: Path, kind: str,
                                                  fmt: str) -> None:
    params = FILTERS[kind]
    features = expected_features(rich_client, "projects", params)
    assert {f["properties"]["name"] for f in features} == SELECTED[kind]
    response = rich_client.get(f"/layers/projects.{fmt}", params=params)
    assert response.status_code == 200
    assert_same(fmt, features, response.content, tmp_path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_dari_and_pashto_survive_every_format(rich_client: TestClient, tmp_path: Path, fmt: str) -> None:
    response = rich_client.get(f"/layers/projects.{fmt}", params={"category": "school"})
    rows, _ = read_back(fmt, response.content, tmp_path)
    (row,) = rows.values()
    assert row["name_prs"] == SCHOOL_PRS and row["name_ps"] == SCHOOL_PS
    salang, _ = read_back(fmt, rich_client.get(f"/layers/salang.{fmt}").content, tmp_path)
    assert salang["salang-tunnel"]["name_prs"] == "تونل سالنگ"


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_filter_that_matches_nothing_gives_an_empty_file(client: TestClient, tmp_path: Path,
                                                           fmt: str) -> None:
    response = client.get(f"/layers/projects.{fmt}", params={"status": "cancelled"})
    assert response.status_code == 200
    rows, _ = read_back(fmt, response.content, tmp_path)
    assert rows == {}
