"""Editing projects on the web map (issue 13), in Debian's Chromium against a real server.

Everything goes through the page as a person would use it (clicks, keys, the drawing tools); the result
is checked in the store through the API (httpx), and another client (httpx) makes the concurrent
changes. Every test also checks that the page ran under its Content-Security-Policy without a script
error and asked nothing of any host but the server.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from geo.schema import PROJECT_SCHEMA
from geo.web.page import MapOptions, edit_config, render_page
from tests.browser import chromium, keyed_site, recording_page
from tests.conftest import AUTH, KEY, ROOT, point_feature, workspace
from tests.server import live_server

READY = ("() => window.GeoMap && GeoMap.state && GeoMap.state.ready && GeoMap.state.layers "
         "&& GeoMap.state.errors.length === 0 && window.GeoEditor && GeoEditor.state")
HOSTILE = "<img src=x onerror=alert(1)>"
# Screenshots are kept beside the browser tests' own (ignored by git; README: docs/screenshots holds copies).
ARTIFACTS = ROOT / "test-artifacts"
KABUL = (69.1723, 34.5281)
# Drawn around Kandahar city (lon, lat): a quadrilateral well inside the province.
KANDAHAR_AREA = [(65.60, 31.55), (65.80, 31.55), (65.80, 31.70), (65.60, 31.70)]


def test_the_editor_is_on_the_served_map_only_and_its_vocabularies_come_from_the_schema() -> None:
    """The served page loads the editor and Leaflet.draw from the service; an exported map (no API to
    write to) has neither. The form's lists are the statuses and categories of DESIGN.md."""
    served = render_page(MapOptions(editing=True))
    exported = render_page(MapOptions())
    for name in ("/static/app/editor.js?v=", "/static/app/editor-form.js?v=",
                 "/static/app/editor-import.js?v=", "/static/app/editor.css?v=",
                 "/static/vendor/leaflet-draw-1.0.4/dist/leaflet.draw.js?v=",
                 "/static/vendor/leaflet-draw-1.0.4/dist/leaflet.draw.css?v="):
        assert name in served and name not in exported, name
    assert "GeoEditor.start(GeoMap.view)" in served
    fields = {f["name"]: f for f in edit_config(PROJECT_SCHEMA)["fields"]}
    assert list(fields) == ["name", "name_prs", "name_ps", "category", "status", "budget_usd", "start_date",
                            "end_date", "funders", "source_url", "description"]
    assert fields["status"]["values"] == ["proposed", "planned", "approved", "under_construction",
                                          "completed", "suspended", "cancelled"]
    assert fields["category"]["values"] == ["school", "health", "housing", "water", "energy", "transport",
                                            "other"]
    assert [n for n, f in fields.items() if f["required"]] == ["name", "category", "status"]
    assert (fields["budget_usd"]["kind"], fields["start_date"]["kind"], fields["funders"]["kind"]) == (
        "number", "date", "array")


def test_a_read_only_service_offers_no_editor(tmp_path: Path, provinces_cache: Path) -> None:
    """Without an API key configured no write can succeed: the map has no editor (and no "Edit")."""
    from fastapi.testclient import TestClient

    from geo.app import create_app

    for keys, offered in ((None, False), (KEY, True)):
        settings = workspace(tmp_path / str(offered), provinces_cache, api_keys=keys)
        with TestClient(create_app(settings)) as client:
            page = client.get("/map")
        assert page.status_code == 200
        assert ("/static/app/editor.js" in page.text) is offered
        assert ('"edit":null' in page.text) is not offered


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Iterator[str]:
    """A real server with one API key and no basemap tiles (tests/browser.py keyed_site)."""
    with keyed_site(tmp_path_factory.mktemp("editing"), provinces_cache) as url:
        yield url


@pytest.fixture(scope="module")
def browser(site: str) -> Iterator[Any]:
    """One headless Chromium for the module."""
    with chromium() as browser_:
        yield browser_


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (its own context, so its own sessionStorage) recording errors, CSP refusals,
    requests and any alert()."""
    with recording_page(browser, console_errors=True) as page_:
        page_.dialogs = []
        page_.on("dialog", lambda d: (page_.dialogs.append(d.message), d.dismiss()))
        yield page_


def _open(page: Any, url: str) -> None:
    page.goto(f"{url}/map")
    page.wait_for_function(READY, timeout=20_000)


FAILED_LOAD = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")


def _clean(page: Any, base: str, answered: tuple[int, ...] = (), refused: bool = False) -> None:
    """No script error, no CSP refusal, no alert, nothing asked of any other host. Chromium logs each
    refused request as a console error: those with a status the test provoked (`answered`), or a
    connection it refused (`refused`), are expected."""
    unexpected = [e for e in page.errors
                  if not ((found := FAILED_LOAD.match(e)) and int(found.group(1)) in answered)
                  and not (refused and "ERR_CONNECTION_REFUSED" in e)]
    assert unexpected == []
    assert page.evaluate("() => window.__violations") == []
    assert page.dialogs == []
    base_host = urlsplit(base).hostname
    hosts = {urlsplit(u).hostname for u in page.requested if not u.startswith(("data:", "blob:"))}
    assert hosts == {base_host}, hosts


def _sign_in(page: Any, key: str = KEY) -> None:
    page.locator(".geo-edit-start").click()
    page.locator("#geo-key-input").fill(key)
    page.locator("#geo-key-input").press("Enter")
    page.locator(".geo-edit-add").wait_for()


def _post(base: str, feature: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{base}/collections/projects/items", json=feature, headers=AUTH)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def _get(base: str, fid: str) -> httpx.Response:
    return httpx.get(f"{base}/collections/projects/items/{fid}", headers={"Accept": "application/geo+json"})


def _saved(page: Any, count: int) -> dict[str, Any]:
    """The last of `count` saves the editor has made, once it has made them."""
    page.wait_for_function(f"() => GeoEditor.state.saved.length >= {count} && GeoMap.state.ready")
    last: dict[str, Any] = page.evaluate("() => GeoEditor.state.saved[GeoEditor.state.saved.length - 1]")
    return last


def _point_on_map(page: Any, lon: float, lat: float) -> tuple[float, float]:
    """The page coordinates of a place on the map."""
    xy = page.evaluate("([lat, lon]) => { const m = GeoMap.view.map;"
                       " const p = m.latLngToContainerPoint([lat, lon]);"
                       " const r = m.getContainer().getBoundingClientRect();"
                       " return [r.left + p.x, r.top + p.y]; }", [lat, lon])
    return float(xy[0]), float(xy[1])


def _card(page: Any) -> Any:
    """The one open project card (a closed popup fades out for 200 ms: wait until it is gone)."""
    page.wait_for_function("() => document.querySelectorAll('.leaflet-popup').length === 1")
    card = page.locator(".leaflet-popup-content .geo-card")
    card.wait_for()
    return card


def _open_card(page: Any, fid: str) -> Any:
    """Open a project's card. The map is first put at the project without animation: the cluster's
    zoomToShowLayer never calls back when it starts during another zoom animation."""
    page.evaluate("""(id) => { const view = GeoMap.view, layer = view.markers[id];
        const at = layer.getLatLng ? layer.getLatLng() : layer.getBounds().getCenter();
        view.map.closePopup(); view.map.setView(at, 16, {animate: false}); view.openProject(id); }""", fid)
    return _card(page)


def _screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(path, ARTIFACTS / name)
    return path


def test_no_editing_controls_without_a_key_and_the_key_only_in_session_storage(site: str, page: Any) -> None:
    fid = _post(site, point_feature(name="Key test school"))["id"]
    _open(page, site)
    # Without a key: one "Edit" button, no drawing tools, no actions on a project's card.
    assert page.locator("#geo-edit button").all_inner_texts() == ["Edit"]
    assert page.locator(".geo-draw-point").count() == 0
    assert _open_card(page, fid).locator("button").count() == 0
    page.keyboard.press("Escape")
    _sign_in(page)
    assert page.locator("#geo-edit button").all_inner_texts() == [
        "Sign out", "Point", "Line", "Area", "Coordinates", "Import a spreadsheet"]
    assert _open_card(page, fid).locator(".geo-card-actions button").all_inner_texts() == [
        "Edit", "Change status", "Move / redraw", "Delete"]
    # The key is in sessionStorage and nowhere else the page or a server could read it later.
    kept = page.evaluate("() => ({session: Object.values(sessionStorage), local: localStorage.length,"
                         " cookie: document.cookie, url: location.href})")
    assert kept["session"] == [KEY] and kept["local"] == 0 and kept["cookie"] == ""
    assert KEY not in kept["url"]
    assert page.context.cookies() == []
    assert not any(KEY in u for u in page.requested)
    # Sign out forgets it: no key, no tools, no actions.
    page.locator(".geo-edit-signout").click()
    assert page.evaluate("() => sessionStorage.length") == 0
    assert page.locator("#geo-edit button").all_inner_texts() == ["Edit"]
    assert page.locator(".geo-draw-point").count() == 0
    assert _open_card(page, fid).locator("button").count() == 0
    _clean(page, site)


def test_add_a_point_by_clicking_the_map_with_a_hostile_name(site: str, page: Any, tmp_path: Path) -> None:
    _open(page, site)
    before = page.evaluate("() => GeoMap.state.projects")
    counted = page.evaluate("() => GeoMap.view.stats.by_province['AF-KAB'].count")
    _sign_in(page)
    page.evaluate("([lat, lon]) => GeoMap.view.map.setView([lat, lon], 11)", [KABUL[1], KABUL[0]])
    page.locator(".geo-draw-point").click()
    x, y = _point_on_map(page, *KABUL)
    page.mouse.move(x - 5, y - 5)
    page.mouse.click(x, y)
    form = page.locator("#geo-project-form")
    form.wait_for()
    lon = float(form.locator("#geo-f-lon").input_value())
    lat = float(form.locator("#geo-f-lat").input_value())
    assert abs(lon - KABUL[0]) < 0.01 and abs(lat - KABUL[1]) < 0.01
    assert form.locator("#geo-province").inner_text() == "Assigned by the service from the location."
    form.locator("#geo-f-name").fill(HOSTILE)
    form.locator("#geo-f-name_prs").fill("مکتب نو")
    form.locator("#geo-f-name_ps").fill("نوی ښوونځی")
    form.locator("#geo-f-category").select_option("school")
    form.locator("#geo-f-status").select_option("planned")
    form.locator("#geo-f-budget_usd").fill("1250000")
    form.locator("#geo-f-start_date").fill("2025-03-01")
    form.locator("#geo-f-end_date").fill("2026-09-30")
    form.locator("#geo-f-funders").fill("World Bank, " + HOSTILE)
    form.locator("#geo-f-source_url").fill("https://example.org/new-school")
    form.locator("#geo-f-description").fill("Twelve classrooms. " + HOSTILE)
    for name, lang in (("name_prs", "prs"), ("name_ps", "ps")):
        field = form.locator(f"#geo-f-{name}")
        assert field.get_attribute("dir") == "rtl" and field.get_attribute("lang") == lang
        assert field.evaluate("e => getComputedStyle(e).direction") == "rtl"
    _screenshot(page, tmp_path, "map-editing-add-form.png")
    form.locator("button[type=submit]").click()
    saved = _saved(page, 1)
    # In the store, as typed; the province assigned by the service (Kabul), and shown on the page.
    stored = _get(site, saved["id"]).json()
    props = stored["properties"]
    assert stored["geometry"]["type"] == "Point"
    assert props["name"] == HOSTILE and props["name_prs"] == "مکتب نو" and props["name_ps"] == "نوی ښوونځی"
    assert props["category"] == "school" and props["status"] == "planned" and props["budget_usd"] == 1_250_000
    assert props["start_date"] == "2025-03-01" and props["end_date"] == "2026-09-30"
    assert props["funders"] == ["World Bank", HOSTILE] and props["source_url"] == "https://example.org/new-school"
    assert props["province"] == "AF-KAB" and saved["province"] == "AF-KAB"
    assert "Kabul province (AF-KAB)" in page.locator("#geo-edit-notice").inner_text()
    # At once on the map, with the legend and the choropleth's figures following.
    assert page.evaluate("() => GeoMap.state.projects") == before + 1
    assert page.evaluate("() => GeoMap.view.stats.by_province['AF-KAB'].count") == counted + 1
    # The hostile name is text: on the card, literally, and never an element.
    card = _card(page)
    assert card.locator("h4").inner_text() == HOSTILE
    assert page.locator("img[src=x]").count() == 0
    assert not any(urlsplit(u).path == "/x" for u in page.requested)
    _clean(page, site)


def test_add_a_polygon_by_drawing_it(site: str, page: Any) -> None:
    _open(page, site)
    _sign_in(page)
    page.evaluate("() => GeoMap.view.map.setView([31.62, 65.70], 10)")
    page.locator(".geo-draw-area").click()
    for lon, lat in KANDAHAR_AREA:
        x, y = _point_on_map(page, lon, lat)
        page.mouse.move(x, y)
        # Leaflet.draw ignores a vertex click within 50 ms of the previous one (its double-click guard);
        # no person clicks that fast, a script does.
        page.wait_for_timeout(120)
        page.mouse.click(x, y)
    page.locator(".geo-draw-finish").click()
    form = page.locator("#geo-project-form")
    form.wait_for()
    assert "An area of 4 corners" in form.locator("#geo-field-geometry").inner_text()
    form.locator("#geo-f-name").fill("Kandahar housing block")
    form.locator("#geo-f-category").select_option("housing")
    form.locator("#geo-f-status").select_option("proposed")
    form.locator("button[type=submit]").click()
    saved = _saved(page, 1)
    stored = _get(site, saved["id"]).json()
    assert stored["geometry"]["type"] == "Polygon"
    ring = stored["geometry"]["coordinates"][0]
    assert len(ring) == 5 and ring[0] == ring[-1]
    for (lon, lat), (want_lon, want_lat) in zip(ring[:4], KANDAHAR_AREA, strict=True):
        assert abs(lon - want_lon) < 0.01 and abs(lat - want_lat) < 0.01
    assert stored["properties"]["province"] == "AF-KAN"
    assert stored["properties"]["name"] == "Kandahar housing block"
    _clean(page, site)


def test_server_errors_are_shown_next_to_their_field_and_the_form_keeps_the_input(
        site: str, page: Any) -> None:
    _open(page, site)
    _sign_in(page)
    page.locator(".geo-edit-add").click()
    form = page.locator("#geo-project-form")
    # Latitude and longitude swapped, and no name.
    form.locator("#geo-f-lon").fill(str(KABUL[1]))
    form.locator("#geo-f-lat").fill(str(KABUL[0]))
    form.locator("#geo-f-category").select_option("water")
    form.locator("#geo-f-budget_usd").fill("900")
    form.locator("button[type=submit]").click()
    name_error = form.locator("#geo-err-name")
    name_error.wait_for()
    assert "required" in name_error.inner_text().lower()
    assert form.locator("#geo-f-name").get_attribute("aria-invalid") == "true"
    assert form.locator("#geo-err-geometry").inner_text() == ""
    assert form.locator("#geo-err-category").inner_text() == ""
    # Named, it passes the properties' checks and meets the geometry's: the swap hint, on the location.
    form.locator("#geo-f-name").fill("Water point " + HOSTILE)
    form.locator("button[type=submit]").click()
    page.wait_for_function("() => document.querySelector('#geo-err-geometry').textContent.includes('swap')")
    assert "latitude, longitude" in form.locator("#geo-err-geometry").inner_text()
    assert form.locator("#geo-err-name").inner_text() == ""
    # What was typed is all still there; put right, it is stored.
    assert form.locator("#geo-f-category").input_value() == "water"
    assert form.locator("#geo-f-budget_usd").input_value() == "900"
    form.locator("#geo-f-lon").fill(str(KABUL[0]))
    form.locator("#geo-f-lat").fill(str(KABUL[1]))
    form.locator("button[type=submit]").click()
    saved = _saved(page, 1)
    props = _get(site, saved["id"]).json()["properties"]
    assert props["name"] == "Water point " + HOSTILE and props["budget_usd"] == 900
    assert props["status"] == "proposed"
    _clean(page, site, answered=(422,))


def test_change_status_with_a_note_from_the_popup_appears_in_the_timeline(site: str, page: Any) -> None:
    """The dialog offers the statuses the service's workflow allows next (from `proposed`: planned,
    approved, cancelled), and the note and source go into the new status_history entry."""
    fid = _post(site, point_feature(name="Status school", lon=68.0, lat=34.0))["id"]
    _open(page, site)
    _sign_in(page)
    _open_card(page, fid).locator(".geo-act-status").click()
    form = page.locator("#geo-status-form")
    assert form.locator("#geo-f-status").input_value() == "proposed"
    offered = [o.get_attribute("value") for o in form.locator("#geo-f-status option").all()]
    assert offered == ["", "proposed", "planned", "approved", "cancelled"]
    form.locator("#geo-f-status").select_option("approved")
    form.locator("#geo-f-note").fill("Approved by the provincial council " + HOSTILE)
    form.locator("#geo-f-change_source").fill("https://example.org/decision-42")
    form.locator("button[type=submit]").click()
    _saved(page, 1)
    history = _get(site, fid).json()["properties"]["status_history"]
    assert [h["status"] for h in history] == ["proposed", "approved"]
    assert history[1]["note"] == "Approved by the provincial council " + HOSTILE
    assert history[1]["source"] == "https://example.org/decision-42"
    timeline = _card(page).locator(".geo-timeline li")
    assert timeline.count() == 2
    assert "approved" in timeline.nth(1).inner_text()
    note = timeline.nth(1).locator(".geo-note").first.inner_text()
    assert note == "Approved by the provincial council " + HOSTILE
    # Who made it: the key's name (GEO_API_KEYS keys are env-key-<first 6 hex of its SHA-256>), never the key.
    who = timeline.nth(1).locator(".geo-by").inner_text()
    assert who.strip() == "by env-key-" + hashlib.sha256(KEY.encode()).hexdigest()[:6]
    assert KEY not in timeline.nth(1).inner_text()
    assert timeline.nth(1).locator("a").get_attribute("href") == "https://example.org/decision-42"
    assert page.locator("img[src=x]").count() == 0
    _clean(page, site)


def test_a_refused_status_change_is_shown_on_the_status_field(site: str, page: Any) -> None:
    """Another client moved the project on meanwhile: the status the page offered is no longer allowed
    from the stored one. After the 412 and a reload, the service's 409 (a completed project is final)
    names the status field."""
    fid = _post(site, point_feature(name="Finished school", lon=67.0, lat=34.6,
                                    status="under_construction"))["id"]
    _open(page, site)
    _sign_in(page)
    _open_card(page, fid).locator(".geo-act-edit").click()
    form = page.locator("#geo-project-form")
    form.wait_for()
    done = httpx.patch(f"{site}/collections/projects/items/{fid}",
                       json={"properties": {"status": "completed"}},
                       headers={**AUTH, "Content-Type": "application/merge-patch+json"})
    assert done.status_code == 200
    form.locator("#geo-f-status").select_option("suspended")
    form.locator("button[type=submit]").click()
    form.locator(".geo-reload").click()
    page.wait_for_function("() => document.querySelector('#geo-f-status') &&"
                           " document.querySelector('#geo-f-status').value === 'completed'")
    form.locator("#geo-f-status").select_option("suspended")
    form.locator("button[type=submit]").click()
    error = form.locator("#geo-err-status")
    error.wait_for()
    assert "completed" in error.inner_text() and "final" in error.inner_text()
    assert form.locator("#geo-f-status").get_attribute("aria-invalid") == "true"
    assert _get(site, fid).json()["properties"]["status"] == "completed"
    _clean(page, site, answered=(409, 412))


def test_a_duplicate_is_refused_until_the_user_says_it_is_another_project(site: str, page: Any) -> None:
    _post(site, point_feature(name="Twin school", lon=66.5, lat=35.1))
    _open(page, site)
    _sign_in(page)
    page.locator(".geo-edit-add").click()
    form = page.locator("#geo-project-form")
    # About 30 m from the first, same name and category.
    form.locator("#geo-f-lon").fill("66.5003")
    form.locator("#geo-f-lat").fill("35.1")
    form.locator("#geo-f-name").fill("Twin school")
    form.locator("#geo-f-category").select_option("school")
    form.locator("button[type=submit]").click()
    anyway = form.locator(".geo-add-anyway")
    anyway.wait_for()
    assert "Twin school" in form.locator("#geo-err-name").inner_text()
    anyway.click()
    saved = _saved(page, 1)
    assert _get(site, saved["id"]).json()["properties"]["name"] == "Twin school"
    _clean(page, site, answered=(409,))


def test_an_edit_after_another_clients_change_is_a_412_with_their_version_and_a_reload(
        site: str, page: Any) -> None:
    fid = _post(site, point_feature(name="Contested clinic", category="health", lon=68.5, lat=34.2))["id"]
    _open(page, site)
    _sign_in(page)
    _open_card(page, fid).locator(".geo-act-edit").click()
    form = page.locator("#geo-project-form")
    assert form.locator("#geo-f-name").input_value() == "Contested clinic"
    # Meanwhile another client changes the budget.
    other = httpx.patch(f"{site}/collections/projects/items/{fid}", json={"properties": {"budget_usd": 777}},
                        headers={**AUTH, "Content-Type": "application/merge-patch+json"})
    assert other.status_code == 200
    form.locator("#geo-f-name").fill("Contested clinic (renamed)")
    form.locator("button[type=submit]").click()
    reload_button = form.locator(".geo-reload")
    reload_button.wait_for()
    message = form.locator(".geo-form-error").inner_text()
    assert "Someone else changed this project" in message
    diff = form.locator(".geo-diff tbody tr")
    assert diff.count() == 1 and "777" in diff.first.inner_text() and "(empty)" in diff.first.inner_text()
    assert _get(site, fid).json()["properties"]["name"] == "Contested clinic"  # nothing written
    reload_button.click()
    form = page.locator("#geo-project-form")
    page.wait_for_function("() => document.querySelector('#geo-f-budget_usd') &&"
                           " document.querySelector('#geo-f-budget_usd').value === '777'")
    form.locator("#geo-f-name").fill("Contested clinic (renamed)")
    form.locator("button[type=submit]").click()
    _saved(page, 1)
    props = _get(site, fid).json()["properties"]
    assert props["name"] == "Contested clinic (renamed)" and props["budget_usd"] == 777
    assert page.evaluate("() => GeoEditor.state.conflicts") == 1
    _clean(page, site, answered=(412,))


def test_delete_asks_for_confirmation(site: str, page: Any) -> None:
    fid = _post(site, point_feature(name="Doomed depot", category="other", lon=67.5, lat=33.5))["id"]
    _open(page, site)
    before = page.evaluate("() => GeoMap.state.projects")
    _sign_in(page)
    _open_card(page, fid).locator(".geo-act-delete").click()
    dialog = page.locator("dialog.geo-dialog")
    assert "Doomed depot" in dialog.locator("h2").inner_text()
    # Cancel has the focus; Escape closes without deleting.
    assert page.evaluate("() => document.activeElement.textContent") == "Cancel"
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    assert _get(site, fid).status_code == 200
    _open_card(page, fid).locator(".geo-act-delete").click()
    page.locator("#geo-delete-form button[type=submit]").click()
    page.wait_for_function("(id) => GeoEditor.state.deleted.includes(id) && GeoMap.state.ready", arg=fid)
    assert _get(site, fid).status_code == 410  # deleted: kept in its history (issue 14)
    page.wait_for_function(f"() => GeoMap.state.projects === {before - 1}")
    assert "Deleted" in page.locator("#geo-edit-notice").inner_text()
    _clean(page, site)


def test_move_a_point_from_its_popup(site: str, page: Any) -> None:
    fid = _post(site, point_feature(name="Moving school", lon=69.20, lat=34.55))["id"]
    _open(page, site)
    _sign_in(page)
    _open_card(page, fid).locator(".geo-act-move").click()
    # The move starts once the project's current version (and ETag) has arrived.
    page.wait_for_function("() => document.querySelector('#geo-edit-notice').textContent"
                           ".includes('Moving “Moving school”')")
    herat = (62.20, 34.35)
    page.evaluate("([lat, lon]) => GeoMap.view.map.setView([lat, lon], 10)", [herat[1], herat[0]])
    x, y = _point_on_map(page, *herat)
    page.mouse.move(x - 5, y - 5)
    page.mouse.click(x, y)
    _saved(page, 1)
    stored = _get(site, fid).json()
    lon, lat = stored["geometry"]["coordinates"]
    assert abs(lon - herat[0]) < 0.01 and abs(lat - herat[1]) < 0.01
    assert stored["properties"]["province"] == "AF-HER" and stored["properties"]["name"] == "Moving school"
    _clean(page, site)


def test_wrong_key_503_and_closed_connection_are_plain_messages_and_keep_the_input(
        tmp_path: Path, provinces_cache: Path, page: Any) -> None:
    """Each against a real server: a key it does not know (401), its keys file emptied (503, as while
    an operator rotates keys), and the server stopped (the connection refused)."""
    keys = tmp_path / "keys.txt"
    keys.write_text(KEY + "\n")
    settings = workspace(tmp_path / "ws", provinces_cache, api_keys=f"@{keys}", map_tiles="none")
    log = tmp_path / "server.log"
    with live_server(settings, log=log) as url:
        _open(page, url)
        _sign_in(page, "not-the-key")
        page.locator(".geo-edit-add").click()
        form = page.locator("#geo-project-form")
        form.locator("#geo-f-lon").fill(str(KABUL[0]))
        form.locator("#geo-f-lat").fill(str(KABUL[1]))
        form.locator("#geo-f-name").fill("Kept school")
        form.locator("#geo-f-category").select_option("school")
        error = form.locator(".geo-form-error")
        form.locator("button[type=submit]").click()
        page.wait_for_function("() => document.querySelector('.geo-form-error').textContent.includes('key')")
        assert "The API key was not accepted" in error.inner_text()
        assert form.locator("#geo-f-name").input_value() == "Kept school"
        # The key can be entered again without losing the form.
        form.locator(".geo-rekey").click()
        page.locator("#geo-key-input").fill(KEY)
        page.locator("#geo-key-input").press("Enter")
        page.locator("#geo-signin-form").wait_for(state="detached")
        assert page.evaluate("() => Object.values(sessionStorage)") == [KEY]
        keys.write_text("")
        form.locator("button[type=submit]").click()
        page.wait_for_function("() => document.querySelector('.geo-form-error')"
                               ".textContent.includes('right now')")
        assert "Nothing was saved" in error.inner_text()
        assert form.locator("#geo-f-name").input_value() == "Kept school"
        assert form.locator("#geo-f-category").input_value() == "school"
        keys.write_text(KEY + "\n")
    # The server is gone: the connection is refused.
    form.locator("button[type=submit]").click()
    page.wait_for_function("() => document.querySelector('.geo-form-error')"
                           ".textContent.includes('connection')")
    assert "The connection to the service failed" in error.inner_text()
    assert form.locator("#geo-f-name").input_value() == "Kept school"
    assert float(form.locator("#geo-f-lon").input_value()) == KABUL[0]
    assert "Traceback" not in log.read_text()
    _clean(page, url, answered=(401, 503), refused=True)


def _names(base: str) -> list[str]:
    doc = httpx.get(f"{base}/collections/projects/items", params={"limit": 1000}).json()
    return [f["properties"]["name"] for f in doc["features"]]


def test_import_a_spreadsheet_shows_the_report_then_imports_on_confirmation(
        site: str, page: Any, tmp_path: Path) -> None:
    sheet = tmp_path / "new projects.csv"
    sheet.write_text("name,category,status,lon,lat\n"
                     "Imported school,school,planned,69.18,34.52\n"
                     f"Imported clinic {HOSTILE},health,proposed,62.19,34.34\n"
                     "Imported castle,castle,proposed,69.2,34.5\n"
                     "Imported nowhere,water,proposed,0,0\n", encoding="utf-8")
    _open(page, site)
    before = page.evaluate("() => GeoMap.state.projects")
    _sign_in(page)
    page.locator(".geo-edit-import").click()
    form = page.locator("#geo-import-form")
    form.locator("#geo-import-file").set_input_files(str(sheet))
    form.locator("button[type=submit]").click()
    report = form.locator("#geo-import-report")
    report.locator(".geo-report-summary").wait_for()
    summary = dict(zip(report.locator(".geo-report-summary th").all_inner_texts(),
                       report.locator(".geo-report-summary td").all_inner_texts(), strict=True))
    assert summary["Rows read"] == "4" and summary["Would be imported"] == "2"
    assert summary["Rejected rows"] == "2"
    rows = report.locator("#geo-report-rejected tbody tr")
    # The header is row 1: the castle is row 4 (its category), the point at 0,0 row 5 (its geometry).
    assert rows.count() == 2
    assert rows.nth(0).locator("td").nth(0).inner_text() == "4"
    assert "category" in rows.nth(0).locator("td").nth(1).inner_text()
    assert rows.nth(1).locator("td").nth(0).inner_text() == "5"
    assert "geometry" in rows.nth(1).locator("td").nth(1).inner_text()
    _screenshot(page, tmp_path, "map-editing-import-report.png")
    assert "Imported school" not in _names(site)  # a dry run: nothing written yet
    page.locator(".geo-confirm-import").click()
    page.wait_for_function("() => GeoEditor.state.imports === 1 && GeoMap.state.ready")
    assert report.locator("h3").inner_text() == "Imported"
    names = _names(site)
    assert "Imported school" in names and f"Imported clinic {HOSTILE}" in names
    assert "Imported castle" not in names and "Imported nowhere" not in names
    page.wait_for_function(f"() => GeoMap.state.projects === {before + 2}")
    assert page.locator("img[src=x]").count() == 0
    _clean(page, site)


def test_the_form_fits_a_375_pixel_wide_screen(site: str, page: Any) -> None:
    page.set_viewport_size({"width": 375, "height": 667})
    _open(page, site)
    _sign_in(page)
    page.locator(".geo-edit-add").click()
    form = page.locator("#geo-project-form")
    form.wait_for()
    sizes = page.evaluate("""() => {
        const dialog = document.querySelector('dialog.geo-dialog');
        const body = dialog.querySelector('.geo-dialog-body');
        const right = Math.max(...[...dialog.querySelectorAll('input, select, textarea, button, label')]
            .map(e => e.getBoundingClientRect().right));
        return {page: document.documentElement.scrollWidth, dialog: dialog.getBoundingClientRect().right,
                bodyScroll: body.scrollWidth, bodyWidth: body.clientWidth, right: right,
                scrolls: body.scrollHeight > body.clientHeight};
    }""")
    assert sizes["page"] <= 375 and sizes["dialog"] <= 375 and sizes["right"] <= 375, sizes
    assert sizes["bodyScroll"] <= sizes["bodyWidth"], sizes  # no horizontal scrolling inside
    assert sizes["scrolls"], sizes  # the form is longer than the screen: it scrolls, vertically
    form.locator("#geo-f-lon").fill(str(KABUL[0]))
    form.locator("#geo-f-lat").fill(str(KABUL[1]))
    form.locator("#geo-f-name").fill("Phone school")
    form.locator("#geo-f-category").select_option("school")
    form.locator("button[type=submit]").click()  # scrolled into view and clicked like a tap
    saved = _saved(page, 1)
    assert _get(site, saved["id"]).json()["properties"]["name"] == "Phone school"
    _clean(page, site)


def _focused(page: Any) -> dict[str, Any]:
    found: dict[str, Any] = page.evaluate("""() => { const e = document.activeElement;
        const dialog = document.querySelector('dialog[open]');
        return {cls: e.className, id: e.id, text: e.textContent, inDialog: !!dialog && dialog.contains(e),
                outline: getComputedStyle(e).outlineStyle}; }""")
    return found


def test_keyboard_only_add_with_focus_kept_in_the_dialog(site: str, page: Any) -> None:
    _open(page, site)
    for _ in range(80):
        page.keyboard.press("Tab")
        if "geo-edit-start" in _focused(page)["cls"]:
            break
    else:
        pytest.fail("Tab never reached the Edit button")
    assert _focused(page)["outline"] != "none"  # focus is visible
    page.keyboard.press("Enter")
    assert _focused(page)["id"] == "geo-key-input"
    page.keyboard.type(KEY)
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.activeElement.classList.contains('geo-draw-point')")
    for _ in range(3):
        page.keyboard.press("Tab")
    assert "geo-edit-add" in _focused(page)["cls"] and _focused(page)["outline"] != "none"
    page.keyboard.press("Enter")
    page.locator("#geo-project-form").wait_for()
    assert _focused(page)["id"] == "geo-f-lon"
    # The dialog keeps the focus: Tab past its last control comes back to its first.
    count = page.evaluate("() => document.querySelector('dialog[open]').querySelectorAll("
                          "'button, input, select, textarea').length")
    for _ in range(count + 2):
        page.keyboard.press("Tab")
        assert _focused(page)["inDialog"]
    page.keyboard.press("Shift+Tab")
    assert _focused(page)["inDialog"]
    page.locator("#geo-f-lon").focus()
    page.keyboard.type(str(KABUL[0]))
    page.keyboard.press("Tab")
    page.keyboard.type(str(KABUL[1]))
    page.keyboard.press("Tab")
    assert _focused(page)["id"] == "geo-f-name"
    page.keyboard.type("Keyboard school")
    for _ in range(3):
        page.keyboard.press("Tab")
    assert _focused(page)["id"] == "geo-f-category"
    page.keyboard.press("ArrowDown")  # the first category: school
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert _focused(page)["id"] == "geo-f-budget_usd"
    page.keyboard.type("42000")
    page.keyboard.press("Enter")  # submits the form
    saved = _saved(page, 1)
    props = _get(site, saved["id"]).json()["properties"]
    assert props["name"] == "Keyboard school" and props["category"] == "school"
    assert props["budget_usd"] == 42000
    # Escape closes a dialog and gives the focus back to the control that opened it.
    page.locator(".geo-edit-import").focus()
    page.keyboard.press("Enter")
    page.locator("#geo-import-form").wait_for()
    page.keyboard.press("Escape")
    page.locator("#geo-import-form").wait_for(state="detached")
    assert "geo-edit-import" in _focused(page)["cls"]
    _clean(page, site)
