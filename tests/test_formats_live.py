"""Downloads from a real uvicorn server on loopback, opened the way GIS users open them: GDAL reads
each URL directly through /vsicurl/ (HEAD gives the size where it is known without building the
file; GDAL then reads the GET), and the CSV arrives whole."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import httpx
import pyogrio
import pytest

from tests.conftest import workspace
from tests.server import live_server

PARAMS = "status=proposed&category=transport"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Iterator[str]:
    """The service in a subprocess on temporary copies of the store and layers."""
    folder = tmp_path_factory.mktemp("live-downloads")
    settings = workspace(folder, provinces_cache)
    with live_server(settings) as url:
        yield url


def _expected_ids(base: str, params: str = PARAMS) -> list[str]:
    items = httpx.get(f"{base}/collections/projects/items?{params}&limit=1000").json()
    return [f["id"] for f in items["features"]]


@pytest.mark.parametrize("fmt", ["geojson", "geojsonseq", "kml", "gpkg", "fgb"])
def test_gdal_opens_the_download_url_directly(base: str, fmt: str) -> None:
    prefix = "GeoJSONSeq:" if fmt == "geojsonseq" else ""
    # GDAL warns about a GeoPackage whose URL does not end in .gpkg: open that one unfiltered.
    query, expected = ("", _expected_ids(base, "")) if fmt == "gpkg" else (PARAMS, _expected_ids(base))
    frame = pyogrio.read_dataframe(f"{prefix}/vsicurl/{base}/layers/projects.{fmt}?{query}".rstrip("?"))
    assert list(frame["id"]) == expected and len(expected) == (2 if fmt == "gpkg" else 1)


def test_gdal_opens_the_zipped_shapefile_url(base: str) -> None:
    source = f"/vsizip//vsicurl/{base}/layers/projects.shp.zip"
    layers = sorted(name for name, _ in pyogrio.list_layers(source))
    assert layers == ["projects_lines", "projects_points"]
    ids = [i for layer in layers for i in pyogrio.read_dataframe(source, layer=layer)["id"]]
    assert sorted(ids) == ["salang-highway-reconstruction", "salang-tunnel-2"]


def test_csv_and_parquet_arrive_whole_over_http(base: str) -> None:
    with httpx.stream("GET", f"{base}/layers/provinces.csv",
                      headers={"Accept-Encoding": "identity"}) as response:
        # Built first (it costs CPU: under an export slot), then streamed from disk with its length.
        body = response.read()
        assert int(response.headers["content-length"]) == len(body)
        text = body.decode()
    assert text.count("\r\n") == 35 and text.startswith("id,code,name")
    parquet = httpx.get(f"{base}/layers/projects.parquet?{PARAMS}").content
    assert sorted(gpd.read_parquet(io.BytesIO(parquet))["id"]) == sorted(_expected_ids(base))
