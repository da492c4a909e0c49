"""Whole-layer downloads: filters, media types, file names, validators and errors."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient

from geo.formats import MEDIA_TYPES
from geo.routers import downloads
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
    # Every format announces its exact length (unless compressed on the way).
    for fmt in FORMATS:
        plain = client.get(f"/layers/projects.{fmt}", params={"status": "proposed,under_construction"},
                           headers={"Accept-Encoding": "identity"})
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
    # Last-Modified shows whole seconds; a date one second later is surely after the version.
    later = format_datetime(parsedate_to_datetime(modified) + timedelta(seconds=1), usegmt=True)
    since = client.get("/layers/projects.gpkg", params={"status": "proposed"},
                       headers={"If-Modified-Since": later})
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


# --- HEAD: answered from metadata ----------------------------------------------------------------

HEAD_HEADERS = ("etag", "last-modified", "content-type", "content-disposition", "content-encoding", "vary")


def test_head_answers_like_get_without_building_the_file(client: TestClient,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    real = downloads.open_download

    def counting(fmt: Any, sel: Any) -> Any:
        built.append(fmt.extension)
        return real(fmt, sel)

    monkeypatch.setattr(downloads, "open_download", counting)
    params = {"status": "proposed,under_construction"}
    for fmt in FORMATS:
        for encoding in ("identity", "gzip"):
            url, headers = f"/layers/projects.{fmt}", {"Accept-Encoding": encoding}
            head = client.head(url, params=params, headers=headers)
            assert head.status_code == 200 and head.content == b"", fmt
            assert built == [], f"HEAD built {built}"
            get = client.get(url, params=params, headers=headers)
            assert built == [fmt] and get.status_code == 200
            built.clear()
            for name in HEAD_HEADERS:
                assert head.headers.get(name) == get.headers.get(name), (fmt, encoding, name)
            if fmt in ("geojson", "geojsonseq") and encoding == "identity":
                # Known without building: GDAL's /vsicurl/ reads the size from HEAD.
                assert head.headers["content-length"] == get.headers["content-length"]


def test_head_refuses_bad_filters_like_get(client: TestClient) -> None:
    response = client.head("/layers/projects.gpkg", params={"status": "dreaming"})
    assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json"
    assert client.head("/layers/projects.dwg").status_code == 404
    etag = client.get("/layers/projects.kml").headers["etag"]
    assert client.head("/layers/projects.kml", headers={"If-None-Match": etag}).status_code == 304


# --- KML: balloons show text, links are http(s) ----------------------------------------------------

HOSTILE_NAME = 'Kabul school <img src=x onerror="alert(1)"> & <b>bold</b>'
HOSTILE_TEXT = "<script>alert(2)</script><a href='javascript:alert(3)'>click</a>"
KML = "{http://www.opengis.net/kml/2.2}"


class _Elements(HTMLParser):
    """The HTML elements a text would create if a viewer rendered it as HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def _as_html_elements(text: str) -> list[str]:
    parser = _Elements()
    parser.feed(text)
    parser.close()
    return parser.tags


def test_kml_balloons_hold_text_and_only_http_links(client: TestClient) -> None:
    hostile = point_feature(name=HOSTILE_NAME, description=HOSTILE_TEXT, source_note=HOSTILE_TEXT,
                            source_url="https://example.org/report?a=1&b=2")
    created = client.post("/collections/projects/items", json=hostile, headers=AUTH)
    assert created.status_code == 201, created.text
    fid = created.json()["id"]
    root = ET.fromstring(client.get("/layers/projects.kml").content)  # well-formed XML
    placemarks = {p.get("id"): p for p in root.iter(f"{KML}Placemark")}
    assert len(placemarks) == 3  # the two shipped projects and this one
    mark = placemarks[fid]  # LIBKML writes the feature id as the placemark's id
    name = mark.findtext(f"{KML}name") or ""
    description = mark.findtext(f"{KML}description") or ""
    data = {d.get("name"): d.text or "" for d in mark.iter(f"{KML}SimpleData")}
    # Google Earth renders these as HTML: read that way they are plain text, no element at all ...
    for text in (name, description, *data.values()):
        assert _as_html_elements(text) == [], text
    # ... and, rendered, they show exactly what was stored.
    assert html.unescape(name) == HOSTILE_NAME and html.unescape(description) == HOSTILE_TEXT
    assert html.unescape(data["source_note"]) == HOSTILE_TEXT
    assert html.unescape(data["source_url"]) == "https://example.org/report?a=1&b=2"
    every_text = " ".join(t.text or "" for t in root.iter())
    assert "<script" not in every_text and "<img" not in every_text


def test_kml_drops_links_that_are_not_http(client: TestClient) -> None:
    from geo.formats.gdal import kml_link, kml_text

    for url in ("javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,<script>x</script>",
                "vbscript:msgbox(1)", "file:///etc/passwd", "//evil.example/x"):
        assert kml_link(url) is None, url
    assert kml_link("http://example.org/a?b=<c>") == "http://example.org/a?b=&lt;c&gt;"
    assert kml_text("a\x00b\x1bc") == "abc"  # XML cannot hold these at all
