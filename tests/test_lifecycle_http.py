"""A project's lifecycle through HTTP on a real server, on both stores (issue 14): its history, soft
delete and restore, Idempotency-Key on POST (retries, a reused key, concurrent POSTs, a restart), and the
changes feed (paging, times, a second store synced from the feed alone).

Expected values come from outside the code: the issue's rules (410 with a link to the history, restore
for admins only, one project per key, a feed that rebuilds the store), the draft-ietf-httpapi-idempotency-
key-header's 422 for a key reused with another body, and the edits each test makes by hand.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from geo.keys import KeyRing
from geo.settings import Settings
from geo.store.geojson_file import GeoJSONFileStore
from tests.conftest import point_feature, workspace
from tests.server import live_server

ITEMS = "/collections/projects/items"
SHIPPED = ["salang-tunnel-2", "salang-highway-reconstruction"]  # the shipped store's 2 projects, in order
EDITOR, ADMIN = "ministry-of-education", "provincial-council"
PATCH_TYPE = {"Content-Type": "application/merge-patch+json"}


@dataclass
class Site:
    """A live server on one store, with an editor's and an admin's named key."""

    kind: str
    url: str
    settings: Settings
    editor: dict[str, str]
    admin: dict[str, str]
    client: httpx.Client

    def post(self, feature: dict[str, Any], headers: dict[str, str] | None = None, **params: str
             ) -> httpx.Response:
        """POST a feature as the editor (plus `headers`)."""
        return self.client.post(ITEMS, json=feature, headers={**self.editor, **(headers or {})},
                                params=params)

    def ids(self) -> list[str]:
        """The ids among the items now."""
        return [f["id"] for f in self.client.get(ITEMS, params={"limit": 1000}).json()["features"]]

    def feed(self, **params: str | int) -> dict[str, Any]:
        """One answer of GET /changes."""
        answer = self.client.get("/changes", params=params)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def _store_settings(kind: str, folder: Path, provinces_cache: Path, request: pytest.FixtureRequest
                    ) -> Settings:
    settings = workspace(folder, provinces_cache, write_rate_per_key=0, store_lock_timeout_s=30.0)
    if kind == "postgis":
        settings = settings.model_copy(update={"database_url": request.getfixturevalue("pg_url")})
    return settings


@pytest.fixture(params=["file", "postgis"])
def site(request: pytest.FixtureRequest, tmp_path: Path, provinces_cache: Path) -> Iterator[Site]:
    """A real server on the file store (a copy of the shipped one) or a fresh PostGIS schema."""
    settings = _store_settings(request.param, tmp_path / "ws", provinces_cache, request)
    ring = KeyRing(settings.keys_path())
    editor = {"Authorization": f"Bearer {ring.create(EDITOR, 'editor')}"}
    admin = {"Authorization": f"Bearer {ring.create(ADMIN, 'admin')}"}
    log = tmp_path / "server.log"
    with live_server(settings, log=log) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield Site(request.param, url, settings, editor, admin, client)
    assert "Traceback" not in log.read_text()


def _school(name: str, lon: float = 69.1723) -> dict[str, Any]:
    return point_feature(name=name, lon=lon)


# ------------------------------------------------------------------------------------------ history


def test_history_lists_every_change_with_who_and_what(site: Site) -> None:
    """Create, edit a field, change the status with a note and a source, move it, delete it: the
    history has each, in order, with the key's name and each field's value before and after."""
    made = site.post(_school("History school"))
    assert made.status_code == 201, made.text
    fid = made.json()["id"]
    url = f"{ITEMS}/{fid}"
    assert site.client.patch(url, json={"properties": {"budget_usd": 250000}},
                             headers={**site.editor, **PATCH_TYPE}).status_code == 200
    approve = {"properties": {"status": "approved"},
               "status_change": {"note": "Budget approved", "source": "https://example.org/decision-17"}}
    assert site.client.patch(url, json=approve, headers={**site.editor, **PATCH_TYPE}).status_code == 200
    moved = {"geometry": {"type": "Point", "coordinates": [69.18, 34.53]}}
    assert site.client.patch(url, json=moved, headers={**site.editor, **PATCH_TYPE}).status_code == 200
    assert site.client.delete(url, headers=site.admin).status_code == 204

    answer = site.client.get(f"{url}/history")
    assert answer.status_code == 200
    doc = answer.json()
    assert doc["id"] == fid and doc["deleted"] is True
    events = doc["events"]
    assert [e["op"] for e in events] == ["create", "update", "status", "update", "delete"]
    assert [e["by"] for e in events] == [EDITOR, EDITOR, EDITOR, EDITOR, ADMIN]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    created = {c["field"]: c for c in events[0]["fields"]}
    assert created["name"] == {"field": "name", "before": None, "after": "History school"}
    assert events[1]["fields"] == [{"field": "budget_usd", "before": None, "after": 250000}]
    assert events[2]["fields"] == [{"field": "status", "before": "proposed", "after": "approved"}]
    assert events[2]["status"] == {"from": "proposed", "to": "approved", "note": "Budget approved",
                                   "source": "https://example.org/decision-17"}
    assert events[3]["fields"] == [{"field": "geometry",
                                    "before": {"type": "Point", "coordinates": [69.1723, 34.5281]},
                                    "after": {"type": "Point", "coordinates": [69.18, 34.53]}}]
    assert "fields" not in events[4]
    assert all(e["at"].endswith("Z") for e in events)


def test_an_imported_project_was_created_by_the_key_that_imported_it(site: Site) -> None:
    """A CSV imported with the editor's key: the project's history and the feed name the editor."""
    data = b"name,category,status,lon,lat\nImported school,school,proposed,69.2,34.52\n"
    report = site.client.post("/collections/projects/import", params={"dry_run": "false"}, content=data,
                              headers={**site.editor, "Content-Type": "text/csv"}).json()
    assert report["written"] is True and len(report["ids"]) == 1, report
    fid = report["ids"][0]
    events = site.client.get(f"{ITEMS}/{fid}/history").json()["events"]
    assert [(e["op"], e["by"]) for e in events] == [("create", EDITOR)]
    created = [c for c in site.feed(limit=1000)["changes"] if c["id"] == fid]
    assert [(c["op"], c["by"]) for c in created] == [("create", EDITOR)]


def test_an_item_links_to_its_history(site: Site) -> None:
    """Each project links to its history as `history`; a never-made id has none (404)."""
    fid = site.post(_school("Linked school")).json()["id"]
    links = site.client.get(f"{ITEMS}/{fid}").json()["links"]
    history = [link for link in links if link["rel"] == "history"]
    assert [link["href"] for link in history] == [f"{site.url}{ITEMS}/{fid}/history"]
    page = site.client.get(f"{ITEMS}/{fid}", params={"f": "html"}).text
    assert f'<a href="{site.url}{ITEMS}/{fid}/history">' in page  # the HTML view links it too
    assert site.client.get(f"{ITEMS}/p-000000000000/history").status_code == 404


# ------------------------------------------------------------------------------ soft delete, restore


def test_a_deleted_project_is_gone_everywhere_but_its_history(site: Site) -> None:
    """DELETE hides the project from the items, the stats and the downloads; GET answers 410 with a
    link to its history, and writes to it answer 410 too."""
    fid = site.post(_school("Deleted school")).json()["id"]
    before = site.client.get("/stats").json()
    assert site.client.delete(f"{ITEMS}/{fid}", headers=site.admin).status_code == 204

    gone = site.client.get(f"{ITEMS}/{fid}")
    assert gone.status_code == 410
    assert gone.headers["content-type"].startswith("application/problem+json")
    history = f"{site.url}{ITEMS}/{fid}/history"
    assert gone.headers["link"] == f'<{history}>; rel="history"'
    assert gone.json()["errors"][0]["history"] == history
    assert fid not in site.ids()
    after = site.client.get("/stats").json()
    assert after != before
    download = site.client.get(f"{ITEMS}", params={"f": "json", "limit": 1000}).json()
    assert fid not in [f["id"] for f in download["features"]]
    assert fid not in site.client.get("/layers/projects.geojson").text
    for method, body in (("PUT", _school("Deleted school")), ("PATCH", {"properties": {"budget_usd": 1}})):
        answer = site.client.request(method, f"{ITEMS}/{fid}", json=body,
                                     headers={**site.editor, **(PATCH_TYPE if method == "PATCH" else {})})
        assert answer.status_code == 410, (method, answer.text)
    assert site.client.delete(f"{ITEMS}/{fid}", headers=site.admin).status_code == 410


def test_only_an_admin_restores_and_the_project_comes_back_as_it_was(site: Site) -> None:
    """An editor may not restore (403); an admin gets the project back as it was when deleted; a
    second restore is a conflict (409), and a never-made id is 404."""
    made = site.post(_school("Restored school")).json()
    fid = made["id"]
    assert site.client.delete(f"{ITEMS}/{fid}", headers=site.editor).status_code == 403
    assert site.client.delete(f"{ITEMS}/{fid}", headers=site.admin).status_code == 204
    restore = f"{ITEMS}/{fid}/restore"
    assert site.client.post(restore, headers=site.editor).status_code == 403
    assert site.client.post(restore).status_code == 401
    answer = site.client.post(restore, headers=site.admin)
    assert answer.status_code == 200, answer.text
    assert answer.json() == made
    assert answer.headers["location"] == f"{site.url}{ITEMS}/{fid}"
    assert site.client.get(f"{ITEMS}/{fid}").json()["properties"] == made["properties"]
    assert fid in site.ids()
    assert site.client.post(restore, headers=site.admin).status_code == 409
    assert site.client.post(f"{ITEMS}/p-000000000000/restore", headers=site.admin).status_code == 404
    ops = [e["op"] for e in site.client.get(f"{ITEMS}/{fid}/history").json()["events"]]
    assert ops == ["create", "delete", "restore"]


# ------------------------------------------------------------------------------------- idempotency


def test_a_retried_post_makes_one_project(site: Site) -> None:
    """The same Idempotency-Key twice: one project, and both answers name it; the retry says so."""
    feature = _school("Retried school")
    first = site.post(feature, {"Idempotency-Key": "7b1d2c9e-retry"})
    second = site.post(feature, {"Idempotency-Key": "7b1d2c9e-retry"})
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.headers["location"] == second.headers["location"]
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(site.ids()) == len(SHIPPED if site.kind == "file" else []) + 1
    # The same key with another body is a mistake: 422, nothing written.
    other = site.post(_school("Another school"), {"Idempotency-Key": "7b1d2c9e-retry"})
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert len(site.ids()) == len(SHIPPED if site.kind == "file" else []) + 1


def test_keys_of_two_clients_do_not_meet(site: Site) -> None:
    """One Idempotency-Key from two API keys names two requests: two projects."""
    key = {"Idempotency-Key": "same-key"}
    one = site.client.post(ITEMS, json=_school("Client one school"), headers={**site.editor, **key})
    two = site.client.post(ITEMS, json=_school("Client two school", lon=69.2),
                           headers={**site.admin, **key})
    assert (one.status_code, two.status_code) == (201, 201)
    assert one.headers["location"] != two.headers["location"]


@pytest.mark.parametrize("value", [b"", "é-key".encode(), b"x" * 256])
def test_a_bad_idempotency_key_is_refused(site: Site, value: bytes) -> None:
    """An empty, non-ASCII or over-long key: 400 naming the header, nothing written."""
    before = site.ids()
    answer = site.client.post(ITEMS, json=_school("Bad key school"),
                              headers={**{k.encode(): v.encode() for k, v in site.editor.items()},
                                       b"Idempotency-Key": value})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "Idempotency-Key"
    assert site.ids() == before


def test_concurrent_posts_with_one_key_make_one_project(site: Site) -> None:
    """Eight POSTs with one key, released together by a barrier: all answer 201 naming one project."""
    feature = _school("Concurrent school")
    start = threading.Barrier(8, timeout=30)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def post() -> None:
        with httpx.Client(base_url=site.url, timeout=30) as client:
            start.wait()
            answer = client.post(ITEMS, json=feature, headers={**site.editor, "Idempotency-Key": "burst"})
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers]
    assert len({a.headers["location"] for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 7
    assert len(site.ids()) == len(SHIPPED if site.kind == "file" else []) + 1


def test_a_retry_after_a_restart_gets_the_same_project(tmp_path: Path, provinces_cache: Path,
                                                      request: pytest.FixtureRequest) -> None:
    """The key is kept by the store, not the process: a new server on the same store answers a retry
    with the project the old one made."""
    for kind in ("file", "postgis"):
        settings = _store_settings(kind, tmp_path / kind, provinces_cache, request)
        editor = {"Authorization": f"Bearer {KeyRing(settings.keys_path()).create(EDITOR, 'editor')}",
                  "Idempotency-Key": "across-restarts"}
        feature = _school("Restart school")
        locations = []
        for _server in range(2):
            with live_server(settings) as url, httpx.Client(base_url=url, timeout=30) as client:
                answer = client.post(ITEMS, json=feature, headers=editor)
                assert answer.status_code == 201, answer.text
                locations.append(answer.headers["location"].removeprefix(url))
        assert locations[0] == locations[1], kind


# ------------------------------------------------------------------------------------------- feed


def _edit_a_little(site: Site) -> list[str]:
    """Create three projects, update one, change a status, delete one and restore it; their ids."""
    ids = [site.post(_school(f"Feed school {n}", lon=69.1 + n / 100)).json()["id"] for n in range(3)]
    patch = {**site.editor, **PATCH_TYPE}
    site.client.patch(f"{ITEMS}/{ids[0]}", json={"properties": {"budget_usd": 9}}, headers=patch)
    site.client.patch(f"{ITEMS}/{ids[1]}", json={"properties": {"status": "planned"}}, headers=patch)
    site.client.delete(f"{ITEMS}/{ids[2]}", headers=site.admin)
    site.client.delete(f"{ITEMS}/{ids[0]}", headers=site.admin)
    site.client.post(f"{ITEMS}/{ids[0]}/restore", headers=site.admin)
    return ids


def test_the_feed_lists_changes_in_order_with_a_cursor(site: Site) -> None:
    """Every change after `since`, in order; paging by the cursor covers each once; `since` as a time
    starts there; `next` links the following page."""
    start = site.feed(limit=1000)["cursor"]
    ids = _edit_a_little(site)
    whole = site.feed(since=start, limit=1000)
    ops = [(c["op"], c["id"]) for c in whole["changes"]]
    assert ops == [("create", ids[0]), ("create", ids[1]), ("create", ids[2]), ("update", ids[0]),
                   ("status", ids[1]), ("delete", ids[2]), ("delete", ids[0]), ("restore", ids[0])]
    assert whole["more"] is False
    assert [c["by"] for c in whole["changes"]][-3:] == [ADMIN, ADMIN, ADMIN]
    assert whole["changes"][5]["feature"] is None
    assert whole["changes"][4]["feature"]["properties"]["status"] == "planned"
    # Pages of three, following the cursor: the same changes, once each.
    paged, cursor = [], start
    while True:
        page = site.feed(since=cursor, limit=3)
        paged += page["changes"]
        cursor = page["cursor"]
        nexts = [link for link in page["links"] if link["rel"] == "next"]
        assert bool(nexts) == page["more"]
        if not page["more"]:
            break
    assert [c["seq"] for c in paged] == [c["seq"] for c in whole["changes"]]
    assert site.feed(since=cursor)["changes"] == []
    assert site.feed(since=cursor)["cursor"] == cursor
    # A time: the changes at or after it.
    fifth = whole["changes"][4]
    by_time = site.feed(since=fifth["at"], limit=1000)["changes"]
    assert by_time[0]["seq"] <= fifth["seq"]
    assert all(c["at"] >= fifth["at"] for c in by_time)  # one format, UTC: text order is time order
    assert {c["seq"] for c in whole["changes"][4:]} <= {c["seq"] for c in by_time}


@pytest.mark.parametrize("since", ["yesterday", "2026-05-10", "2026-05-10T00:00:00", "9" * 30, "-1",
                                   "²", "١٢"])  # Unicode digits are no cursor
def test_a_bad_since_is_a_400_naming_it(site: Site, since: str) -> None:
    """A time without its offset or a cursor this service never gave: 400 naming `since`."""
    answer = site.client.get("/changes", params={"since": since})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "since"


def test_a_second_store_synced_from_the_feed_alone_ends_identical(site: Site, tmp_path: Path) -> None:
    """Replay the whole feed, page by page, into an empty store: it ends with the same projects, in the
    same order, as the server's items."""
    _edit_a_little(site)
    copy_path = tmp_path / "copy" / "projects.geojson"
    copy_path.parent.mkdir()
    copy_path.write_text('{"type": "FeatureCollection", "features": []}')
    copy = GeoJSONFileStore(copy_path)
    try:
        cursor = ""
        while True:
            page = site.feed(since=cursor, limit=4)
            for change in page["changes"]:
                fid, feature = change["id"], change["feature"]
                if change["op"] == "create":
                    copy.add(feature)
                elif change["op"] in ("update", "status"):
                    copy.replace(fid, feature)
                elif change["op"] == "delete":
                    copy.delete(fid)
                else:
                    assert copy.restore(fid) == feature
            cursor = page["cursor"]
            if not page["more"]:
                break
        served = site.client.get(ITEMS, params={"limit": 1000}).json()["features"]
        for feature in served:
            feature.pop("links", None)
        assert list(copy.snapshot().features) == served
    finally:
        copy.close()


def test_the_feed_and_the_new_routes_are_in_the_openapi_document(site: Site) -> None:
    """/changes, the history, the restore and POST's Idempotency-Key are documented."""
    doc = site.client.get("/api").json()
    paths = doc["paths"]
    assert "since" in [p["name"] for p in paths["/changes"]["get"]["parameters"]]
    assert "/collections/projects/items/{feature_id}/history" in paths
    assert "/collections/projects/items/{feature_id}/restore" in paths
    post = paths["/collections/{collection_id}/items"]["post"]
    assert "Idempotency-Key" in [p["name"] for p in post["parameters"]]
