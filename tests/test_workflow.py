"""The status workflow on PUT and PATCH, what a status change records, the workflow document, and the
duplicate guard on POST (issue 14), through HTTP.

The expected transitions are written out by hand below (from the issue and the README's table), not
read from geo/workflow.py, so a change of the module's table fails here until the table is changed
on purpose in both places.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from geo.app import create_app
from geo.settings import Settings
from tests.conftest import AUTH, KEY, point_feature, workspace
from tests.server import live_server

ITEMS = "/collections/projects/items"
WORKFLOW = "/collections/projects/workflow"
WORKFLOW_REL = "urn:geo:rel:workflow"
PATCH_JSON = {**AUTH, "Content-Type": "application/merge-patch+json"}

STATUSES = ["proposed", "planned", "approved", "under_construction", "completed", "suspended", "cancelled"]
# The allowed changes, by hand: 17 of the 42 changes between two different statuses.
ALLOWED_BY_HAND = {
    "proposed": ["planned", "approved", "cancelled"],
    "planned": ["approved", "suspended", "cancelled"],
    "approved": ["under_construction", "suspended", "cancelled"],
    "under_construction": ["completed", "suspended", "cancelled"],
    "completed": [],
    "suspended": ["planned", "approved", "under_construction", "cancelled"],
    "cancelled": ["proposed"],
}
PAIRS = list(itertools.permutations(STATUSES, 2))
ALLOWED = [(a, b) for a, b in PAIRS if b in ALLOWED_BY_HAND[a]]
REFUSED = [(a, b) for a, b in PAIRS if b not in ALLOWED_BY_HAND[a]]
assert (len(PAIRS), len(ALLOWED), len(REFUSED)) == (42, 17, 25)

# The name GEO_API_KEYS keys are known by (geo/auth.py's docstring): `env-key-` and the first 6 hex
# digits of the key's SHA-256.
KEY_NAME = "env-key-" + hashlib.sha256(KEY.encode()).hexdigest()[:6]

# Kabul (point_feature's default place) and the length of a degree there. A degree of latitude at
# 34.53 N on WGS 84: 111132.954 - 559.822 cos(2 phi) + 1.175 cos(4 phi) = 110,932 m, so 50 m north is
# 0.000450727 degrees and 150 m is 0.001352181.
LON, LAT = 69.1723, 34.5281
M_PER_DEG_LAT = 110_932.0


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Iterator[TestClient]:
    """One app for the many transition cases (each makes its own project, of its own name); they write
    faster than the default rate per key (bursts of 100), so without one."""
    settings = workspace(tmp_path_factory.mktemp("workflow"), provinces_cache, api_keys=KEY,
                         write_rate_per_key=0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _create(client: TestClient, status: str = "proposed", **props: Any) -> str:
    response = client.post(ITEMS, headers=AUTH, json=point_feature(status=status, **props))
    assert response.status_code == 201, response.text
    return response.headers["location"].replace("http://testserver", "")


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    return body


@pytest.mark.parametrize("status", STATUSES)
def test_a_new_project_may_start_in_any_status(shared: TestClient, status: str) -> None:
    url = _create(shared, status, name=f"Starts {status}")
    history = shared.get(url).json()["properties"]["status_history"]
    assert [h["status"] for h in history] == [status]


@pytest.mark.parametrize(("before", "after"), ALLOWED)
def test_every_allowed_change_is_written(shared: TestClient, before: str, after: str) -> None:
    url = _create(shared, before, name=f"Allowed {before} to {after}")
    response = shared.patch(url, headers=PATCH_JSON, json={"properties": {"status": after}})
    assert response.status_code == 200, response.text
    props = shared.get(url).json()["properties"]
    assert props["status"] == after
    assert [h["status"] for h in props["status_history"]] == [before, after]


@pytest.mark.parametrize("status", STATUSES)
def test_keeping_the_status_is_allowed_and_records_nothing(shared: TestClient, status: str) -> None:
    url = _create(shared, status, name=f"Kept {status}")
    response = shared.patch(url, headers=PATCH_JSON, json={"properties": {"status": status, "budget_usd": 5}})
    assert response.status_code == 200, response.text
    assert [h["status"] for h in response.json()["properties"]["status_history"]] == [status]


@pytest.mark.parametrize(("before", "after"), REFUSED)
def test_every_refused_change_answers_409_with_the_allowed_ones(shared: TestClient, before: str,
                                                                 after: str) -> None:
    url = _create(shared, before, name=f"Refused {before} to {after}")
    stored = shared.get(url)
    problem = _problem(shared.patch(url, headers=PATCH_JSON,
                                    json={"properties": {"status": after, "budget_usd": 99}}), 409)
    assert problem["type"].endswith("status-transition")
    [error] = problem["errors"]
    assert error["field"] == "status" and error["current"] == before
    assert error["allowed"] == ALLOWED_BY_HAND[before]
    assert before in problem["detail"] and after in problem["detail"]
    # Nothing was written: not the status, not the budget sent with it.
    again = shared.get(url)
    assert again.headers["etag"] == stored.headers["etag"] and again.json() == stored.json()


def test_put_follows_the_same_rules(shared: TestClient) -> None:
    url = _create(shared, "cancelled", name="Put through the workflow")
    whole = point_feature(name="Put through the workflow", status="completed")
    problem = _problem(shared.put(url, headers=AUTH, json=whole), 409)
    assert problem["errors"][0]["field"] == "status" and problem["errors"][0]["allowed"] == ["proposed"]
    assert shared.get(url).json()["properties"]["status"] == "cancelled"
    revived = {**point_feature(name="Put through the workflow", status="proposed"),
               "status_change": {"note": "Funding found again", "source": "https://example.org/revival"}}
    response = shared.put(url, headers=AUTH, json=revived)
    assert response.status_code == 200, response.text
    last = response.json()["properties"]["status_history"][-1]
    assert (last["status"], last["note"], last["source"]) == ("proposed", "Funding found again",
                                                              "https://example.org/revival")
    assert "status_change" not in response.json()["properties"] and "status_change" not in response.json()


def test_a_change_records_when_who_why_and_the_source(shared: TestClient) -> None:
    url = _create(shared, "approved", name="Recorded change")
    body = {"properties": {"status": "suspended"},
            "status_change": {"note": "  Contractor left the site; funds frozen  ",
                              "source": "https://news.example.org/2026/03/site-halted"}}
    response = shared.patch(url, headers=PATCH_JSON, json=body)
    assert response.status_code == 200, response.text
    props = shared.get(url).json()["properties"]
    last = props["status_history"][-1]
    assert last == {"status": "suspended", "at": props["updated_at"], "by": KEY_NAME,
                    "note": "Contractor left the site; funds frozen",
                    "source": "https://news.example.org/2026/03/site-halted"}
    assert props["status_history"][0]["by"] == KEY_NAME  # the creation too
    # Not a property, and the key itself appears nowhere.
    assert "status_change" not in props and "note" not in props
    assert KEY not in shared.get(url).text


def test_a_new_project_may_say_why_it_starts(shared: TestClient) -> None:
    body = {**point_feature(name="Started with a note", status="approved"),
            "status_change": {"note": "Approved in the 2026 budget"}}
    response = shared.post(ITEMS, headers=AUTH, json=body)
    assert response.status_code == 201, response.text
    [first] = response.json()["properties"]["status_history"]
    assert first["note"] == "Approved in the 2026 budget" and "source" not in first


@pytest.mark.parametrize(("change", "field"), [
    ({"source": "ftp://example.org/decision"}, "status_change.source"),
    ({"source": "javascript:alert(1)"}, "status_change.source"),
    ({"source": "https://example.org/" + "a" * 2000}, "status_change.source"),
    ({"note": "x" * 1001}, "status_change.note"),
    ({"note": ""}, "status_change.note"),
    ({"note": "line\u202eevil"}, "status_change.note"),
    ({"by": "someone else"}, "status_change.by"),
    ("a string", "status_change"),
])
def test_a_wrong_status_change_is_refused_naming_its_field(shared: TestClient, change: Any,
                                                           field: str) -> None:
    url = _create(shared, "proposed", name=f"Wrong change {field} {str(change)[:30]}")
    before = shared.get(url).json()
    problem = _problem(shared.patch(url, headers=PATCH_JSON, json={
        "properties": {"status": "planned"}, "status_change": change}), 422)
    assert [e["field"] for e in problem["errors"]] == [field]
    assert shared.get(url).json() == before


def test_the_longest_note_and_source_are_kept(shared: TestClient) -> None:
    url = _create(shared, "proposed", name="Longest note")
    source = "https://example.org/" + "a" * (2000 - len("https://example.org/"))
    response = shared.patch(url, headers=PATCH_JSON, json={
        "properties": {"status": "planned"}, "status_change": {"note": "n" * 1000, "source": source}})
    assert response.status_code == 200, response.text
    last = response.json()["properties"]["status_history"][-1]
    assert len(last["note"]) == 1000 and last["source"] == source


def test_a_status_change_without_a_change_of_status_is_refused(shared: TestClient) -> None:
    url = _create(shared, "planned", name="Note without a change")
    problem = _problem(shared.patch(url, headers=PATCH_JSON, json={
        "properties": {"budget_usd": 10}, "status_change": {"note": "nothing changed"}}), 422)
    assert problem["errors"][0]["field"] == "status_change"
    assert "budget_usd" not in shared.get(url).json()["properties"]


def test_the_workflow_document(shared: TestClient) -> None:
    response = shared.get(WORKFLOW)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    doc = response.json()
    assert doc["statuses"] == STATUSES
    assert doc["transitions"] == ALLOWED_BY_HAND
    assert doc["initial"] == STATUSES and doc["final"] == ["completed"]
    assert doc["change"]["member"] == "status_change"
    assert set(doc["change"]["schema"]["properties"]) == {"note", "source"}
    assert {"rel": "self", "href": f"http://testserver{WORKFLOW}"}.items() <= doc["links"][0].items()
    cached = shared.get(WORKFLOW, headers={"If-None-Match": response.headers["etag"]})
    assert cached.status_code == 304


def test_the_projects_collection_links_to_its_workflow(shared: TestClient) -> None:
    links = shared.get("/collections/projects").json()["links"]
    [link] = [ln for ln in links if ln["rel"] == WORKFLOW_REL]
    assert link["href"] == f"http://testserver{WORKFLOW}" and link["type"] == "application/json"
    others = shared.get("/collections/salang").json()["links"]
    assert not [ln for ln in others if ln["rel"] == WORKFLOW_REL]


def test_the_openapi_document_describes_the_workflow_and_the_guard(shared: TestClient) -> None:
    doc = shared.get("/api").json()
    assert "get" in doc["paths"][WORKFLOW]
    item = doc["paths"]["/collections/{collection_id}/items/{feature_id}"]
    items = doc["paths"]["/collections/{collection_id}/items"]
    for operation in (item["put"], item["patch"], items["post"]):
        assert "409" in operation["responses"]
    patch_schema = item["patch"]["requestBody"]["content"]["application/merge-patch+json"]["schema"]
    assert set(patch_schema["properties"]["status_change"]["properties"]) == {"note", "source"}
    put_schema = item["put"]["requestBody"]["content"]["application/geo+json"]["schema"]
    assert any("status_change" in part.get("properties", {}) for part in put_schema["allOf"])
    [duplicate] = [p for p in items["post"]["parameters"] if p["name"] == "duplicate"]
    assert duplicate["in"] == "query" and duplicate["schema"]["enum"] == ["allow"]


def _north(metres: float) -> float:
    return LAT + metres / M_PER_DEG_LAT


@pytest.fixture
def original(client: TestClient) -> str:
    """A project in Kabul that the duplicate cases are compared with."""
    body = point_feature(name="Karte Char clinic", category="health")
    response = client.post(ITEMS, headers=AUTH, json=body)
    assert response.status_code == 201, response.text
    fid: str = response.json()["id"]
    return fid


def test_a_duplicate_50_m_away_answers_409_naming_the_project(client: TestClient, original: str) -> None:
    # Another case and other spaces: the same name.
    body = point_feature(LON, _north(50), name="  KARTE   char Clinic ", category="health")
    problem = _problem(client.post(ITEMS, headers=AUTH, json=body), 409)
    [error] = problem["errors"]
    assert error["field"] == "name"
    found = error["duplicate_of"]
    assert found["id"] == original and found["href"] == f"http://testserver{ITEMS}/{original}"
    assert found["distance_m"] == pytest.approx(50, abs=0.5)
    assert client.get(found["href"].replace("http://testserver", "")).status_code == 200
    ids = [f["id"] for f in client.get(ITEMS, params={"limit": 100}).json()["features"]]
    assert len(ids) == 3  # the 2 shipped projects and the original: nothing added


def test_the_same_name_150_m_away_or_of_another_category_is_added(client: TestClient, original: str) -> None:
    far = point_feature(LON, _north(150), name="Karte Char clinic", category="health")
    assert client.post(ITEMS, headers=AUTH, json=far).status_code == 201
    other = point_feature(LON, _north(50), name="Karte Char clinic", category="school")
    assert client.post(ITEMS, headers=AUTH, json=other).status_code == 201
    renamed = point_feature(LON, _north(50), name="Karte Char clinic 2", category="health")
    assert client.post(ITEMS, headers=AUTH, json=renamed).status_code == 201


def test_the_client_may_say_it_is_a_different_project(client: TestClient, original: str) -> None:
    body = point_feature(LON, _north(50), name="Karte Char clinic", category="health")
    response = client.post(ITEMS, headers=AUTH, json=body, params={"duplicate": "allow"})
    assert response.status_code == 201, response.text
    assert response.json()["id"] != original
    # Any other value is not a way around the guard.
    _problem(client.post(ITEMS, headers=AUTH, json=body, params={"duplicate": "yes"}), 400)


def test_a_duplicate_of_a_shipped_line_is_found_beside_it(client: TestClient) -> None:
    # 30 m east of the Second Salang Tunnel's line (lon 69.026944, lat 35.268 to 35.376): a degree of
    # longitude at 35.30 N is 111,412.84 cos(phi) - 93.5 cos(3 phi) = 90,954.5 m, so 30 m is 0.00032984.
    body = point_feature(69.026944 + 0.00032984, 35.30, name="second salang tunnel", category="transport")
    problem = _problem(client.post(ITEMS, headers=AUTH, json=body), 409)
    found = problem["errors"][0]["duplicate_of"]
    assert found["id"] == "salang-tunnel-2" and found["distance_m"] == pytest.approx(30, abs=0.5)


def test_on_a_real_server(settings: Settings, tmp_path: Path) -> None:
    """The workflow, a status change's record and the duplicate guard through uvicorn, without a traceback."""
    log = tmp_path / "server.log"
    with live_server(settings, log=log) as base:
        created = httpx.post(f"{base}{ITEMS}", headers=AUTH, timeout=30,
                             json=point_feature(name="Live school", status="under_construction"))
        assert created.status_code == 201, created.text
        url = created.headers["location"]
        back = {"properties": {"status": "proposed"}}
        refused = httpx.patch(url, headers=PATCH_JSON, timeout=30, json=back)
        assert refused.status_code == 409
        assert refused.json()["errors"][0]["allowed"] == ["completed", "suspended", "cancelled"]
        done = httpx.patch(url, headers=PATCH_JSON, timeout=30, json={
            "properties": {"status": "completed"},
            "status_change": {"note": "Handed over", "source": "http://example.org/handover"}})
        assert done.status_code == 200, done.text
        last = httpx.get(url, timeout=30).json()["properties"]["status_history"][-1]
        assert (last["status"], last["by"], last["note"]) == ("completed", KEY_NAME, "Handed over")
        again = httpx.post(f"{base}{ITEMS}", headers=AUTH, timeout=30,
                           json=point_feature(name="live school", status="proposed"))
        assert again.status_code == 409 and again.json()["errors"][0]["duplicate_of"]["href"] == url
        assert httpx.get(f"{base}{WORKFLOW}", timeout=30).json()["transitions"] == ALLOWED_BY_HAND
    assert "Traceback" not in log.read_text()
