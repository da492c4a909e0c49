"""The HTML views (geo/templates/): what each page shows and how values are formatted (over HTTP), and the
pages in Chromium (maps drawn, paging and the filter form, no script error or CSP refusal, 375 px)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from fastapi.testclient import TestClient

from geo.app import create_app
from geo.formats import MEDIA_TYPES
from geo.html import date_text, feature_body, money
from tests.browser import chromium, recording_page
from tests.conftest import KEY, ROOT, workspace
from tests.server import live_server

ITEMS = "/collections/projects/items"
ARTIFACTS = ROOT / "test-artifacts"
HOSTILE = '<img src=x onerror="window.__xss=1">'
JS_URL = "javascript:window.__xss=2"
LONG = "A long description, read in full. " * 120  # 4,080 characters: no "..." on the item page
# A project with every kind of value: money, dates, a script URL as its source (written into the store:
# the API refuses it), a status history, Dari and Pashto names, and markup in its name and note.
EXTRA = {
    "type": "Feature", "id": "html-views-1",
    "geometry": {"type": "Point", "coordinates": [69.2, 34.5]},
    "properties": {
        "name": f"Clinic {HOSTILE}", "name_prs": "کلینیک", "name_ps": "روغتون", "category": "health",
        "status": "approved", "description": LONG, "budget_usd": 1600000000.0, "start_date": "2024-03-01",
        "funders": ["Fund A", "Fund B"], "source_url": JS_URL, "province": "AF-KAB", "province_name": "Kabul",
        "created_at": "2024-01-01T00:00:00Z", "updated_at": "2030-01-02T03:04:05Z",
        "status_history": [
            {"status": "proposed", "at": "2024-01-01T00:00:00Z", "note": HOSTILE},
            {"status": "approved", "at": "2024-02-01T10:30:00Z", "by": "reviewer-1",
             "source": "https://example.org/decision"},
        ]}}


def _settings(folder: Path, provinces_cache: Path) -> Any:
    settings = workspace(folder, provinces_cache, api_keys=KEY, map_tiles="none")
    doc = orjson.loads(settings.projects.read_bytes())
    doc["features"].append(EXTRA)
    settings.projects.write_bytes(orjson.dumps(doc))
    return settings


@pytest.fixture
def api(tmp_path: Path, provinces_cache: Path) -> Iterator[TestClient]:
    """A client on the shipped data plus the EXTRA project."""
    with TestClient(create_app(_settings(tmp_path, provinces_cache))) as test_client:
        yield test_client


class _Page(HTMLParser):
    """Headings in order, anchors, and the elements with a `lang` attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[int] = []
        self.hrefs: list[str] = []
        self.langs: list[dict[str, str | None]] = []
        self.html_lang: str | None = None
        self.handlers: list[str] = []  # on* attributes

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.handlers += [name for name in found if name.startswith("on")]
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        if tag == "a" and found.get("href"):
            self.hrefs.append(str(found["href"]))
        if tag == "html":
            self.html_lang = found.get("lang")
        elif "lang" in found:
            self.langs.append(found)


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def _html(api: TestClient, path: str, **params: str) -> str:
    response = api.get(path, params={**params, "f": "html"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html"), path
    return response.text


PAGES = ["/", "/conformance", "/collections", "/collections/projects", ITEMS, f"{ITEMS}/html-views-1",
         "/collections/salang/items/salang-tunnel", "/collections/provinces/items",
         "/collections/projects/schema"]


# ---------------------------------------------------------------- formatting, by hand-computed answers

@pytest.mark.parametrize(("value", "expected"), [
    (1600000000, "USD 1.6 billion"), (1600000000.0, "USD 1.6 billion"), (20_000_000, "USD 20 million"),
    (2_450_000, "USD 2.5 million"), (12_500, "USD 12,500"), (999.5, "USD 999.50"), (0, "USD 0")])
def test_money_reads_as_people_say_it(value: float, expected: str) -> None:
    assert money(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("2024-03-01", "1 March 2024"), ("2024-02-01T10:30:00Z", "1 February 2024, 10:30 UTC"),
    ("1964", "1964"), ("not a date", "not a date")])
def test_dates_read_as_dates(value: str, expected: str) -> None:
    assert date_text(value) == expected


# ---------------------------------------------------------------- the pages over HTTP

@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_a_language_a_skip_link_and_headings_in_order(api: TestClient, path: str) -> None:
    text = _html(api, path)
    page = _parse(text)
    assert page.html_lang == "en"
    assert page.headings[0] == 1 and page.headings.count(1) == 1
    # No level is skipped going down (h1 -> h3 would be).
    assert all(b <= a + 1 for a, b in zip(page.headings, page.headings[1:], strict=False)), page.headings
    assert '<a class="skip" href="#main">' in text and '<main id="main">' in text
    assert page.handlers == [], "no inline event handlers (the CSP forbids them)"


def test_landing_tells_what_the_service_holds(api: TestClient) -> None:
    text = _html(api, "/")
    # The shipped data: 34 provinces, 2 Salang features, 2 projects (+ the EXTRA one here).
    for cid, count in (("provinces", 34), ("salang", 2), ("projects", 3)):
        card = rf'collections/{cid}\?f=html">[^<]+</a></h3>\s*<p><strong>{count}</strong> features'
        assert re.search(card, text), cid
    statuses = dict(re.findall(r'status-([a-z_]+)" aria-hidden="true"></span>[^<]+</a>: <strong>(\d+)', text))
    assert statuses == {"proposed": "1", "planned": "0", "approved": "1", "under_construction": "1",
                        "completed": "0", "suspended": "0", "cancelled": "0"}
    latest = re.findall(r'<li><a href="[^"]*/collections/projects/items/([^?"]+)\?f=html">', text)
    assert latest[0] == "html-views-1" and len(latest) == 3  # the most recently updated first
    hrefs = set(_parse(text).hrefs)
    for path in ("/map", "/collections?f=html", "/api.html", "/api", "/conformance?f=html",
                 "/layers/projects.gpkg"):
        assert any(h.endswith(path) for h in hrefs), path


def test_collection_page_has_facts_queryables_and_every_download(api: TestClient) -> None:
    text = _html(api, "/collections/projects")
    assert "<dt>Features</dt><dd>3</dd>" in text
    assert re.search(r"<dt>Last modified</dt><dd><time datetime=\"[^\"]+\">\d+ \w+ \d{4}", text)
    assert re.search(r"<dt>Extent</dt><dd>[0-9.]+° to [0-9.]+° east", text)
    for name in ("status", "category", "province"):
        assert f"<td><code>{name}</code></td>" in text
    hrefs = _parse(text).hrefs
    for fmt in MEDIA_TYPES:
        assert any(h.endswith(f"/layers/projects.{fmt}") for h in hrefs), fmt
    assert 'id="view-map"' in text and '"bbox":[' in text  # the extent drawn on the small map


def test_item_page_formats_every_value(api: TestClient) -> None:
    text = _html(api, f"{ITEMS}/html-views-1")
    # Money as money, the exact value on hover.
    assert re.search(r'<abbr title="USD 1,600,000,000[^"]*">USD 1\.6 billion</abbr>', text)
    # Dates as dates.
    assert '<time datetime="2024-03-01">1 March 2024</time>' in text
    # The long description in full, not cut.
    assert LONG.strip() in text.replace("&#39;", "'")
    # A script URL is text, never a link; the http(s) source of a status change is a link.
    assert 'href="javascript' not in text.lower() and "javascript:window.__xss=2" in text
    assert '<a href="https://example.org/decision"' in text
    # The status history as a timeline: statuses in order, with their dates and who made the change.
    timeline = text[text.index('<ol class="timeline">'):]
    timeline = timeline[:timeline.index("</ol>")]
    assert re.findall(r'class="status status-([a-z_]+)"', timeline) == ["proposed", "approved"]
    assert "1 February 2024, 10:30 UTC" in timeline and "by reviewer-1" in timeline
    # Markup in a name or note stays text.
    assert "<img" not in text and "&lt;img src=x onerror=" in text
    # Dari and Pashto marked with their language, right to left.
    langs = [(e["lang"], e.get("dir")) for e in _parse(text).langs]
    assert ("prs", "rtl") in langs and ("ps", "rtl") in langs
    # Human labels from the schema, not the property names.
    for label in ("Budget (US dollars)", "Start date", "Status history", "Name in Dari", "Name in Pashto"):
        assert f"<dt>{label}</dt>" in text, label
    # Links to the JSON and to the web map centred on the feature.
    hrefs = _parse(text).hrefs
    assert any(h.endswith("/collections/projects/items/html-views-1?f=json") for h in hrefs)
    assert any(h.endswith("/map?focus=html-views-1") for h in hrefs)


def test_shipped_second_salang_tunnel_reads_well(api: TestClient) -> None:
    # The example: the budget 1600000000.0 as money, the source as a link, Dari marked RTL.
    text = _html(api, f"{ITEMS}/salang-tunnel-2")
    assert re.search(r'<abbr title="USD 1,600,000,000[^"]*">USD 1\.6 billion</abbr>', text)
    assert '<a href="https://www.ariananews.af/second-tunnel-planned-for-salang-highway' in text
    assert '<span lang="prs" dir="rtl">تونل دوم سالنگ</span>' in text
    assert "[{'status'" not in text and "1600000000.0</" not in text.replace("(1600000000.0)", "")


def test_salang_and_provinces_use_the_same_templates(api: TestClient) -> None:
    text = _html(api, "/collections/salang/items/salang-tunnel")
    assert "<dt>Length (km)</dt>" in text and "<dt>Sources</dt>" in text
    assert '<span lang="ps" dir="rtl">' in text
    provinces = _html(api, "/collections/provinces/items", limit="50")
    assert len(re.findall(r'<tr><th scope="row"><a href=', provinces)) == 34


def test_items_paging_links(api: TestClient) -> None:
    first = _html(api, ITEMS, limit="1")
    nav = first[first.index('<nav class="paging"'):first.index("</nav>", first.index('<nav class="paging"'))]
    assert ">next</a>" in nav and ">previous</a>" not in nav and ">first</a>" not in nav
    assert "3 features match; showing 1 (1 to 1), 1 a page." in first
    second = _html(api, ITEMS, limit="1", offset="1")
    nav = second[second.index('<nav class="paging"'):]
    nav = nav[:nav.index("</nav>")]
    rels = dict(re.findall(r'<a rel="(\w+)" href="([^"]+)">', nav))
    assert set(rels) == {"first", "prev", "next"}
    assert parse_qs(urlsplit(rels["first"].replace("&amp;", "&")).query) == {"offset": ["0"], "limit": ["1"],
                                                                             "f": ["html"]}
    last = _html(api, ITEMS, limit="1", offset="2")
    assert ">next</a>" not in last and ">previous</a>" in last


def test_items_filters_are_kept(api: TestClient) -> None:
    text = _html(api, ITEMS, status="approved,proposed", sortby="-name", limit="1")
    # The form shows the filter as asked, and carries the parameters it has no control for.
    assert '<option value="approved,proposed" selected>' in text
    assert '<input type="hidden" name="sortby" value="-name">' in text
    assert '<option value="1" selected>1</option>' in text  # the page size
    # The paging links keep the filters, as the JSON's do.
    next_href = re.search(r'<a rel="next" href="([^"]+)">', text)
    assert next_href is not None
    query = parse_qs(urlsplit(next_href.group(1).replace("&amp;", "&")).query)
    assert query["status"] == ["approved,proposed"] and query["sortby"] == ["-name"]
    as_json = api.get(ITEMS, params={"status": "approved,proposed", "sortby": "-name", "limit": "1"}).json()
    json_next = next(ln for ln in as_json["links"] if ln["rel"] == "next")
    assert {k: v for k, v in parse_qs(urlsplit(json_next["href"]).query).items() if k != "f"} == \
        {k: v for k, v in query.items() if k != "f"}
    # Province choices come from the provinces layer (34), category and status from the schema.
    assert len(re.findall(r'<option value="AF-[A-Z]{3}"', text)) == 34
    assert '<option value="under_construction">Under construction</option>' in text


def test_feature_body_links_only_http(api: TestClient) -> None:
    body = feature_body({"properties": {"sources": [{"title": "t", "url": JS_URL}, {"title": "u",
                                                                                    "url": "https://a.b/"}]},
                         "geometry": None})
    assert '<a href="https://a.b/"' in body and "javascript" in body and 'href="javascript' not in body


# ---------------------------------------------------------------- in Chromium

@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Iterator[str]:
    """A real server on the shipped data plus the EXTRA project; no basemap (the pages draw none)."""
    folder = tmp_path_factory.mktemp("html-views")
    log = folder / "server.log"
    with live_server(_settings(folder, provinces_cache), log=log) as url:
        yield url
    assert "Traceback" not in log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the module."""
    with chromium() as launched:
        yield launched


# Page kind -> path, and how many shapes its map draws (None: no map).
KINDS = {
    "landing": ("/?f=html", None),
    "collections": ("/collections?f=html", None),
    "collection": ("/collections/projects?f=html", 0),  # the extent rectangle only
    "items": (f"{ITEMS}?f=html", 3),
    "item": (f"{ITEMS}/html-views-1?f=html", 1),
}


def _open(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("load")
    page.wait_for_function("() => !document.getElementById('view-map') || (window.GeoView && GeoView.ready)")


def _clean(page: Any) -> None:
    page.wait_for_timeout(200)
    assert page.errors == [], page.errors
    assert page.evaluate("() => window.__violations") == []
    assert page.evaluate("() => window.__xss") is None


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_of_page_opens_cleanly_and_draws_its_map(site: str, browser: Any, kind: str) -> None:
    path, shapes = KINDS[kind]
    with recording_page(browser) as page:
        _open(page, site + path)
        if shapes is not None:
            assert page.locator("#view-map.leaflet-container canvas").count() == 1
            assert page.evaluate("() => GeoView.view.layer.getLayers().length") == shapes
        _clean(page)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"html-{kind}.png"), full_page=True)
        # Nothing from anywhere but the service (no CDN).
        assert all(u.startswith(site) or u.startswith("data:") for u in page.requested), page.requested


@pytest.mark.parametrize("kind", list(KINDS))
def test_pages_fit_a_375_pixel_screen(site: str, browser: Any, kind: str) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740})
    try:
        page = context.new_page()
        _open(page, site + KINDS[kind][0])
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
        if kind == "items":  # the wide table scrolls inside its own box
            assert page.evaluate("() => { const w = document.querySelector('.table-wrap');"
                                 " return w.scrollWidth > w.clientWidth; }")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "html-items-375.png"), full_page=True)
    finally:
        context.close()


def test_paging_links_work(site: str, browser: Any) -> None:
    with recording_page(browser) as page:
        _open(page, f"{site}{ITEMS}?f=html&limit=1")
        ids = [page.locator("tbody th a").inner_text()]
        for _ in range(2):
            page.locator("a[rel=next]").click()
            page.wait_for_load_state("load")
            ids.append(page.locator("tbody th a").inner_text())
        assert len(set(ids)) == 3 and page.locator("a[rel=next]").count() == 0
        page.locator("a[rel=first]").click()
        page.wait_for_load_state("load")
        assert page.locator("tbody th a").inner_text() == ids[0]
        _clean(page)


def test_filter_form_works(site: str, browser: Any) -> None:
    with recording_page(browser) as page:
        _open(page, f"{site}{ITEMS}?f=html")
        page.select_option("#filter-status", "approved")
        page.locator(".filters button[type=submit]").click()
        page.wait_for_load_state("load")
        query = parse_qs(urlsplit(page.url).query)
        # Empty choices are left out: the URL holds the parameters the JSON takes.
        assert query == {"f": ["html"], "status": ["approved"], "limit": ["10"]}
        assert page.locator("tbody tr").count() == 1 and page.locator(".count").inner_text().startswith("1 ")
        # The bbox from the map's view: four numbers around the one approved project.
        page.locator("#use-view").click()
        west, south, east, north = map(float, page.input_value("#filter-bbox").split(","))
        assert west < 69.2 < east and south < 34.5 < north
        page.locator(".filters button[type=submit]").click()
        page.wait_for_load_state("load")
        assert "bbox" in parse_qs(urlsplit(page.url).query) and page.locator("tbody tr").count() == 1
        _clean(page)


def test_hostile_text_stays_text(site: str, browser: Any) -> None:
    with recording_page(browser) as page:
        for path in (f"{ITEMS}?f=html", f"{ITEMS}/html-views-1?f=html", "/?f=html"):
            _open(page, site + path)
            assert HOSTILE in page.locator("main").inner_text()
            assert page.locator("main img, a[href^='javascript' i], [onerror]").count() == 0
            _clean(page)


@pytest.mark.parametrize(("fid", "kind"), [("html-views-1", "project"), ("salang-tunnel", "salang")])
def test_item_page_links_to_the_map_centred_on_it(site: str, browser: Any, fid: str, kind: str) -> None:
    collection = "projects" if kind == "project" else "salang"
    with recording_page(browser) as page:
        _open(page, f"{site}/collections/{collection}/items/{fid}?f=html")
        page.locator("a", has_text="Show on the web map").click()
        page.wait_for_load_state("load")
        assert urlsplit(page.url).path == "/map"
        page.wait_for_function("() => window.GeoMap && GeoMap.started")
        page.evaluate("() => GeoMap.started")
        view = "GeoMap.view.map"
        if kind == "project":  # the project's card opens
            page.wait_for_selector(".leaflet-popup", state="visible")
            assert "Clinic" in page.locator(".leaflet-popup").inner_text()
        else:  # the tunnel is framed: its centre in view, closer than the whole country
            page.wait_for_function(f"() => {view}.getZoom() >= 10")
            assert page.evaluate(f"() => {view}.getBounds().contains([35.322, 69.027])")
        assert page.errors == []
