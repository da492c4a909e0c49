"""The web map in a real headless Chromium (Debian's), driven by Playwright, against a real server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from geo.app import create_app
from tests.browser import chromium, recording_page
from tests.conftest import AUTH, KEY, ROOT, point_feature, workspace
from tests.server import live_server

ARTIFACTS = ROOT / "test-artifacts"
XSS = "<script>alert(1)</script>"
READY = ("() => window.GeoMap && GeoMap.state && GeoMap.state.ready && GeoMap.state.layers "
         "&& GeoMap.state.errors.length === 0")


@dataclass(frozen=True)
class Site:
    """The live server's base URL and an offline map exported by `geo map` from the same store."""

    url: str
    export: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Iterator[Site]:
    """A real uvicorn server on loopback, no basemap tiles, with three more projects (one with a
    hostile name: tests/test_xss.py tests that; here it only has to render like the others)."""
    from geo.cli import main

    folder = tmp_path_factory.mktemp("browser")
    settings = workspace(folder, provinces_cache, api_keys=KEY, map_tiles="none")
    with TestClient(create_app(settings)) as client:
        for body in (point_feature(name=XSS, description=XSS, funders=[XSS]),
                     point_feature(name="Kandahar regional hospital", lon=65.71, lat=31.61, category="health",
                                   status="approved", name_prs="شفاخانه کندهار", budget_usd=2_500_000),
                     point_feature(name="Herat water network", lon=62.2, lat=34.35, category="water",
                                   status="planned")):
            assert client.post("/collections/projects/items", json=body, headers=AUTH).status_code == 201
    # `geo map` on the same store, before the browser starts (Playwright runs an event loop).
    export = folder / "map.html"
    with pytest.MonkeyPatch.context() as env:
        for key, value in {"GEO_PROJECTS": str(settings.projects), "GEO_LAYERS_DIR": str(settings.layers_dir),
                           "GEO_MAP_TILES": "none"}.items():
            env.setenv(key, value)
        assert main(["map", str(export), "--status", "proposed,under_construction"]) == 0
    with live_server(settings) as url:
        yield Site(url, export)


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    """One headless Chromium for the module."""
    with chromium() as browser_:
        yield browser_


@pytest.fixture
def browser_page(browser: Any) -> Iterator[Any]:
    """A fresh page (its own context) that records console errors, CSP refusals and requested URLs."""
    with recording_page(browser, console_errors=True) as page:
        yield page


def _violations(page: Any) -> list[str]:
    found: list[str] = page.evaluate("() => window.__violations")
    return found


def _open(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_function(READY, timeout=20_000)


def _state(page: Any) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate("() => Object.assign({}, GeoMap.state)")
    return state


def test_map_renders_locally_with_markers_polygons_and_controls(site: Site, browser_page: Any) -> None:
    page = browser_page
    _open(page, f"{site.url}/map")
    state = _state(page)
    assert state["provinces"] == 34 and state["salang"] == 2 and state["projects"] == 5
    # Polygons and lines are SVG paths; markers and clusters are icons.
    assert page.locator("path.leaflet-interactive").count() >= 36
    assert page.locator(".leaflet-marker-icon").count() >= 1
    for selector in (".leaflet-control-layers", ".leaflet-control-scale", ".leaflet-control-zoom-fullscreen",
                     ".leaflet-control-measure", ".leaflet-control-minimap", ".leaflet-control-search",
                     ".geo-salang-control", "#geo-legend", "#geo-panel"):
        assert page.locator(selector).count() == 1, selector
    # Salang labels: both tunnels, with the Dari names right-to-left.
    labels = page.locator(".geo-label")
    assert labels.count() == 2
    rtl = page.locator('.geo-label [dir="rtl"]').first
    assert rtl.evaluate("e => getComputedStyle(e).direction") == "rtl"
    page.locator(".geo-salang-control a").click()
    page.wait_for_function(f"() => window['{_names(page)['map']}'].getZoom() >= 11")
    # Download links for each layer and each registered format.
    assert page.locator('#geo-downloads a[data-layer="projects"]').count() >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "map.png"))
    assert (ARTIFACTS / "map.png").stat().st_size > 10_000
    assert page.errors == [] and _violations(page) == []  # it all runs under the page's CSP
    hosts = {urlsplit(u).hostname for u in page.requested if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}, hosts


def _names(page: Any) -> dict[str, str]:
    names: dict[str, str] = page.evaluate("() => GeoMap.view.cfg.names")
    return names


def test_filters_on_the_page_change_what_is_shown(site: Site, browser_page: Any) -> None:
    page = browser_page
    _open(page, f"{site.url}/map")
    assert _state(page)["projects"] == 5
    # Untick every category but health: one project left, and the URL says so.
    for box in page.locator('.geo-checks[data-filter="category"] input').all():
        if box.get_attribute("value") != "health":
            box.uncheck()
    page.wait_for_function(READY + " && GeoMap.state.projects === 1")
    assert "category=health" in page.url
    assert page.locator("#geo-summary").inner_text() == "1 project shown"
    # The province filter narrows further, and the choropleth switches to budgets.
    page.locator('select[name="province"]').select_option(["AF-HER"])
    page.wait_for_function(READY + " && GeoMap.state.projects === 0")
    page.locator('input[name="geo-shade"][value="budget"]').check()
    assert "Total budget by province" in page.locator("#geo-legend").inner_text()
    link = page.locator('#geo-downloads a[data-layer="projects"]').first.get_attribute("href")
    assert link is not None and "category=health" in link and "province=AF-HER" in link
    # Unticking the last category selects nothing: no project, and no "download everything" link.
    page.locator('.geo-checks[data-filter="category"] input[value="health"]').uncheck()
    page.wait_for_function(READY + " && GeoMap.state.projects === 0")
    assert page.locator('#geo-downloads a[data-layer="projects"]').count() == 0
    assert "nothing selected" in page.locator("#geo-downloads").inner_text()
    assert page.locator('#geo-downloads a[data-layer="provinces"]').count() > 0
    assert page.errors == []


def test_query_string_filters_and_search(site: Site, browser_page: Any) -> None:
    page = browser_page
    _open(page, f"{site.url}/map?status=approved,planned")
    assert _state(page)["projects"] == 2
    ticked = page.locator('.geo-checks[data-filter="status"] input:checked')
    assert sorted(b.get_attribute("value") for b in ticked.all()) == ["approved", "planned"]
    page.locator(".leaflet-control-search input").press_sequentially("Kandahar", delay=30)
    page.locator(".search-tip", has_text="Kandahar regional hospital").click()
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    assert "Kandahar regional hospital" in popup.inner_text()
    assert popup.locator('[dir="rtl"][lang="prs"]').inner_text() == "شفاخانه کندهار"
    assert page.errors == []


def test_the_filter_panel_is_built_from_the_schemas_filter_fields(site: Site, browser_page: Any) -> None:
    """One group per filter field of the project schema (tests/test_schema_derived.py), in its order:
    a checkbox per status and category of DESIGN.md, a list of the 34 provinces; ticking filters."""
    page = browser_page
    _open(page, f"{site.url}/map?province=AF-KAN")
    titles = page.locator("#geo-panel .geo-subtitle").all_inner_texts()
    assert titles[:3] == ["Status", "Category", "Province"]
    boxes = {key: [b.get_attribute("value")
                   for b in page.locator(f'.geo-checks[data-filter="{key}"] input').all()]
             for key in ("status", "category")}
    assert boxes == {"status": ["proposed", "planned", "approved", "under_construction", "completed",
                                "suspended", "cancelled"],
                     "category": ["school", "health", "housing", "water", "energy", "transport", "other"]}
    page.wait_for_function(
        "() => document.querySelectorAll('select[name=\"province\"] option').length === 34")
    chosen = page.locator('select[name="province"] option:checked')
    assert [o.get_attribute("value") for o in chosen.all()] == ["AF-KAN"]
    # Kandahar holds the one added hospital (approved): unticking "approved" leaves nothing there.
    assert _state(page)["projects"] == 1
    page.locator('.geo-checks[data-filter="status"] input[value="approved"]').uncheck()
    page.wait_for_function(READY + " && GeoMap.state.projects === 0")
    assert "province=AF-KAN" in page.url and "status=proposed" in page.url
    assert page.errors == []


def test_exported_map_opens_offline(site: Site, browser_page: Any) -> None:
    page = browser_page
    # file:// and no server at all: every byte must be in the file.
    _open(page, site.export.as_uri())
    state = _state(page)
    # Exported with status proposed or under construction: the shipped proposed and under-construction
    # projects, and the added (proposed) one with the hostile name.
    assert state["provinces"] == 34 and state["salang"] == 2 and state["projects"] == 3
    assert page.locator(".leaflet-marker-icon").count() >= 1
    assert {urlsplit(u).scheme for u in page.requested} <= {"file", "data"}
    # The filters work on the embedded data too: without "proposed", the one under construction.
    page.locator('.geo-checks[data-filter="status"] input[value="proposed"]').uncheck()
    page.wait_for_function(READY + " && GeoMap.state.projects === 1")
    # The file carries its own policy (no server sends it headers), and runs under it.
    assert page.locator('meta[http-equiv="Content-Security-Policy"]').count() == 1
    assert page.errors == [] and _violations(page) == []


def test_measure_control_works_under_the_csp(site: Site, browser_page: Any) -> None:
    # leaflet-measure is patched to need neither eval nor style attributes (geo/web/vendorpatch.py).
    page = browser_page
    _open(page, f"{site.url}/map")
    page.locator(".leaflet-control-measure").hover()
    page.locator(".leaflet-control-measure .js-start").click()
    box = page.locator(".folium-map").bounding_box()
    assert box is not None
    for dx, dy in ((0, 0), (120, 0), (120, 90)):
        page.mouse.click(box["x"] + 520 + dx, box["y"] + 380 + dy)
    results = page.locator(".leaflet-control-measure .js-results")
    assert "Path distance" in results.inner_text() and "Area" in results.inner_text()
    # The panels hide and show (through the style property, which the CSP allows).
    assert page.locator(".leaflet-control-measure .js-startprompt").is_hidden()
    page.locator(".leaflet-control-measure .js-finish").click()
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    assert "Area measurement" in popup.inner_text()
    assert page.errors == [] and _violations(page) == []


def test_api_docs_render_from_the_service_under_the_csp(site: Site, browser_page: Any) -> None:
    page = browser_page
    page.goto(f"{site.url}/api.html")
    page.locator(".swagger-ui .opblock").first.wait_for(timeout=20_000)
    assert page.locator(".swagger-ui .opblock").count() >= 10  # the operations of /api
    assert "Afghanistan" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.errors == [] and _violations(page) == []
    hosts = {urlsplit(u).hostname for u in page.requested if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}, hosts
