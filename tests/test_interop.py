"""GIS clients against a real server on loopback: GDAL's OAPIF driver, OWSLib, a QGIS-style edit cycle,
and schemathesis over the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyogrio
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from geo.app import create_app
from geo.settings import Settings
from tests.conftest import AUTH, KEY, point_feature, workspace
from tests.server import live_server

COLLECTIONS = ("provinces", "salang", "projects")
# Places inside Afghanistan for the extra projects that make paging over `projects` non-trivial.
PLACES = [(69.17, 34.53), (62.2, 34.35), (65.71, 31.61), (67.11, 36.71), (70.45, 34.43), (68.87, 35.95),
          (66.9, 34.82), (71.14, 36.73), (69.62, 33.34), (64.36, 31.58), (68.42, 33.55), (70.11, 34.98)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Iterator[str]:
    """The service in a subprocess on temporary copies of the store and layers, with a dozen more projects."""
    folder = tmp_path_factory.mktemp("interop")
    settings = workspace(folder, provinces_cache, api_keys=KEY)
    with live_server(settings) as base:
        for n, (lon, lat) in enumerate(PLACES):
            created = httpx.post(f"{base}/collections/projects/items", headers=AUTH,
                                 json=point_feature(lon, lat, name=f"Project {n}", category="water"))
            assert created.status_code == 201, created.text
        yield base


def _matched(base: str, collection: str) -> int:
    page = httpx.get(f"{base}/collections/{collection}/items", params={"limit": 1}).json()
    number: int = page["numberMatched"]
    return number


@pytest.mark.parametrize("page_size", [3, 10_000])
@pytest.mark.parametrize("collection", COLLECTIONS)
def test_gdal_reads_every_collection_completely(server: str, collection: str, page_size: int) -> None:
    expected = _matched(server, collection)
    # A small page makes GDAL follow `next` links (34 provinces, 14 projects): all must arrive, once.
    frame = pyogrio.read_dataframe(f"OAPIF:{server}", layer=collection, PAGE_SIZE=str(page_size))
    api_ids = {f["id"] for f in httpx.get(f"{server}/collections/{collection}/items",
                                         params={"limit": 10_000}).json()["features"]}
    assert len(frame) == expected
    assert set(frame["id"]) == api_ids and frame["id"].is_unique
    assert frame.geometry.notna().all() and not frame.geometry.is_empty.any()
    info = pyogrio.read_info(f"OAPIF:{server}", layer=collection)
    assert info["features"] in (expected, -1)  # GDAL reports numberMatched, or "unknown"


def test_gdal_lists_the_collections_as_layers(server: str) -> None:
    names = [str(name) for name, _ in pyogrio.list_layers(f"OAPIF:{server}")]
    assert names == list(COLLECTIONS)


def test_owslib_lists_collections_and_pages_items(server: str) -> None:
    from owslib.ogcapi.features import Features

    api = Features(server)
    assert [c["id"] for c in api.collections()["collections"]] == list(COLLECTIONS)
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in api.conformance()["conformsTo"]
    assert api.collection("projects")["id"] == "projects"
    seen: list[str] = []
    offset = 0
    while True:
        page = api.collection_items("provinces", limit=7, offset=offset)
        assert page["numberMatched"] == 34
        seen += [f["id"] for f in page["features"]]
        if not any(link["rel"] == "next" for link in page["links"]):
            break
        offset += 7
    assert len(seen) == 34 == len(set(seen))
    queryables = api.collection_queryables("projects")
    assert "status" in queryables["properties"]
    filtered = api.collection_items("projects", filter="category = 'water'", limit=100)
    assert filtered["numberMatched"] == len(PLACES)


def test_qgis_style_edit_cycle(server: str) -> None:
    """What QGIS's OAPIF provider does to edit: OPTIONS, POST, PATCH (attributes, then geometry), DELETE."""
    items = f"{server}/collections/projects/items"
    with httpx.Client(headers=AUTH) as http:
        allow = http.options(items).headers["allow"]
        assert "POST" in allow
        created = http.post(items, json=point_feature(name="QGIS school"),
                            headers={"Content-Type": "application/geo+json"})
        assert created.status_code == 201
        url = created.headers["location"]
        methods = {m.strip() for m in http.options(url).headers["allow"].split(",")}
        assert {"PUT", "PATCH", "DELETE"} <= methods
        patched = http.patch(url, json={"properties": {"status": "approved", "budget_usd": 50000}},
                             headers={"Content-Type": "application/merge-patch+json"})
        assert patched.status_code == 200, patched.text
        assert patched.json()["properties"]["status"] == "approved"
        moved = http.patch(url, json={"geometry": {"type": "Point", "coordinates": [62.2, 34.35]}},
                           headers={"Content-Type": "application/merge-patch+json"})
        assert moved.json()["properties"]["province"] == "AF-HER"
        fetched = http.get(url).json()
        assert fetched["properties"]["budget_usd"] == 50000
        assert [h["status"] for h in fetched["properties"]["status_history"]] == ["proposed", "approved"]
        assert http.delete(url).status_code == 204
        assert http.get(url).status_code == 410  # deleted: gone, its history kept (issue 14)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


def _operations() -> list[tuple[str, str]]:
    # The operations, listed at collection time from an app on a throwaway (never written) store path,
    # so each gets its own test id; the test itself loads the document from the running server.
    app = create_app(Settings(projects=Path("/nonexistent/projects.geojson")))
    doc: dict[str, Any] = app.openapi()
    return [(method.upper(), path) for path, item in doc["paths"].items() for method in item]


@pytest.mark.parametrize(("method", "path"), _operations())
def test_schemathesis_finds_no_error_and_no_broken_response(server: str, method: str, path: str) -> None:
    schema = schemathesis.openapi.from_url(f"{server}/api")
    operation = schema[path][method]
    calls: list[int] = []

    # A fixed, small number of examples, derandomized: the run is bounded and the same every time.
    @settings(max_examples=8, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy())
    def run(case: Any) -> None:
        # Writes carry the key, so they get past auth and exercise validation (on the temporary store).
        response = case.call_and_validate(base_url=server, headers=AUTH, checks=CHECKS)
        calls.append(response.status_code)

    run()
    assert calls, f"schemathesis generated no request for {method} {path}"
