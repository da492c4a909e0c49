"""The web map draws a large projects layer from the vector tiles (issue 15, the map's part).

Debian's Chromium against a real server whose store holds 6,000 synthetic projects (more than
MapOptions.tiled_above, 5,000): the page asks for tiles, not for every feature as GeoJSON; the server's
clusters show with their counts; a filter goes into the tile URLs; a point's card is fetched by id
and shows the project's name as text; a change from the feed redraws the tiles. The small shipped store
keeps the GeoJSON map (the other map tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.synth import synthetic_projects, write_store
from geo.web.page import MapOptions, render_page
from tests.browser import chromium, recording_page
from tests.conftest import AUTH, KEY, workspace

PROJECTS = 6_000  # above the default threshold (5,000)
HOSTILE = "<img src=x onerror=window.__pwned=1>"
READY = ("() => window.GeoMap && GeoMap.state && GeoMap.state.ready && GeoMap.state.layers "
         "&& GeoMap.state.errors.length === 0")
TILES = "/collections/projects/tiles/WebMercatorQuad/"
# Sums over the cluster markers drawn now (their titles read "<n> projects").
CLUSTERED = """() => Array.from(document.querySelectorAll('.geo-tile-cluster'))
    .reduce((n, m) => n + parseInt(m.title, 10), 0)"""


def test_the_served_map_has_the_tiled_layer_and_an_exported_map_does_not() -> None:
    """The served page loads VectorGrid and tiles.js and names the tiles and the threshold; an
    exported file (data embedded, no API) has neither."""
    served = render_page(MapOptions())
    exported = render_page(MapOptions(), embedded={"projects": {"type": "FeatureCollection", "features": []}})
    assert "/static/vendor/leaflet.vectorgrid-1.3.0/dist/Leaflet.VectorGrid.bundled.min.js?v=" in served
    assert "/static/app/tiles.js?v=" in served
    assert '"tiles":{"url":"/collections/{id}/tiles/WebMercatorQuad/{z}/{y}/{x}","above":5000}' in served
    assert "vectorgrid" not in exported.lower() and '"tiles":null' in exported


def test_the_threshold_is_a_setting(tmp_path: Path, provinces_cache: Path) -> None:
    """GEO_MAP_TILED_ABOVE reaches the served page (the shipped store's 2 projects are above 1)."""
    from fastapi.testclient import TestClient

    from geo.app import create_app

    for above in (1, 5_000):
        settings = workspace(tmp_path / str(above), provinces_cache, map_tiled_above=above)
        with TestClient(create_app(settings)) as client:
            page = client.get("/map").text
        tiles = '"url":"/collections/{id}/tiles/WebMercatorQuad/{z}/{y}/{x}"'
        assert f'{tiles},"above":{above}}}' in page


@pytest.fixture(scope="module")
def big_site(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Iterator[dict[str, Any]]:
    """A real server (one API key, no basemap) on a store of PROJECTS synthetic projects; the first
    one named HOSTILE."""
    from tests.server import live_server

    folder = tmp_path_factory.mktemp("tiles")
    settings = workspace(folder, provinces_cache, api_keys=KEY, map_tiles="none")
    features = synthetic_projects(PROJECTS, settings)
    features[0]["properties"]["name"] = HOSTILE
    write_store(settings.projects, features)
    log = folder / "server.log"
    with live_server(settings, log=log) as url:
        yield {"url": url, "first": features[0]}
    assert "Traceback" not in log.read_text()


@pytest.fixture(scope="module")
def browser(big_site: dict[str, Any]) -> Iterator[Any]:
    """One headless Chromium for the module."""
    with chromium() as browser_:
        yield browser_


def open_map(page: Any, url: str) -> None:
    """Open /map and wait for it to be drawn."""
    page.goto(url + "/map")
    page.wait_for_function(READY, timeout=30_000, polling=50)


def test_a_large_layer_is_drawn_from_tiles_with_the_servers_clusters(browser: Any,
                                                                      big_site: dict[str, Any]) -> None:
    """Over the whole country the page shows the server's clusters, whose counts add up to every
    project, and it never downloads the projects as GeoJSON."""
    with recording_page(browser) as page:
        open_map(page, big_site["url"])
        assert page.evaluate("() => GeoMap.view.tiled.active") is True
        assert any(TILES in u for u in page.requested)
        assert not any("/collections/projects/items?" in u for u in page.requested)
        # Every project is in a cluster drawn in view (or is a point): the country is framed.
        page.wait_for_function(f"() => ({CLUSTERED})() + GeoMap.state.points === {PROJECTS}", timeout=10_000)
        assert page.evaluate("() => GeoMap.state.clusters") > 0
        assert "6000 projects shown" in page.inner_text("#geo-summary")
        assert page.evaluate("() => window.__violations") == [] and page.errors == []


def test_a_filter_goes_into_the_tile_urls(browser: Any, big_site: dict[str, Any]) -> None:
    """"cancelled" unticked in the panel: the tiles are asked again with the other statuses, and the
    clusters and points count as many projects as /stats says are not cancelled."""
    cancelled = httpx.get(big_site["url"] + "/stats").json()["by_status"]["cancelled"]["count"]
    expected = PROJECTS - cancelled
    assert cancelled > 0 and expected > 5_000  # still above the threshold: still tiles
    with recording_page(browser) as page:
        open_map(page, big_site["url"])
        page.uncheck('.geo-checks[data-filter="status"] input[value="cancelled"]')
        page.wait_for_function(READY, timeout=30_000, polling=50)
        assert page.evaluate("() => GeoMap.view.tiled.active") is True
        filtered = [u for u in page.requested if TILES in u and "status=" in u]
        assert filtered and all("cancelled" not in u and "planned" in u for u in filtered)
        page.wait_for_function(f"() => ({CLUSTERED})() + GeoMap.state.points === {expected}", timeout=10_000)
        assert f"{expected} projects shown" in page.inner_text("#geo-summary")
        assert page.errors == []


def test_the_pages_bbox_goes_into_the_tile_urls(browser: Any, big_site: dict[str, Any]) -> None:
    """/map?bbox=... west of 70.5 E still selects more than the threshold: the tiles are asked with the
    box, and their clusters and points count as many projects as /stats says are in it."""
    box = "60,29,70.5,39"
    expected = httpx.get(big_site["url"] + "/stats", params={"bbox": box}).json()["total"]["count"]
    assert 5_000 < expected < PROJECTS  # above the threshold, and the box leaves some out
    with recording_page(browser) as page:
        page.goto(f"{big_site['url']}/map?bbox={box}")
        page.wait_for_function(READY, timeout=30_000, polling=50)
        assert page.evaluate("() => GeoMap.view.tiled.active") is True
        tiles = [u for u in page.requested if TILES in u]
        assert tiles and all("bbox=60%2C29%2C70.5%2C39" in u for u in tiles)
        page.wait_for_function(f"() => ({CLUSTERED})() + GeoMap.state.points === {expected}", timeout=10_000)
        assert page.errors == []


def test_a_filter_selecting_few_projects_uses_geojson(browser: Any, big_site: dict[str, Any]) -> None:
    """/map?status=planned selects fewer than the threshold: the page draws them as GeoJSON markers, as
    a small store's map does, and asks for no tile."""
    stats = httpx.get(big_site["url"] + "/stats", params={"status": "planned"}).json()
    planned = stats["by_status"]["planned"]["count"]
    assert 0 < planned <= 5_000
    with recording_page(browser) as page:
        page.goto(big_site["url"] + "/map?status=planned")
        page.wait_for_function(READY, timeout=30_000, polling=50)
        assert page.evaluate("() => GeoMap.view.tiled.active") is False
        assert page.evaluate("() => GeoMap.state.markers") == planned
        assert not any(TILES in u for u in page.requested)
        assert page.errors == []


def test_a_point_opens_the_card_fetched_by_id(browser: Any, big_site: dict[str, Any]) -> None:
    """Zoomed in on a project, its point is drawn; a click fetches the project by id and its card
    shows the name as text (a name that is markup stays text)."""
    first = big_site["first"]
    lon, lat = first["geometry"]["coordinates"]
    with recording_page(browser) as page:
        open_map(page, big_site["url"])
        page.evaluate("([lat, lon]) => GeoMap.view.map.setView([lat, lon], 16, {animate: false})", [lat, lon])
        page.wait_for_function("() => GeoMap.state.points > 0 && GeoMap.state.clusters === 0", timeout=10_000)
        xy = page.evaluate("([lat, lon]) => { const p = GeoMap.view.map.latLngToContainerPoint([lat, lon]);"
                           " const r = GeoMap.view.map.getContainer().getBoundingClientRect();"
                           " return [r.left + p.x, r.top + p.y]; }", [lat, lon])
        page.mouse.click(xy[0], xy[1])
        page.wait_for_function("() => GeoMap.state.opened > 0", timeout=10_000)
        assert any(u.endswith("/collections/projects/items/" + first["id"]) for u in page.requested)
        assert page.inner_text(".geo-popup h4") == HOSTILE
        assert page.evaluate("() => document.querySelectorAll('.geo-popup img').length") == 0
        assert page.evaluate("() => window.__pwned") is None
        assert page.errors == []


def test_a_change_from_the_feed_redraws_the_tiles(browser: Any, big_site: dict[str, Any]) -> None:
    """A project renamed through the API: the open map asks for its tiles again."""
    with recording_page(browser) as page:
        open_map(page, big_site["url"])
        page.wait_for_function("() => GeoMap.follow && GeoMap.follow.state.polls > 0", timeout=10_000)
        before = sum(TILES in u for u in page.requested)
        answer = httpx.patch(big_site["url"] + "/collections/projects/items/p-000001",
                             json={"properties": {"name": "Renamed by the tiles test"}},
                             headers={**AUTH, "Content-Type": "application/merge-patch+json"})
        assert answer.status_code == 200, answer.text
        page.wait_for_function("() => (GeoMap.state.redraws || 0) > 0", timeout=10_000)
        page.wait_for_function(READY, timeout=10_000)
        assert sum(TILES in u for u in page.requested) > before
        assert page.errors == []


def test_search_asks_the_items_by_name_and_opens_the_card(browser: Any, big_site: dict[str, Any]) -> None:
    """On the tiled map the search box asks the items API for names; the suggestion is text (a name
    that is markup stays text), and choosing it opens the project's card, fetched by id."""
    first = big_site["first"]
    with recording_page(browser) as page:
        open_map(page, big_site["url"])
        page.locator(".leaflet-control-search input").press_sequentially("<img src=x", delay=20)
        tips = page.locator(".search-tooltip .search-tip")
        tips.first.wait_for(timeout=10_000)
        assert tips.all_inner_texts() == [HOSTILE]
        assert any("/collections/projects/items?" in u and "filter=" in u for u in page.requested)
        tips.first.click()
        page.wait_for_function("() => GeoMap.state.opened > 0", timeout=10_000)
        assert any(u.endswith("/collections/projects/items/" + first["id"]) for u in page.requested)
        assert page.inner_text(".geo-popup h4") == HOSTILE
        assert page.evaluate("() => window.__pwned") is None
        assert page.errors == []


def test_focus_opens_a_projects_card_on_the_tiled_map(browser: Any, big_site: dict[str, Any]) -> None:
    """/map?focus=<id> (the item page's map link): the project is fetched by id, the map goes to it and
    its card opens."""
    first = big_site["first"]
    lon, lat = first["geometry"]["coordinates"]
    with recording_page(browser) as page:
        page.goto(big_site["url"] + "/map?focus=" + first["id"])
        page.wait_for_function("() => GeoMap.state && GeoMap.state.opened > 0", timeout=30_000)
        assert page.inner_text(".geo-popup h4") == HOSTILE
        centre = page.evaluate("() => { const c = GeoMap.view.map.getCenter(); return [c.lat, c.lng]; }")
        assert abs(centre[0] - lat) < 5e-3 and abs(centre[1] - lon) < 5e-3
        assert page.evaluate("() => GeoMap.view.map.getZoom()") >= 14
        assert page.errors == []
