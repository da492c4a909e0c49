"""The web map in a real headless Chromium (Debian's), driven by Playwright, against a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from geo.app import create_app
from geo.settings import Settings
from tests.conftest import AUTH, ROOT, point_feature, require
from tests.server import live_server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts"
XSS = "<script>alert(1)</script>"
READY = ("() => window.GeoMap && GeoMap.state && GeoMap.state.ready && GeoMap.state.layers "
         "&& GeoMap.state.errors.length === 0")


@pytest.fixture
def live_url(settings: Settings) -> Iterator[str]:
    """A real uvicorn server on loopback, no basemap tiles, with three more projects (one hostile)."""
    settings = settings.model_copy(update={"map_tiles": "none"})
    with TestClient(create_app(settings)) as client:
        for body in (point_feature(name=XSS, description=XSS, funders=[XSS]),
                     point_feature(name="Kandahar regional hospital", lon=65.71, lat=31.61, category="health",
                                   status="approved", name_prs="شفاخانه کندهار", budget_usd=2_500_000),
                     point_feature(name="Herat water network", lon=62.2, lat=34.35, category="water",
                                   status="planned")):
            assert client.post("/collections/projects/items", json=body, headers=AUTH).status_code == 201
    with live_server(settings) as url:
        yield url


@pytest.fixture
def browser_page() -> Iterator[Any]:
    """A fresh page in headless Chromium that records console errors and every requested URL."""
    if not Path(CHROMIUM).is_file():
        require("Chromium is not installed (apt-get install chromium; `make test` does it as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require("the playwright package is not installed")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.errors = []  # type: ignore[attr-defined]
        page.requested = []  # type: ignore[attr-defined]
        page.on("console", lambda msg: msg.type == "error" and page.errors.append(msg.text))
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.on("request", lambda req: page.requested.append(req.url))
        try:
            yield page
        finally:
            browser.close()


def _open(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_function(READY, timeout=20_000)


def _state(page: Any) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate("() => Object.assign({}, GeoMap.state)")
    return state


def test_map_renders_locally_with_markers_polygons_and_controls(live_url: str, browser_page: Any) -> None:
    page = browser_page
    _open(page, f"{live_url}/map")
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
    assert page.errors == []
    hosts = {urlsplit(u).hostname for u in page.requested if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}, hosts


def _names(page: Any) -> dict[str, str]:
    names: dict[str, str] = page.evaluate("() => GeoMap.view.cfg.names")
    return names


def test_filters_on_the_page_change_what_is_shown(live_url: str, browser_page: Any) -> None:
    page = browser_page
    _open(page, f"{live_url}/map")
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


def test_query_string_filters_and_search(live_url: str, browser_page: Any) -> None:
    page = browser_page
    _open(page, f"{live_url}/map?status=approved,planned")
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


def test_popup_shows_hostile_text_as_text(live_url: str, browser_page: Any) -> None:
    page = browser_page
    _open(page, f"{live_url}/map")
    fid = page.evaluate("""() => Object.keys(GeoMap.view.markers).find(
        k => GeoMap.view.markers[k].feature.properties.name.startsWith('<script'))""")
    assert page.evaluate(f"() => GeoMap.view.openProject({fid!r})")
    title = page.locator(".leaflet-popup-content h4")
    title.wait_for()
    assert title.inner_text() == XSS
    card = page.locator(".leaflet-popup-content").inner_html()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in card and XSS not in card
    assert page.locator(".leaflet-popup-content a", has_text="Item JSON").count() == 1
    assert XSS not in page.content()
    assert page.errors == [] and not page.evaluate("() => window.__xss === true")


@pytest.fixture
def exported(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`geo map` run on the test store (before the browser starts: Playwright runs an event loop)."""
    from geo.cli import main

    out = tmp_path / "map.html"
    for key, value in {"GEO_PROJECTS": str(settings.projects), "GEO_LAYERS_DIR": str(settings.layers_dir),
                       "GEO_MAP_TILES": "none"}.items():
        monkeypatch.setenv(key, value)
    assert main(["map", str(out), "--status", "proposed,under_construction"]) == 0
    return out


def test_exported_map_opens_offline(exported: Path, browser_page: Any) -> None:
    page = browser_page
    # file:// and no server at all: every byte must be in the file.
    _open(page, exported.as_uri())
    state = _state(page)
    assert state["provinces"] == 34 and state["salang"] == 2 and state["projects"] == 2
    assert page.locator(".leaflet-marker-icon").count() >= 1
    assert {urlsplit(u).scheme for u in page.requested} <= {"file", "data"}
    # The filters work on the embedded data too.
    page.locator('.geo-checks[data-filter="status"] input[value="proposed"]').uncheck()
    page.wait_for_function(READY + " && GeoMap.state.projects === 1")
    assert page.errors == []
