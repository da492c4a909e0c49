"""OGC API - Features Part 1 (core, geojson, html, oas30) over HTTP, plus caching, gzip and CORS."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import urlparse

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from openapi_spec_validator.versions.shortcuts import get_spec_version

from geo.app import create_app
from geo.formats import MEDIA_TYPES
from geo.settings import Settings
from tests.conftest import AUTH, point_feature

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
ITEMS = "/collections/projects/items"


def _rels(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for link in doc["links"]:
        out.setdefault(link["rel"], []).append(link)
    return out


def _path(href: str) -> str:
    parsed = urlparse(href)
    return parsed.path + (f"?{parsed.query}" if parsed.query else "")


def test_landing_links_resolve(client: TestClient) -> None:
    rels = _rels(client.get("/").json())
    assert rels["service-desc"][0]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    for rel, media in (("service-desc", "application/vnd.oai.openapi+json"), ("service-doc", "text/html"),
                       ("conformance", "application/json"), ("data", "application/json")):
        response = client.get(_path(rels[rel][0]["href"]))
        assert response.status_code == 200 and response.headers["content-type"].startswith(media), rel


def test_conformance_lists_the_classes_tested_here(client: TestClient) -> None:
    """The Part 1 classes and Part 3 queryables-query-parameters, written out (tests/test_conformance.py
    holds the whole list and a test per requirement)."""
    classes = client.get("/conformance").json()["conformsTo"]
    assert len(classes) == len(set(classes))
    spec = "http://www.opengis.net/spec/"
    part1 = {f"{spec}ogcapi-features-1/1.0/conf/{c}" for c in ("core", "geojson", "html", "oas30")}
    assert part1 <= set(classes)
    assert f"{spec}ogcapi-features-3/1.0/conf/queryables-query-parameters" in classes
    page = client.get("/conformance?f=html").text
    assert all(f"<code>{c}</code>" in page for c in classes)


def test_openapi_document_is_valid_openapi_30(client: TestClient) -> None:
    doc = client.get("/api").json()
    assert doc["openapi"] == "3.0.3"
    assert get_spec_version(doc).major == "3" and get_spec_version(doc).minor == "0"
    validate(doc)  # raises on any 3.0 schema violation
    params = {p["name"]: p for p in doc["paths"]["/collections/{collection_id}/items"]["get"]["parameters"]}
    assert params["limit"]["schema"]["default"] == 10 and params["limit"]["schema"]["maximum"] == 10_000
    assert {"bbox", "datetime", "filter", "filter-lang", "sortby", "properties", "ids"} <= set(params)
    # Part 3 queryables-query-parameters A: the queryables as parameters, each with its queryable's schema
    # (projects: start_date is a date, budget_usd a number; provinces: code; salang: kind, width_m).
    assert params["start_date"]["schema"] == {"type": "string", "format": "date"}
    assert params["budget_usd"]["schema"] == {"type": "number"}
    assert params["width_m"]["schema"] == {"type": "integer"} and params["width_m"]["example"] == 6
    assert {"code", "kind", "geometry_quality", "id"} <= set(params) and "funders" not in params
    assert {"get", "post", "options"} <= set(doc["paths"]["/collections/{collection_id}/items"])
    one = doc["paths"]["/collections/{collection_id}/items/{feature_id}"]
    assert {"get", "put", "patch", "delete", "options"} <= set(one)
    assert client.get("/api.html").status_code == 200


def test_limit_bounds_come_from_settings(settings: Settings) -> None:
    settings = settings.model_copy(update={"default_limit": 3, "max_limit": 5})
    with TestClient(create_app(settings)) as client:
        schema = {p["name"]: p for p in client.get("/api").json()["paths"][
            "/collections/{collection_id}/items"]["get"]["parameters"]}["limit"]["schema"]
        assert (schema["default"], schema["maximum"]) == (3, 5)
        assert client.get("/collections/provinces/items").json()["numberReturned"] == 3
        page = client.get("/collections/provinces/items?limit=100").json()
        assert page["numberReturned"] == 5 and "limit=5" in _rels(page)["next"][0]["href"]


def test_collection_metadata(client: TestClient) -> None:
    client.post(ITEMS, headers=AUTH, json=point_feature(start_date="2026-01-01", end_date="2029-12-31"))
    doc = client.get("/collections/projects").json()
    assert doc["itemType"] == "feature" and CRS84 in doc["crs"] and doc["storageCrs"] == CRS84
    assert doc["extent"]["spatial"]["crs"] == CRS84
    # /req/core/fc-md-extent: the Salang reconstruction (from 2023-07-12, no end) is still running, so
    # the extent has no end; the second tunnel has no dates and does not count.
    assert doc["extent"]["temporal"]["interval"] == [["2023-07-12T00:00:00Z", None]]
    ended = client.patch(f"{ITEMS}/salang-highway-reconstruction", headers=AUTH,
                         json={"properties": {"end_date": "2025-12-31"}})
    assert ended.status_code == 200, ended.text
    # Now every dated project has an end: the last day, 2029-12-31, counts whole.
    assert client.get("/collections/projects").json()["extent"]["temporal"]["interval"] == [
        ["2023-07-12T00:00:00Z", "2029-12-31T23:59:59Z"]]
    rels = _rels(doc)
    assert rels["items"][0]["type"] == "application/geo+json"
    queryables = rels["http://www.opengis.net/def/rel/ogc/1.0/queryables"][0]
    assert client.get(_path(queryables["href"])).headers["content-type"] == "application/schema+json"
    enclosures = {ln["type"]: ln["href"] for ln in rels["enclosure"]}
    assert set(enclosures) == set(MEDIA_TYPES.values())
    assert client.get(_path(enclosures["application/geo+json"])).status_code == 200
    assert "temporal" not in client.get("/collections/provinces").json()["extent"]


def test_content_crs_on_items_and_item(client: TestClient) -> None:
    assert client.get("/collections/salang/items").headers["content-crs"] == f"<{CRS84}>"
    assert client.get("/collections/salang/items/salang-tunnel").headers["content-crs"] == f"<{CRS84}>"


def test_paging_is_stable_while_others_add_projects(client: TestClient) -> None:
    for n in range(5):
        client.post(ITEMS, headers=AUTH, json=point_feature(name=f"Before {n}"))
    before = [f["id"] for f in client.get(ITEMS, params={"limit": 100}).json()["features"]]
    seen: list[str] = []
    url: str | None = f"{ITEMS}?limit=2"
    n = 0
    while url:
        page = client.get(url).json()
        seen += [f["id"] for f in page["features"]]
        # Someone else adds a project between every two pages.
        client.post(ITEMS, headers=AUTH, json=point_feature(name=f"During {n}"))
        n += 1
        nxt = _rels(page).get("next")
        url = _path(nxt[0]["href"]) if nxt else None
    assert len(seen) == len(set(seen)), "a feature came twice"
    assert seen[:len(before)] == before, "a feature that existed before paging was missed or moved"


def test_html_views(client: TestClient) -> None:
    client.post(ITEMS, headers=AUTH, json=point_feature(name="<script>alert(1)</script> school"))
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    for path in ("/", "/collections", "/collections/projects", ITEMS,
                 "/collections/salang/items/salang-tunnel"):
        response = client.get(path, headers=browser)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html"), path
        assert "<h1>" in response.text
    items = client.get(f"{ITEMS}?f=html&limit=1").text
    assert "<table>" in items and ">next</a>" in items
    listing = client.get(f"{ITEMS}?f=html").text
    assert "&lt;script&gt;" in listing and "<script>alert" not in listing
    assert "Salang" in client.get("/collections?f=html").text
    assert client.get("/collections", headers={"Accept": "application/json"}).json()["collections"]
    assert client.get("/collections?f=xml").status_code == 400


def test_etag_and_304_on_collections_and_items(client: TestClient) -> None:
    for path in ("/collections", "/collections/projects", ITEMS, "/collections/salang/items/salang-tunnel",
                 "/collections/projects/queryables"):
        first = client.get(path)
        etag = first.headers["etag"]
        again = client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag, path
        assert client.get(path, headers={"If-None-Match": f"W/{etag}"}).status_code == 304
        assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    # The same URL as HTML is another representation with another tag.
    assert client.get(f"{ITEMS}?f=html").headers["etag"] != client.get(ITEMS).headers["etag"]


def test_validators_change_when_projects_change(client: TestClient) -> None:
    page = client.get(ITEMS)
    # Last-Modified is in whole seconds and the version's own time is finer: a date one second later is
    # surely not older than the version (RFC 9110 13.1.3), so it gets a 304.
    later = parsedate_to_datetime(page.headers["last-modified"]) + timedelta(seconds=1)
    since = {"If-Modified-Since": format_datetime(later, usegmt=True)}
    assert client.get(ITEMS, headers=since).status_code == 304
    collection_etag = client.get("/collections/projects").headers["etag"]
    salang_etag = client.get("/collections/salang/items/salang-tunnel").headers["etag"]
    client.post(ITEMS, headers=AUTH, json=point_feature())
    assert client.get(ITEMS, headers={"If-None-Match": page.headers["etag"]}).status_code == 200
    assert client.get("/collections/projects").headers["etag"] != collection_etag
    assert client.get("/collections/salang/items/salang-tunnel").headers["etag"] == salang_etag


def test_gzip_when_asked(client: TestClient) -> None:
    plain = client.get("/collections/provinces/items?limit=34", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    raw = client.get("/collections/provinces/items?limit=34", headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.json() == plain.json()
    # The bytes on the wire are the compressed ones: far fewer than the plain body.
    assert int(raw.headers["content-length"]) < len(plain.content) / 2


@pytest.fixture
def cors_client(settings: Settings) -> Any:
    settings = settings.model_copy(update={"cors_origins": "https://editor.example.org"})
    with TestClient(create_app(settings)) as client:
        yield client


def test_cors_reads_from_any_origin(cors_client: TestClient) -> None:
    response = cors_client.get(ITEMS, headers={"Origin": "https://anyone.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "ETag" in response.headers["access-control-expose-headers"]
    preflight = cors_client.options(ITEMS, headers={"Origin": "https://anyone.example",
                                                    "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"


def test_cors_writes_only_from_configured_origins(cors_client: TestClient) -> None:
    stranger = cors_client.options(ITEMS, headers={"Origin": "https://evil.example",
                                                   "Access-Control-Request-Method": "POST",
                                                   "Access-Control-Request-Headers": "authorization"})
    assert stranger.status_code == 403 and "access-control-allow-origin" not in stranger.headers
    assert stranger.json()["errors"][0]["field"] == "Origin"
    editor = {"Origin": "https://editor.example.org"}
    asks = {"Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization,if-match"}
    preflight = cors_client.options(ITEMS, headers={**editor, **asks})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://editor.example.org"
    assert "PATCH" in preflight.headers["access-control-allow-methods"]
    assert "If-Match" in preflight.headers["access-control-allow-headers"]
    created = cors_client.post(ITEMS, headers={**AUTH, **editor}, json=point_feature())
    assert created.status_code == 201
    assert created.headers["access-control-allow-origin"] == "https://editor.example.org"
    assert "Location" in created.headers["access-control-expose-headers"]
    other = cors_client.post(ITEMS, headers={**AUTH, "Origin": "https://evil.example"}, json=point_feature())
    assert "access-control-allow-origin" not in other.headers
