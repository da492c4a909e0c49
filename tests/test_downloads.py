"""Whole-layer downloads: filters, media types, file names, validators and errors."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from geo.formats import MEDIA_TYPES
from tests.conftest import AUTH, point_feature


def test_download_every_layer_as_geojson(client: TestClient) -> None:
    for layer, count in (("provinces", 34), ("salang", 2), ("projects", 2)):
        response = client.get(f"/layers/{layer}.geojson")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/geo+json"
        disposition = response.headers["content-disposition"]
        assert re.fullmatch(rf'attachment; filename="{layer}_\d{{4}}-\d\d-\d\d\.geojson"', disposition)
        doc = response.json()
        assert doc["type"] == "FeatureCollection" and len(doc["features"]) == count


def test_download_takes_the_item_filters(client: TestClient) -> None:
    response = client.get("/layers/projects.geojson", params={"status": "proposed"})
    assert [f["id"] for f in response.json()["features"]] == ["salang-tunnel-2"]
    assert "status-proposed" in response.headers["content-disposition"]
    response = client.get("/layers/provinces.geojson", params={"bbox": "69.1,34.5,69.2,34.55"})
    assert [f["id"] for f in response.json()["features"]] == ["AF-KAB"]


def test_unknown_layer_or_format(client: TestClient) -> None:
    assert client.get("/layers/roads.geojson").status_code == 404
    missing = client.get("/layers/projects.dwg")
    assert missing.status_code == 404 and "geojson" in missing.json()["detail"]


# --- every format: headers, validators, errors --------------------------------------------------

FORMATS = ("geojson", "geojsonseq", "csv", "kml", "gpkg", "fgb", "parquet", "shp.zip")


def test_each_collection_lists_every_format_as_an_enclosure(client: TestClient) -> None:
    doc = client.get("/collections/projects").json()
    enclosures = {link["href"].rsplit("/", 1)[1]: link["type"] for link in doc["links"]
                  if link["rel"] == "enclosure"}
    assert enclosures == {f"projects.{fmt}": MEDIA_TYPES[fmt] for fmt in FORMATS}
    for name, media in enclosures.items():
        response = client.get(f"/layers/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(media)


def test_media_types_and_file_names(client: TestClient) -> None:
    expected = {"geojson": "application/geo+json", "geojsonseq": "application/geo+json-seq",
                "csv": "text/csv; charset=utf-8; header=present",
                "kml": "application/vnd.google-earth.kml+xml", "gpkg": "application/geopackage+sqlite3",
                "fgb": "application/vnd.flatgeobuf", "parquet": "application/vnd.apache.parquet",
                "shp.zip": "application/zip"}
    for fmt, media in expected.items():
        response = client.get(f"/layers/projects.{fmt}", params={"status": "proposed,planned",
                                                                 "bbox": "60,29,75,39"})
        assert response.headers["content-type"] == media
        assert re.fullmatch(rf'attachment; filename="projects_status-proposed\+planned_bbox_'
                            rf'\d{{4}}-\d\d-\d\d\.{re.escape(fmt)}"', response.headers["content-disposition"])
    # Every format but the row-by-row CSV announces its exact length (unless compressed on the way).
    for fmt in FORMATS:
        plain = client.get(f"/layers/projects.{fmt}", params={"status": "proposed,under_construction"},
                           headers={"Accept-Encoding": "identity"})
        if fmt == "csv":
            assert "content-length" not in plain.headers
        else:
            assert int(plain.headers["content-length"]) == len(plain.content) > 0, fmt


def test_a_file_name_stays_ascii_whatever_the_filter(client: TestClient) -> None:
    response = client.get("/layers/provinces.geojson", params={"province": "کابل"})
    assert response.status_code == 200 and response.json()["features"] == []
    assert response.headers["content-disposition"].isascii()


def test_etag_and_last_modified_give_304_until_the_layer_changes(client: TestClient) -> None:
    first = client.get("/layers/projects.gpkg", params={"status": "proposed"})
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert etag.startswith('"') and modified.endswith("GMT")
    again = client.get("/layers/projects.gpkg", params={"status": "proposed"},
                       headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    since = client.get("/layers/projects.gpkg", params={"status": "proposed"},
                       headers={"If-Modified-Since": modified})
    assert since.status_code == 304
    # Another filter, format or option is another representation.
    variants = [("gpkg", {"status": "planned"}), ("fgb", {"status": "proposed"}),
                ("csv", {"status": "proposed"}), ("csv", {"status": "proposed", "bom": "true"})]
    others = {client.get(f"/layers/projects.{fmt}", params=p).headers["etag"] for fmt, p in variants}
    assert etag not in others and len(others) == 4
    # A write makes a new version: the old validators no longer match.
    assert client.post("/collections/projects/items", json=point_feature(), headers=AUTH).status_code == 201
    changed = client.get("/layers/projects.gpkg", params={"status": "proposed"},
                         headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_bad_download_parameters_are_problems_naming_the_field(client: TestClient) -> None:
    cases = [("/layers/projects.csv", {"status": "dreaming"}, "status"),
             ("/layers/projects.gpkg", {"bbox": "1,2,3"}, "bbox"),
             ("/layers/projects.kml", {"datetime": "yesterday"}, "datetime"),
             ("/layers/provinces.fgb", {"status": "open"}, "status"),
             ("/layers/projects.csv", {"bom": "maybe"}, "bom")]
    for path, params, field in cases:
        response = client.get(path, params=params)
        assert response.status_code == 400, (path, params)
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert {"type", "title", "status", "detail"} <= set(problem)
        assert field in [e["field"] for e in problem["errors"]], problem


def test_whole_layer_columns_are_reused_until_a_write(client: TestClient) -> None:
    first = client.get("/layers/projects.csv").text
    table = client.app.state.catalogue.get("projects").table()  # type: ignore[attr-defined]
    assert "download-columns" in table._derived  # flattened once for this version
    assert client.get("/layers/projects.csv").text == first
    created = client.post("/collections/projects/items", headers=AUTH,
                          json=point_feature(name="Clinic after the cache", category="health")).json()
    after = client.get("/layers/projects.csv").text
    assert created["id"] in after and "Clinic after the cache" in after and created["id"] not in first
