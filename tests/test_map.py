"""The web map page: small, self-hosted, escaped, filterable (HTML level; tests/test_browser.py runs it)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from geo.app import create_app
from geo.catalogue import Catalogue
from geo.formats import MEDIA_TYPES
from geo.query.params import Filters
from geo.settings import Settings
from geo.store import GeoJSONFileStore
from geo.web.offline import export_map
from geo.web.page import MapOptions
from tests.conftest import AUTH, point_feature

XSS = "<script>alert(1)</script>"
LINKS = re.compile(r'(?:src|href)="([^"]+)"')


# Where a browser ends a script element's text (HTML "script data" state): at the first "</script" in
# any case followed by whitespace, "/" or ">", whatever the text around it means.
_SCRIPT_END = re.compile(r"</script[\t\n\f\r />]", re.I)


def _element_json(page: str, element_id: str) -> Any:
    start = re.search(rf'<script type="application/json" id="{element_id}">', page)
    assert start, f"the page has a <script id={element_id}>"
    end = _SCRIPT_END.search(page, start.end())
    assert end is not None
    # Text that ended the element early leaves JSON cut short: it does not parse.
    return json.loads(page[start.end():end.start()])


def _config(page: str) -> dict[str, object]:
    config: dict[str, object] = _element_json(page, "geo-config")
    return config


def _embedded(page: str) -> dict[str, dict[str, list[dict[str, object]]]]:
    data: dict[str, dict[str, list[dict[str, object]]]] = _element_json(page, "geo-data")
    return data


def _export(settings: Settings, **filters: list[str]) -> str:
    store = GeoJSONFileStore(settings.projects)
    try:
        return export_map(Catalogue(settings, store), Filters(equals=dict(filters)), MapOptions(tiles="none"))
    finally:
        store.close()


def test_map_page_is_small_and_loads_only_local_files(client: TestClient) -> None:
    response = client.get("/map")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert len(page.encode()) < 40_000  # data is fetched, not embedded
    assert '"type":"Feature"' not in page.replace(" ", "")
    links = LINKS.findall(page)
    scripts = [u for u in links if u.startswith("/static/")]
    assert len(scripts) >= 10
    for url in links:
        if url.startswith("data:"):
            continue
        assert url.startswith("/static/"), url  # no CDN: every script and style from the service
        assert client.get(url).status_code == 200, url
    # Folium lays out the three layers, the controls and the clusters.
    for marker in ('"Provinces"', '"Salang Pass"', '"Projects"', "L.control.layers", "L.markerClusterGroup",
                   "L.Control.Search", "L.Control.Measure", "L.control.fullscreen", "L.control.scale",
                   "GeoMap.start"):
        assert marker in page, marker


def test_the_data_the_map_fetches_covers_every_layer(client: TestClient) -> None:
    config = _config(client.get("/map").text)
    urls = config["urls"]
    assert isinstance(urls, dict)
    items = urls["items"]
    provinces = client.get(items.replace("{id}", "provinces"), params={"limit": config["limit"]}).json()
    assert provinces["numberReturned"] == 34
    salang = client.get(items.replace("{id}", "salang"), params={"limit": config["limit"]}).json()
    names = {f["properties"]["name"] for f in salang["features"]}
    assert {"Salang Tunnel", "Second Salang Tunnel (proposed)"} <= names
    projects = client.get(items.replace("{id}", "projects"), params={"limit": config["limit"]}).json()
    assert "Salang highway reconstruction" in {f["properties"]["name"] for f in projects["features"]}
    assert client.get(urls["stats"]).json()["total"]["count"] == projects["numberMatched"]


def test_download_links_offer_every_registered_format(client: TestClient) -> None:
    config = _config(client.get("/map").text)
    assert config["formats"] == list(MEDIA_TYPES)
    response = client.get("/layers/provinces.geojson")
    assert response.status_code == 200


def test_user_text_is_embedded_as_data(client: TestClient, settings: Settings) -> None:
    # "</script " (any case, then a space or "/") ends a script element as surely as "</script>".
    ender = "</sCrIpT /><img src=x onerror=alert(1)>"
    evil = point_feature(name=XSS, description=ender, funders=[XSS], source_note="`${alert(2)}`")
    assert client.post("/collections/projects/items", json=evil, headers=AUTH).status_code == 201
    page = _export(settings)
    assert ender in {f["properties"].get("description") for f in _embedded(page)["projects"]["features"]}
    # Cut as a browser would: the data element holds all the data (no text ended it early), and the
    # hostile text comes back intact, for the map to show as text.
    names = {f["properties"]["name"] for f in _embedded(page)["projects"]["features"]}
    assert XSS in names and len(names) == 3
    assert XSS not in page and "${alert(2)}" not in page


def test_query_text_reaches_the_map_page_as_data(client: TestClient) -> None:
    # A valid CQL2 filter is the one visitor text the page carries (in its config, passed to the API).
    hostile = "name = '</script><img src=x onerror=alert(1)>'"
    response = client.get("/map", params={"filter": hostile})
    assert response.status_code == 200
    assert "</script><img" not in response.text and "<img" not in response.text
    assert _config(response.text)["query"] == {"filter": hostile}


def test_template_literal_breakers_are_neutralised(client: TestClient, settings: Settings) -> None:
    body = point_feature(name="`+alert(3)+` ${alert(4)} \\u0060")
    assert client.post("/collections/projects/items", json=body, headers=AUTH).status_code == 201
    page = _export(settings)
    assert "`+alert(3)+`" not in page and "${alert(4)}" not in page
    assert body["properties"]["name"] in {  # type: ignore[index]
        f["properties"]["name"] for f in _embedded(page)["projects"]["features"]}


def test_query_parameters_filter_the_map(client: TestClient) -> None:
    client.post("/collections/projects/items", headers=AUTH,
                json=point_feature(name="Kandahar hospital", lon=65.71, lat=31.61, category="health",
                                   status="approved"))
    config = _config(client.get("/map", params={"category": "health", "bbox": "60,29,75,39"}).text)
    assert config["filters"] == {"category": ["health"]} and config["query"] == {"bbox": "60,29,75,39"}
    got = client.get("/collections/projects/items",
                     params={"category": "health", "bbox": "60,29,75,39"}).json()
    assert [f["properties"]["name"] for f in got["features"]] == ["Kandahar hospital"]
    config = _config(client.get("/map", params={"province": "AF-KAN", "status": "approved"}).text)
    assert config["filters"] == {"province": ["AF-KAN"], "status": ["approved"]}
    bad = client.get("/map", params={"status": "nope"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "status"


def test_exported_map_is_self_contained_with_all_layers(settings: Settings) -> None:
    page = _export(settings)
    assert "/static/" not in page and 'src="http' not in page and "<link rel=\"stylesheet\"" not in page
    data = _embedded(page)
    assert len(data["provinces"]["features"]) == 34
    assert len(data["salang"]["features"]) == 2
    assert "Salang highway reconstruction" in {f["properties"]["name"] for f in data["projects"]["features"]}
    assert "L.markerClusterGroup" in page and "GeoMap.start" in page
    only = _embedded(_export(settings, status=["proposed"]))["projects"]["features"]
    assert {f["properties"]["status"] for f in only} == {"proposed"}


def test_cli_writes_the_map(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    from geo.cli import main

    monkeypatch.setenv("GEO_PROJECTS", str(settings.projects))
    monkeypatch.setenv("GEO_LAYERS_DIR", str(settings.layers_dir))
    out = tmp_path / "out.html"
    assert main(["map", str(out), "--category", "transport"]) == 0
    assert "projects written" in capsys.readouterr().out and out.stat().st_size > 100_000
    assert main(["map", str(tmp_path / "bad.html"), "--status", "nope"]) == 2
    assert not (tmp_path / "bad.html").exists()


@pytest.mark.parametrize(("tiles", "expected"), [
    ("osm", "tile.openstreetmap.org"),
    ("https://tiles.example.org/{z}/{x}/{y}.png", "tiles.example.org"),
])
def test_tiles_setting_chooses_the_basemap(settings: Settings, tiles: str, expected: str) -> None:
    app: FastAPI = create_app(settings.model_copy(update={"map_tiles": tiles}))
    with TestClient(app) as client:
        page = client.get("/map").text
    assert expected in page and "L.Control.MiniMap" in page


def test_no_tiles_means_no_other_host(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"map_tiles": "none"}))) as client:
        page = client.get("/map").text
    assert "L.tileLayer" not in page and "openstreetmap" not in page
    assert _config(page)["basemap"] is False


def test_bad_tiles_setting_is_refused() -> None:
    with pytest.raises(ValidationError, match="map_tiles"):
        Settings(map_tiles="ftp://tiles/{z}")


def test_static_files_are_cached_and_confined(client: TestClient) -> None:
    response = client.get("/static/leaflet-1.9.3/leaflet.js")
    assert response.status_code == 200 and "immutable" in response.headers["cache-control"]
    again = client.get("/static/leaflet-1.9.3/leaflet.js",
                       headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    for bad in ("/static/leaflet-1.9.3/../../../../../etc/passwd", "/static/app/%2e%2e/%2e%2e/settings.py",
                "/static/nope/x.js", "/static/vendor/"):
        answer = client.get(bad)
        assert answer.status_code == 404, bad
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert client.get("/static/vendor/leaflet-search-2.9.7/LICENSE.txt").status_code == 200
