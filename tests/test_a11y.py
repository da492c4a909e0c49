"""Accessibility of the HTML views and of /map (issue 16): axe-core in Debian's Chromium, on a real server.

axe-core comes from the axe-playwright-python package (its bundled axe.min.js; no network at test time).
It is injected with `page.evaluate` (the DevTools protocol's Runtime.evaluate), which the pages'
Content-Security-Policy does not govern, so the pages are checked exactly as served: no `bypass_csp`.

Each page must have no axe violation of impact "serious" or "critical", a language on <html>, one h1,
headings that never skip a level, and no horizontal scrolling on a 375-pixel-wide screen (a phone).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import chromium, keyed_site, recording_page
from tests.conftest import KEY, ROOT, require

PHONE_WIDTH = 375
# Screenshots of each page at phone width (ignored by git), for people to look at.
ARTIFACTS = ROOT / "test-artifacts" / "a11y"
BLOCKING = ("serious", "critical")
MAP_READY = ("() => window.GeoMap && GeoMap.state && GeoMap.state.ready && GeoMap.state.layers "
             "&& GeoMap.state.errors.length === 0")
# The HTML views (f=html; the provinces' items through a browser's own Accept header instead), with
# the ids of shipped features: projects.geojson and layers/salang.geojson.
PAGES = ("/?f=html", "/collections?f=html", "/collections/projects?f=html",
         "/collections/projects/items?f=html", "/collections/projects/items/salang-tunnel-2?f=html",
         "/collections/salang/items/salang-tunnel?f=html", "/collections/provinces/items",
         "/conformance?f=html",
         # Beyond the brief's list: a filtered second page (paging links), a province, a schema.
         "/collections/projects/items?f=html&status=proposed,under_construction&limit=1&offset=1",
         "/collections/provinces/items/AF-BAL?f=html", "/collections/projects/schema?f=html")
# The rendered headings' levels in document order (aria-level overrides the tag's), and what the page
# says its language is. Headings not rendered (display: none, hidden, as in closed panels) are not in
# the accessibility tree, so not in the outline a screen reader reads.
OUTLINE = """() => ({
  lang: document.documentElement.getAttribute('lang') || '',
  levels: Array.from(document.querySelectorAll('h1,h2,h3,h4,h5,h6,[role=heading]'))
    .filter(h => h.checkVisibility({visibilityProperty: true}))
    .map(h => h.getAttribute('aria-level') ? Number(h.getAttribute('aria-level')) : Number(h.tagName[1])),
})"""

# The controls in the map's top left corner (zoom, search, measure, editor...) that the filter panel
# (top right) overlaps.
COVERED = """() => { const p = document.getElementById('geo-panel').getBoundingClientRect();
  return Array.from(document.querySelectorAll('.leaflet-top.leaflet-left > .leaflet-control'))
    .filter(c => { const r = c.getBoundingClientRect();
      return r.right > p.left && r.left < p.right && r.bottom > p.top && r.top < p.bottom; })
    .map(c => c.className); }"""


def _axe_script() -> str:
    try:
        from axe_playwright_python.base import AXE_SCRIPT
    except ImportError:
        require("the axe-playwright-python package is not installed (pip install -e .[test])")
    script: str = AXE_SCRIPT
    return script


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Iterator[str]:
    """A real server with one API key and no basemap tiles (tests/browser.py keyed_site)."""
    with keyed_site(tmp_path_factory.mktemp("a11y"), provinces_cache) as url:
        yield url


@pytest.fixture(scope="module")
def browser(site: str) -> Iterator[Any]:
    """One headless Chromium for the module."""
    with chromium() as browser_:
        yield browser_


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page that records script errors and CSP refusals."""
    with recording_page(browser) as page_:
        yield page_


def blocking_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations of impact serious or critical on the page as it is now."""
    page.evaluate(_axe_script())
    results: dict[str, Any] = page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations']})")
    return [v for v in results["violations"] if v["impact"] in BLOCKING]


def describe(violations: list[dict[str, Any]]) -> str:
    """Each violation's rule, impact, help URL and offending elements (selector and HTML), for a failure."""
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} <{v['helpUrl']}>")
        for node in v["nodes"][:8]:
            lines.append(f"    {' '.join(map(str, node['target']))}: {node['html'][:200]}")
            if node.get("failureSummary"):
                lines.append("      " + node["failureSummary"].replace("\n", " ")[:300])
    return "\n".join(lines)


def outline_problems(page: Any) -> list[str]:
    """What is wrong with the page's language and headings: no lang, not exactly one h1, a skipped level."""
    outline: dict[str, Any] = page.evaluate(OUTLINE)
    problems = []
    if not outline["lang"].strip():
        problems.append("<html> has no lang")
    levels: list[int] = outline["levels"]
    if levels.count(1) != 1:
        problems.append(f"{levels.count(1)} h1 elements, want exactly one")
    for before, after in zip([0, *levels], levels, strict=False):
        if after > before + 1:
            problems.append(f"heading level {after} follows {before or 'the start'}: levels {levels}")
            break
    return problems


def overflow(page: Any) -> int:
    """How many CSS pixels the page is wider than the viewport (0: nothing to scroll sideways)."""
    width: int = page.evaluate("() => document.scrollingElement.scrollWidth - window.innerWidth")
    return width


def _check(page: Any, what: str) -> None:
    problems = outline_problems(page)
    found = blocking_violations(page)
    assert not found and not problems, (
        f"{what}: outline {problems}; axe-core serious/critical violations:\n{describe(found)}")


def _at_phone_width(page: Any, url: str, ready: str | None = None) -> int:
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 740})
    page.goto(url)
    if ready:
        page.wait_for_function(ready, timeout=20_000)
    assert page.evaluate("() => window.innerWidth") == PHONE_WIDTH
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = url.split("//", 1)[1].split("/", 1)[1].replace("f=html", "")
    name = re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-") or "landing"
    page.screenshot(path=str(ARTIFACTS / f"{name}-{PHONE_WIDTH}.png"), full_page=True)
    return overflow(page)


@pytest.mark.parametrize("path", PAGES)
def test_html_view_is_accessible_and_fits_a_phone(site: str, page: Any, path: str) -> None:
    """The HTML view passes axe-core (no serious or critical violation), has a language, one h1 and
    headings in order, and does not scroll sideways at 375 px."""
    answer = page.goto(site + path)
    assert answer.status == 200 and "text/html" in answer.headers["content-type"]
    # axe-core runs under the page's own policy (injected through DevTools, not a <script>).
    assert "script-src" in answer.headers["content-security-policy"]
    page.wait_for_load_state("load")
    _check(page, path)
    extra = _at_phone_width(page, site + path)
    assert extra <= 0, f"{path}: {extra} px wider than a {PHONE_WIDTH} px screen"
    assert page.errors == [], f"{path}: script errors {page.errors}"
    assert page.evaluate("() => window.__violations") == [], f"{path}: refused by the page's CSP"


def test_map_is_accessible_and_fits_a_phone(site: str, page: Any) -> None:
    """The web map, its controls and panels loaded, passes axe-core; at 375 px nothing scrolls sideways."""
    page.goto(f"{site}/map")
    page.wait_for_function(MAP_READY, timeout=20_000)
    _check(page, "/map")
    extra = _at_phone_width(page, f"{site}/map", MAP_READY)
    assert extra <= 0, f"/map: {extra} px wider than a {PHONE_WIDTH} px screen"
    # On the phone the filter panel starts closed, so it covers none of the controls on the left (open,
    # it covers the search box and the editor); one tap opens it.
    toggle = page.locator(".geo-panel-toggle")
    assert toggle.get_attribute("aria-expanded") == "false"
    assert page.evaluate(COVERED) == []
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true" and page.locator(".geo-panel-body").is_visible()
    assert page.evaluate(COVERED) != []  # what closing it on a phone avoids
    assert page.errors == [] and page.evaluate("() => window.__violations") == []


def test_map_editor_dialogs_are_accessible(site: str, page: Any) -> None:
    """Signed in with a key, the editor's dialogs pass axe-core: the key dialog, the add form, the
    import dialog, and a project card with its actions and its status dialog."""
    page.goto(f"{site}/map")
    page.wait_for_function(MAP_READY + " && window.GeoEditor && GeoEditor.state", timeout=20_000)
    page.locator(".geo-edit-start").click()
    _check(page, "/map, key dialog")
    page.locator("#geo-key-input").fill(KEY)
    page.locator("#geo-key-input").press("Enter")
    page.locator(".geo-edit-add").click()
    page.locator("#geo-project-form").wait_for()
    _check(page, "/map, add form")
    page.keyboard.press("Escape")
    page.locator(".geo-edit-import").click()
    page.locator("dialog[open] input[type=file]").wait_for()
    _check(page, "/map, import dialog")
    page.keyboard.press("Escape")
    _open_card(page, "salang-tunnel-2")
    page.locator(".geo-act-status").click()
    page.locator("dialog[open] select").first.wait_for()
    _check(page, "/map, status dialog")
    assert page.errors == [] and page.evaluate("() => window.__violations") == []


def test_map_measure_panel_is_accessible(site: str, page: Any) -> None:
    """leaflet-measure's panel, open (the pointer over it), passes axe-core: its link is in a list item
    and its title a level-2 heading (both patched, geo/web/vendorpatch.py)."""
    page.goto(f"{site}/map")
    page.wait_for_function(MAP_READY, timeout=20_000)
    # The panel opens under the pointer and hides the toggle: no wait for the toggle to be clickable.
    page.locator(".leaflet-control-measure-toggle").hover(force=True)
    page.locator(".leaflet-control-measure .js-start").wait_for()
    assert page.evaluate(OUTLINE)["levels"] == [1, 2]
    _check(page, "/map, measure panel")


def _open_card(page: Any, fid: str) -> None:
    # The map is put at the project without animation first, as tests/test_map_editing.py does.
    page.evaluate("""(id) => { const view = GeoMap.view, layer = view.markers[id];
        const at = layer.getLatLng ? layer.getLatLng() : layer.getBounds().getCenter();
        view.map.closePopup(); view.map.setView(at, 16, {animate: false}); view.openProject(id); }""", fid)
    page.locator(".leaflet-popup-content .geo-card h4").wait_for()


def test_map_project_card_is_accessible(site: str, page: Any) -> None:
    """The card of the shipped Second Salang Tunnel, open on the map, passes axe-core and is a level-2
    heading under the page's h1."""
    page.goto(f"{site}/map")
    page.wait_for_function(MAP_READY, timeout=20_000)
    _open_card(page, "salang-tunnel-2")
    assert page.locator(".leaflet-popup-content .geo-card h4").inner_text() == "Second Salang Tunnel"
    assert page.evaluate(OUTLINE)["levels"][:2] == [1, 2]
    _check(page, "/map, project card")


BAD_PAGE = ("<!DOCTYPE html><html><head><title>bad</title></head><body><h2>Start</h2><h4>Skipped</h4>"
            "<img src='data:,'><button></button><p style='color:#aaa;background:#fff'>pale</p>"
            "<div style='width:600px'>wide</div></body></html>")


def test_the_checks_find_what_they_are_for(page: Any) -> None:
    """A page built to break each rule: axe-core reports the missing language, image text, button name
    and the pale text (all serious or critical); the outline and width checks report theirs."""
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 740})
    page.set_content(BAD_PAGE)
    found = {v["id"] for v in blocking_violations(page)}
    assert {"html-has-lang", "image-alt", "button-name", "color-contrast"} <= found, found
    problems = outline_problems(page)
    assert problems == ["<html> has no lang", "0 h1 elements, want exactly one",
                        "heading level 2 follows the start: levels [2, 4]"]
    assert overflow(page) == 8 + 600 - PHONE_WIDTH  # the body's default 8 px left margin, then the div
