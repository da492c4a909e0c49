"""Hostile text is text, in a real Chromium against a real server: every map control that shows a name.

Projects, a province and the Salang layer get names, descriptions, funders, notes and links that run
script if any of them is ever parsed as HTML. Two detectors, each shown to fire:
- `window.__xss`, which every payload sets when it runs;
- a request for `/x`, which `<img src=x>` makes as soon as it is parsed, whether or not script runs.

The text checks run with the page's Content-Security-Policy bypassed, so that the policy (a second
line of defence, tested on its own at the end) cannot hide a text bug; each check also finds the
hostile text on screen, literally, so it fails if the text went missing instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from geo import provinces
from geo.html import feature_body, safe_href
from geo.web.offline import write_map
from tests.browser import chromium, recording_page
from tests.conftest import AUTH, KEY, point_feature, workspace
from tests.server import live_server

READY = ("() => window.GeoMap && GeoMap.state && GeoMap.state.ready && GeoMap.state.layers "
         "&& GeoMap.state.errors.length === 0")

IMG = '<img src=x onerror="window.__xss=1">'
SCRIPT = "<script>window.__xss=1</script>"
BREAK = '"><svg onload=window.__xss=1>'
JS_URL = "javascript:window.__xss=1"
TEMPLATE = "`${window.__xss=1}`"

# Every Kabul project is a point (the search indexes the clustered markers) but the road, a line.
SCHOOL = "Kabul school " + IMG
CLINIC = "Kabul clinic " + SCRIPT
DEPOT = "Kabul depot " + BREAK
ARCHIVE = "Kabul archive " + TEMPLATE + IMG
ROAD = "Kabul road " + IMG
PROVINCE = "Bamyan " + IMG
SALANG_PRS = "سالنگ " + BREAK
SEARCHED = {SCHOOL, CLINIC, DEPOT, ARCHIVE}

POSTED = [
    point_feature(name=SCHOOL, description=SCRIPT + BREAK, funders=[IMG, BREAK], name_prs="مکتب " + BREAK,
                  source_note=IMG, source_url="https://example.org/school"),
    point_feature(name=CLINIC, lon=69.21, lat=34.56, category="health", description=TEMPLATE),
    point_feature(name=DEPOT, lon=69.14, lat=34.50, category="other", status="planned"),
    {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[69.10, 34.45], [69.18, 34.48]]},
     "properties": {"name": ROAD, "category": "transport", "status": "under_construction"}},
]
# Written into the store file before the server starts: fields the API itself would refuse or sets.
STORED = {"type": "Feature", "id": "hostile-stored",
          "geometry": {"type": "Point", "coordinates": [69.19, 34.52]},
          "properties": {"name": ARCHIVE, "category": "school", "status": "proposed", "source_url": JS_URL,
                         "province": "AF-KAB", "province_name": PROVINCE,
                         "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
                         "status_history": [{"status": "proposed", "at": "2024-01-01T00:00:00Z",
                                             "note": IMG}]}}


@dataclass(frozen=True)
class Site:
    """The live server's URL, the ids of the hostile projects by name, and an offline export."""

    url: str
    ids: dict[str, str]
    export: Path


def _rewrite(path: Path, change: Any) -> None:
    doc = orjson.loads(path.read_bytes())
    change(doc)
    path.write_bytes(orjson.dumps(doc))


def _rename_province(doc: dict[str, Any]) -> None:
    found = [f for f in doc["features"] if f["properties"]["code"] == "AF-BAM"]
    assert len(found) == 1
    found[0]["properties"]["name"] = PROVINCE


def _rename_salang(doc: dict[str, Any]) -> None:
    tunnel = next(f for f in doc["features"] if f["properties"]["name"] == "Salang Tunnel")
    tunnel["properties"]["name_prs"] = SALANG_PRS
    tunnel["properties"]["history"] = IMG


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Iterator[Site]:
    """A real server on a store with hostile projects, a hostile province and Salang label."""
    folder = tmp_path_factory.mktemp("xss")
    settings = workspace(folder, provinces_cache, api_keys=KEY, map_tiles="none")
    _rewrite(settings.layers_dir / provinces.CACHE_NAME, _rename_province)
    _rewrite(settings.layers_dir / "salang.geojson", _rename_salang)
    _rewrite(settings.projects, lambda doc: doc["features"].append(STORED))
    log = folder / "server.log"
    with live_server(settings, log=log) as url:
        ids = {ARCHIVE: "hostile-stored"}
        for body in POSTED:
            answer = httpx.post(f"{url}/collections/projects/items", json=body, headers=AUTH)
            assert answer.status_code == 201, answer.text
            ids[body["properties"]["name"]] = answer.json()["id"]  # type: ignore[index]
        # The API itself refuses a script URL as a source (the stored project has one all the same).
        refused = httpx.post(f"{url}/collections/projects/items", headers=AUTH,
                             json=point_feature(name="Kabul link", source_url=JS_URL))
        assert refused.status_code == 422
        export = folder / "map.html"
        assert write_map(settings, export, {}) == 2 + len(POSTED) + 1
        yield Site(url, ids, export)
    assert "Traceback" not in log.read_text()


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    """One headless Chromium for the module (after `site`: the export runs before Playwright's loop)."""
    with chromium() as browser_:
        yield browser_


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in a fresh context that ignores the pages' CSP (so that only the text handling is tested),
    recording errors and requested URLs."""
    with recording_page(browser, bypass_csp=True) as page_:
        yield page_


@pytest.fixture
def csp_page(browser: Any) -> Iterator[Any]:
    """A page in a fresh context that applies the pages' CSP."""
    with recording_page(browser) as page_:
        yield page_


def _run(page: Any, statement: str) -> None:
    # A statement, not an expression: Playwright would serialise a returned Leaflet object (slowly).
    page.evaluate(f"() => {{ {statement}; }}")


def _open(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_function(READY, timeout=20_000)


def _assert_nothing_ran(page: Any) -> None:
    # An image that failed to load fires onerror within a few ms; let any pending one settle first.
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__xss") is None, "a payload ran"
    assert not [u for u in page.requested if u.rsplit("/", 1)[-1] == "x"], "a payload's <img> was parsed"
    assert page.locator("[onerror], [onload]").count() == 0
    assert page.errors == []


def _search(page: Any, text: str) -> Any:
    box = page.locator(".leaflet-control-search input")
    box.fill("")
    box.press_sequentially(text, delay=20)
    tips = page.locator(".search-tooltip .search-tip")
    tips.first.wait_for()
    return tips


# ---------- the detectors can fire ----------


def test_detectors_fire_when_a_name_is_parsed_as_html(site: Site, page: Any) -> None:
    _open(page, f"{site.url}/map")
    # Leaflet-search as it shipped: each tip's name as HTML, and no buildTip of ours.
    page.evaluate("""() => {
        L.Control.Search.prototype._createTip = function (text) {
            var tip = L.DomUtil.create('li', 'search-tip');
            tip.innerHTML = text; tip._text = text; return tip;
        };
        window[GeoMap.view.cfg.names.search].options.buildTip = null;
    }""")
    _search(page, "Kabul school")
    page.wait_for_function("() => window.__xss === 1", timeout=5_000)
    assert any(u.endswith("/x") for u in page.requested)


def test_detector_fires_for_html_inserted_into_the_page(site: Site, page: Any) -> None:
    _open(page, f"{site.url}/map")
    page.evaluate(f"() => document.body.insertAdjacentHTML('beforeend', {IMG!r} + {BREAK!r})")
    page.wait_for_function("() => window.__xss === 1", timeout=5_000)
    assert any(u.endswith("/x") for u in page.requested)
    # <svg onload> does not run when inserted this way, but its attribute is there to be found.
    assert page.locator("[onerror], [onload]").count() == 2


# ---------- every control that shows a name ----------


def test_search_suggestions_and_result_show_names_as_text(site: Site, page: Any) -> None:
    _open(page, f"{site.url}/map")
    tips = _search(page, "Kabul")
    page.wait_for_function(f"() => document.querySelectorAll('.search-tooltip .search-tip').length === "
                           f"{len(SEARCHED)}")
    assert {t.inner_text() for t in tips.all()} == SEARCHED
    assert page.locator(".search-tooltip img, .search-tooltip svg, .search-tooltip script").count() == 0
    # Keyboard: the chosen suggestion's text goes into the box as it is.
    page.locator(".leaflet-control-search input").press("ArrowDown")
    assert page.locator(".leaflet-control-search input").input_value() in SEARCHED
    # Pick one: the map opens its card, titled with the name as text.
    tips.filter(has_text="Kabul school").click()
    title = page.locator(".leaflet-popup-content h4")
    title.wait_for()
    assert title.inner_text() == SCHOOL
    _assert_nothing_ran(page)


def test_project_cards_show_every_field_as_text(site: Site, page: Any) -> None:
    _open(page, f"{site.url}/map")
    # Close enough to Kabul that no Kabul marker is clustered: each card opens from its own marker.
    _run(page, f"window[{_name(page, 'map')!r}].setView([34.51, 69.16], 13, {{animate: false}})")
    for name, fid in site.ids.items():
        _run(page, f"GeoMap.view.markers[{fid!r}].openPopup()")
        page.wait_for_function(f"() => (document.querySelector('.leaflet-popup-content h4') || {{}})"
                               f".textContent === {name!r}")
        popup = page.locator(".leaflet-popup-content")
        assert popup.locator("img, script, svg, iframe, object").count() == 0
        text = popup.inner_text()
        if name == SCHOOL:
            assert SCRIPT + BREAK in text and f"{IMG}, {BREAK}" in text and "مکتب " + BREAK in text
            assert popup.locator("a", has_text="Source").get_attribute("href") == "https://example.org/school"
        if name == ARCHIVE:
            assert PROVINCE in text and IMG in popup.locator(".geo-note").inner_text()
            # A script URL never becomes a link.
            assert popup.locator("a", has_text="Source").count() == 0
            assert popup.locator('a[href^="javascript" i]').count() == 0
        _run(page, f"window[{_name(page, 'map')!r}].closePopup()")
    _assert_nothing_ran(page)


def _name(page: Any, key: str) -> str:
    name: str = page.evaluate(f"() => GeoMap.view.cfg.names[{key!r}]")
    return name


def _screen_point(page: Any, latlng_js: str) -> tuple[float, float]:
    """The page coordinates of a map position (a JS expression for an L.LatLng)."""
    map_name = _name(page, "map")
    point: dict[str, float] = page.evaluate(f"""() => {{
        const map = window[{map_name!r}], p = map.latLngToContainerPoint({latlng_js});
        const box = map.getContainer().getBoundingClientRect();
        return {{x: box.left + p.x, y: box.top + p.y}};
    }}""")
    return point["x"], point["y"]


def test_tooltips_show_names_as_text(site: Site, page: Any) -> None:
    _open(page, f"{site.url}/map")
    map_name = _name(page, "map")
    # The road (a line): hover its middle, and its tooltip shows the name.
    road = f"GeoMap.view.markers[{site.ids[ROAD]!r}]"
    _run(page, f"window[{map_name!r}].fitBounds({road}.getBounds(), {{padding: [200, 200], animate: false}})")
    # A point on the line that nothing else (a marker, a cluster) covers, as the browser sees it. The
    # provinces must be under it: they arrive after the projects as often as before.
    point: dict[str, float] = page.wait_for_function(f"""() => {{
        const map = window[{map_name!r}], line = {road}.getLayers()[0], ends = line.getLatLngs();
        const box = map.getContainer().getBoundingClientRect();
        for (const t of [0.5, 0.3, 0.7, 0.15, 0.85, 0.4, 0.6]) {{
            const p = map.latLngToContainerPoint(L.latLng(ends[0].lat + t * (ends[1].lat - ends[0].lat),
                                                          ends[0].lng + t * (ends[1].lng - ends[0].lng)));
            const x = box.left + p.x, y = box.top + p.y;
            if (document.elementFromPoint(x, y) === line.getElement()) return {{x: x, y: y}};
        }}
        return null;
    }}""", timeout=5_000).json_value()
    page.mouse.move(point["x"], point["y"])
    tooltip = page.locator(".leaflet-tooltip", has_text="Kabul road")
    tooltip.wait_for()
    assert tooltip.inner_text() == ROAD
    # A point: out of its cluster, its marker's hover title is the name as text.
    school = f"GeoMap.view.markers[{site.ids[SCHOOL]!r}]"
    page.evaluate(f"() => new Promise(done => GeoMap.view.cluster.zoomToShowLayer({school}, done))")
    assert page.evaluate(f"() => {school}.getElement().getAttribute('title')") == SCHOOL
    # The Salang labels are permanent tooltips: the Dari name as text.
    assert any(SALANG_PRS in label for label in page.locator(".geo-label").all_inner_texts())
    _assert_nothing_ran(page)


def test_province_popup_tooltip_filter_panel_and_legend_show_names_as_text(site: Site, page: Any) -> None:
    _open(page, f"{site.url}/map")
    map_name = _name(page, "map")
    bamyan = "GeoMap.view.provinceLayer.getLayers().find(l => l.feature.properties.code === 'AF-BAM')"
    _run(page, f"window[{map_name!r}].fitBounds({bamyan}.getBounds(), {{animate: false}})")
    where = _screen_point(page, f"{bamyan}.getCenter()")
    page.mouse.move(*where)
    tooltip = page.locator(".leaflet-tooltip", has_text="Bamyan")
    tooltip.wait_for()
    assert tooltip.inner_text().startswith(PROVINCE)
    page.mouse.click(*where)
    title = page.locator(".leaflet-popup-content h4")
    title.wait_for()
    assert title.inner_text() == PROVINCE
    # The filter panel lists the province by its name, as text, and filters by it.
    option = page.locator('select[name="province"] option[value="AF-BAM"]')
    assert option.inner_text() == PROVINCE
    page.locator('select[name="province"]').select_option(["AF-KAB"])
    page.wait_for_function(READY + f" && GeoMap.state.projects === {len(site.ids)}")  # all in Kabul
    assert page.locator("#geo-panel img, #geo-legend img").count() == 0
    # The legend counts the hostile projects like any other: by status, as /stats does.
    legend = page.locator("#geo-legend").inner_text()
    stats = httpx.get(f"{site.url}/stats", params={"province": "AF-KAB"}).json()["by_status"]
    for status, row in stats.items():
        assert f"{status.replace('_', ' ')} ({row['count']})" in legend
    assert sum(row["count"] for row in stats.values()) == len(site.ids)
    page.locator('input[name="geo-shade"][value="budget"]').check()
    assert "Total budget by province" in page.locator("#geo-legend").inner_text()
    # The Salang card: its history as text.
    _run(page, "GeoMap.view.salangLayer.getLayers().find(l => l.feature.properties.name === 'Salang Tunnel')"
               ".openPopup()")
    page.wait_for_function(f"() => (document.querySelector('.leaflet-popup-content .geo-desc') || {{}})"
                           f".textContent === {IMG!r}")
    _assert_nothing_ran(page)


def test_exported_map_shows_names_as_text(site: Site, page: Any) -> None:
    _open(page, site.export.as_uri())
    tips = _search(page, "Kabul")
    page.wait_for_function(f"() => document.querySelectorAll('.search-tooltip .search-tip').length === "
                           f"{len(SEARCHED)}")
    assert {t.inner_text() for t in tips.all()} == SEARCHED
    tips.filter(has_text="Kabul archive").click()
    title = page.locator(".leaflet-popup-content h4")
    title.wait_for()
    assert title.inner_text() == ARCHIVE
    assert page.locator('.leaflet-popup-content a[href^="javascript" i]').count() == 0
    _assert_nothing_ran(page)


@pytest.mark.parametrize("path", ["/collections/projects/items?f=html&limit=100", "item"])
def test_html_pages_show_names_as_text(site: Site, page: Any, path: str) -> None:
    url = (f"{site.url}/collections/projects/items/{site.ids[SCHOOL]}?f=html" if path == "item"
           else site.url + path)
    page.goto(url)
    body = page.locator("body").inner_text()
    assert SCHOOL in body and (path == "item" or ARCHIVE in body)
    assert page.locator("body img, body svg, body script, body a[href^='javascript' i]").count() == 0
    _assert_nothing_ran(page)


# ---------- the policy: a second line of defence ----------


@pytest.mark.parametrize("where", ["served", "exported"])
def test_csp_blocks_markup_injected_into_the_map(site: Site, csp_page: Any, where: str) -> None:
    page = csp_page
    _open(page, f"{site.url}/map" if where == "served" else site.export.as_uri())
    assert page.evaluate("() => window.__violations") == []  # the map itself needs no exception
    page.evaluate(f"() => document.body.insertAdjacentHTML('beforeend', {IMG!r} + {BREAK!r})")
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.__xss = 2';"
                  " document.body.appendChild(s); }")
    page.wait_for_function("() => window.__violations.length >= 2")
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__xss") is None
    assert all(v.startswith("script-src") for v in page.evaluate("() => window.__violations"))


# ---------- the HTML pages' links (no browser needed) ----------


@pytest.mark.parametrize(("url", "expected"), [
    ("https://example.org/a?b=1&c=2", "https://example.org/a?b=1&amp;c=2"),
    ("http://example.org/", "http://example.org/"),
    ("/collections/projects?f=html", "/collections/projects?f=html"),
    ("javascript:alert(1)", "#"),
    ("JavaScript:alert(1)", "#"),
    (" \x01javascript:alert(1)", "#"),  # a browser drops leading spaces and control characters
    ("java\tscr\nipt:alert(1)", "#"),  # ... and tabs and newlines anywhere
    ("data:text/html,<script>alert(1)</script>", "#"),
    ("vbscript:msgbox(1)", "#"),
    ('https://example.org/"><script>', "https://example.org/&quot;&gt;&lt;script&gt;"),
])
def test_html_page_links_are_only_http(url: str, expected: str) -> None:
    assert safe_href(url) == expected


def test_html_feature_page_links_only_an_http_source() -> None:
    def body(source: str) -> str:
        return feature_body({"properties": {"name": IMG, "source_url": source}, "geometry": None})

    linked = body("https://example.org/source")
    assert '<a href="https://example.org/source"' in linked
    for hostile in (JS_URL, " javascript:alert(1)", "data:text/html,x"):
        page = body(hostile)
        assert "<a " not in page and "&lt;img src=x" in page and IMG not in page
