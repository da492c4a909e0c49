"""What each format promises beyond the round trip: CSV safety and columns, the Shapefile's sidecars,
the spatial indexes, GeoParquet metadata, and `geo export` writing the same files."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient

from geo.cli import main
from geo.settings import Settings
from tests.test_formats_roundtrip import EXTRA_PROJECTS, FORMATS, SCHOOL_PS, read_back, rich_client

__all__ = ["rich_client"]  # the fixture, imported for use here


def _csv_rows(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


def test_csv_has_a_bom_only_when_asked(client: TestClient) -> None:
    plain = client.get("/layers/salang.csv").content
    marked = client.get("/layers/salang.csv", params={"bom": "true"}).content
    assert not plain.startswith(b"\xef\xbb\xbf") and marked == b"\xef\xbb\xbf" + plain
    # bom is a CSV option: other formats ignore it and keep one ETag.
    assert (client.get("/layers/salang.gpkg", params={"bom": "true"}).headers["etag"]
            == client.get("/layers/salang.gpkg").headers["etag"])


def test_csv_neutralises_formulas_in_text_cells(rich_client: TestClient) -> None:
    rows = {r["name"]: r for r in _csv_rows(rich_client.get("/layers/projects.csv").content)}
    school = rows["Girls' secondary school"]
    assert school["description"] == "'" + EXTRA_PROJECTS[0]["properties"]["description"]
    assert {"'-Mazar ring road", "'+Kandahar clinics"} <= set(rows)
    assert rows["Herat housing"]["description"].startswith("'@SUM(1,2)")
    # Numbers are not text: they are written as they are.
    assert school["budget_usd"] == "250000.5"


def test_csv_has_wkt_and_lon_lat_for_points(rich_client: TestClient) -> None:
    rows = {r["name_ps"]: r for r in _csv_rows(rich_client.get("/layers/projects.csv").content)}
    school = rows[SCHOOL_PS]
    assert (float(school["lon"]), float(school["lat"])) == (69.1723, 34.5281)
    assert shapely.from_wkt(school["WKT"]).equals(shapely.Point(69.1723, 34.5281))
    road = rows["د مزار کړۍ سړک"]
    assert road["lon"] == road["lat"] == ""
    assert shapely.from_wkt(road["WKT"]).geom_type == "LineString"


def test_shapefile_zip_has_one_shapefile_per_family_with_prj_cpg_and_field_names(
        rich_client: TestClient) -> None:
    content = rich_client.get("/layers/projects.shp.zip").content
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        names = set(archive.namelist())
        for family in ("points", "lines", "polygons"):
            assert {f"projects_{family}.{ext}" for ext in ("shp", "shx", "dbf", "prj", "cpg")} <= names
            assert archive.read(f"projects_{family}.cpg").decode().strip() == "UTF-8"
            assert "WGS" in archive.read(f"projects_{family}.prj").decode()
        sidecar = list(csv.DictReader(io.TextIOWrapper(archive.open("projects_fields.csv"), "utf-8")))
    mapping = {r["full_name"]: r["shapefile_field"] for r in sidecar}
    assert mapping["province_name"] == "province_n" and mapping["status_history"] == "status_his"
    assert all(len(short) <= 10 for short in mapping.values())
    assert len({short.lower() for short in mapping.values()}) == len(mapping)
    cut = {r["full_name"]: int(r["values_cut_to_254_bytes"]) for r in sidecar}
    assert cut["description"] >= 1 and cut["name"] == 0


def test_shapefile_short_names_stay_unique() -> None:
    from geo.formats.gdal import short_names

    names = short_names(["description_en", "description_ps", "Description_x", "id"])
    assert names == {"description_en": "descriptio", "description_ps": "descript_1",
                     "Description_x": "Descript_2", "id": "id"}


def test_geopackage_opens_in_gdal_with_its_spatial_index(rich_client: TestClient, tmp_path: Path) -> None:
    path = tmp_path / "projects.gpkg"
    path.write_bytes(rich_client.get("/layers/projects.gpkg").content)
    info = pyogrio.read_info(path, layer="projects")
    assert info["capabilities"]["fast_spatial_filter"] and info["features"] == 6
    with sqlite3.connect(path) as db:
        extensions = db.execute("SELECT table_name, extension_name FROM gpkg_extensions").fetchall()
        assert ("projects", "gpkg_rtree_index") in extensions
        assert db.execute("SELECT count(*) FROM rtree_projects_geom").fetchone() == (6,)
    # A bbox read goes through the index and finds just the Herat campus.
    found = pyogrio.read_dataframe(path, bbox=(62.0, 34.0, 62.5, 34.5))
    assert list(found["name"]) == ["Herat housing"]


def test_flatgeobuf_has_its_spatial_index(rich_client: TestClient, tmp_path: Path) -> None:
    path = tmp_path / "projects.fgb"
    path.write_bytes(rich_client.get("/layers/projects.fgb").content)
    assert pyogrio.read_info(path)["capabilities"]["fast_spatial_filter"]


def test_geoparquet_metadata_and_pyarrow_reading(rich_client: TestClient, tmp_path: Path) -> None:
    path = tmp_path / "projects.parquet"
    path.write_bytes(rich_client.get("/layers/projects.parquet").content)
    table = pq.read_table(path)
    geo = json.loads(table.schema.metadata[b"geo"])
    assert geo["primary_column"] == "geometry" and geo["version"].startswith("1.")
    column = geo["columns"]["geometry"]
    assert column["encoding"] == "WKB" and "covering" in column
    assert set(column["geometry_types"]) >= {"Point", "LineString", "Polygon", "MultiPoint"}
    assert SCHOOL_PS in table.column("name_ps").to_pylist()
    assert table.column("id").to_pylist() == [f["id"] for f in
                                              rich_client.get("/layers/projects.geojson").json()["features"]]


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The environment `geo` reads, pointing at the test's temporary store and layers."""
    monkeypatch.setenv("GEO_PROJECTS", str(settings.projects))
    monkeypatch.setenv("GEO_LAYERS_DIR", str(settings.layers_dir))
    monkeypatch.setenv("GEO_API_KEYS", settings.api_keys or "")
    return settings


@pytest.mark.parametrize("fmt", FORMATS)
def test_geo_export_writes_the_same_file_as_the_download(rich_client: TestClient, cli_env: Settings,
                                                         tmp_path: Path, fmt: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    dest = tmp_path / f"out.{fmt}"
    assert main(["export", "projects", str(dest), "--status", "proposed,planned", "--province",
                 "AF-KAB,AF-HER"]) == 0
    assert "2 features written" in capsys.readouterr().out
    exported, _ = read_back(fmt, dest.read_bytes(), tmp_path / "a")
    served = rich_client.get(f"/layers/projects.{fmt}", params={"status": "proposed,planned",
                                                                "province": "AF-KAB,AF-HER"})
    downloaded, _ = read_back(fmt, served.content, tmp_path / "b")
    assert exported == downloaded and len(exported) == 2


def test_geo_export_refuses_bad_names_and_filters(cli_env: Settings, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert main(["export", "projects", str(out / "out.dwg")]) == 2
    assert "geojson" in capsys.readouterr().err
    assert main(["export", "projects", str(out / "out.csv"), "--status", "dreaming"]) == 2
    assert "dreaming" in capsys.readouterr().err
    assert main(["export", "roads", str(out / "out.csv")]) == 2
    assert list(out.iterdir()) == [], "nothing is written on failure"


def test_kml_never_links_what_is_not_http(cli_env: Settings, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    # A store edited by hand (the API accepts only http(s) URLs) holding a script link and markup.
    doc = json.loads(cli_env.projects.read_text(encoding="utf-8"))
    doc["features"][0]["properties"].update(source_url="javascript:alert(1)", name="<b>Salang</b>")
    doc["features"][1]["properties"]["source_url"] = "https://example.org/a?b=1&c=2"
    cli_env.projects.write_text(json.dumps(doc), encoding="utf-8")
    dest = tmp_path / "out.kml"
    assert main(["export", "projects", str(dest)]) == 0, capsys.readouterr().err
    ns = "{http://www.opengis.net/kml/2.2}"
    marks = list(ElementTree.parse(dest).getroot().iter(f"{ns}Placemark"))
    urls = {m.get("id"): {d.get("name"): d.text for d in m.iter(f"{ns}SimpleData")}.get("source_url")
            for m in marks}
    assert urls == {doc["features"][0]["id"]: None,
                    doc["features"][1]["id"]: "https://example.org/a?b=1&amp;c=2"}
    names = [m.findtext(f"{ns}name") for m in marks]
    assert "&lt;b&gt;Salang&lt;/b&gt;" in names  # shown as typed, not bold
