"""OGC API - Features Part 4 on `projects`: PUT, PATCH, DELETE, OPTIONS, ETag and If-Match, over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from geo import fsutil
from geo.app import create_app
from geo.http.conditional import base_etag, feature_etag
from geo.settings import Settings
from tests.conftest import AUTH, point_feature

ITEMS = "/collections/projects/items"


def _create(client: TestClient, **props: Any) -> tuple[str, dict[str, Any], str]:
    response = client.post(ITEMS, headers=AUTH, json=point_feature(**props))
    assert response.status_code == 201, response.text
    url = response.headers["location"].replace("http://testserver", "")
    return url, response.json(), response.headers["etag"]


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status and problem["detail"] and problem["type"]
    return problem


def _methods(header: str) -> list[str]:
    return [m.strip() for m in header.split(",")]


def test_options_says_what_each_collection_allows(client: TestClient) -> None:
    assert client.options(ITEMS).headers["allow"] == "GET, HEAD, OPTIONS, POST"
    one = client.options(f"{ITEMS}/salang-tunnel-2")
    assert one.headers["allow"] == "GET, HEAD, OPTIONS, PUT, PATCH, DELETE"
    assert client.options("/collections/provinces/items").headers["allow"] == "GET, HEAD, OPTIONS"
    assert client.options("/collections/salang/items/salang-tunnel").headers["allow"] == "GET, HEAD, OPTIONS"
    assert client.options("/collections/nope/items").status_code == 404


@pytest.mark.parametrize("path", [ITEMS, f"{ITEMS}/salang-tunnel-2", "/collections/provinces/items",
                                  "/collections/salang/items/salang-tunnel"])
def test_req_create_replace_delete_options_response_a_b_200_with_allow(client: TestClient, path: str) -> None:
    """/req/create-replace-delete/options-response A: success is 200 (not 204); B: it has `Allow`."""
    response = client.options(path)
    assert response.status_code == 200
    assert "GET" in _methods(response.headers["allow"])


def test_req_create_replace_delete_options_response_c_no_writes_on_a_missing_feature(
        client: TestClient, settings: Settings) -> None:
    """/req/create-replace-delete/options-response C: `Allow` is what is allowed at the time. A feature that
    does not exist cannot be replaced, updated or deleted: OPTIONS answers 404, like GET (Part 4's
    exceptions are the HTTP status codes: 404 "the requested resource does not exist")."""
    missing = client.options(f"{ITEMS}/no-such-project")
    _problem(missing, 404)
    assert "PUT" not in missing.headers.get("allow", "")
    deleted, _, _ = _create(client)
    assert client.delete(deleted, headers=AUTH).status_code == 204
    _problem(client.options(deleted), 404)


def test_options_names_the_patch_and_post_media_types(client: TestClient) -> None:
    """RFC 5789 3.1 (Accept-Patch where PATCH is allowed; Part 4 draft /req/update/options-accept-patch)
    and the LDP Accept-Post (Part 4 draft /req/create-replace-delete/options-accept-post)."""
    one = client.options(f"{ITEMS}/salang-tunnel-2")
    assert "application/merge-patch+json" in _methods(one.headers["accept-patch"])  # RFC 7396's type
    items = client.options(ITEMS)
    assert "application/geo+json" in _methods(items.headers["accept-post"])  # RFC 7946's type
    read_only = client.options("/collections/salang/items/salang-tunnel")
    assert "accept-patch" not in read_only.headers and "accept-post" not in read_only.headers


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("if_match", ['"abc"', "*"])
def test_req_create_replace_delete_put_rid_exception_b_if_match_on_a_missing_feature_is_412(
        client: TestClient, settings: Settings, method: str, if_match: str) -> None:
    """/req/create-replace-delete/put-rid-exception B: with `If-Match` on a resource that does not exist,
    412 and nothing created. RFC 9110 13.1.1: If-Match (even `*`) is false without a current
    representation; PATCH and DELETE evaluate it the same way."""
    before = settings.projects.read_bytes()
    url = f"{ITEMS}/no-such-project"
    body = {} if method == "DELETE" else {"json": point_feature()}
    failed = _problem(client.request(method, url, headers={**AUTH, "If-Match": if_match}, **body), 412)
    assert failed["errors"][0]["field"] == "If-Match"
    assert settings.projects.read_bytes() == before
    _problem(client.get(url), 404)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_req_create_replace_delete_put_rid_exception_a_without_if_match_a_missing_feature_is_404(
        client: TestClient, method: str) -> None:
    """/req/create-replace-delete/put-rid-exception A: no PUT-create here, so a missing feature is 404."""
    body = {} if method == "DELETE" else {"json": point_feature()}
    _problem(client.request(method, f"{ITEMS}/no-such-project", headers=AUTH, **body), 404)


@pytest.mark.parametrize("method, path, allow", [
    # RFC 9110 15.5.6: a 405 lists the target resource's currently supported methods, all of them.
    ("POST", f"{ITEMS}/salang-tunnel-2", "GET, HEAD, OPTIONS, PUT, PATCH, DELETE"),
    ("PUT", ITEMS, "GET, HEAD, OPTIONS, POST"),
    ("DELETE", ITEMS, "GET, HEAD, OPTIONS, POST"),
    ("PUT", "/collections/provinces/items", "GET, HEAD, OPTIONS"),
    ("POST", "/collections/provinces/items", "GET, HEAD, OPTIONS"),
    ("POST", "/collections/provinces/items/AF-KAB", "GET, HEAD, OPTIONS"),
    ("DELETE", "/collections/salang/items/salang-tunnel", "GET, HEAD, OPTIONS"),
    ("DELETE", "/collections", "GET, HEAD"),
])
def test_a_405_allows_every_method_the_resource_supports(client: TestClient, method: str, path: str,
                                                         allow: str) -> None:
    response = client.request(method, path, headers=AUTH)
    _problem(response, 405)
    assert response.headers["allow"] == allow


def test_a_405_offers_no_writes_when_writes_are_off(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"api_keys": None}))) as locked:
        response = locked.post(f"{ITEMS}/salang-tunnel-2")
        _problem(response, 405)
        assert response.headers["allow"] == "GET, HEAD, OPTIONS"


def test_a_patch_in_another_media_type_is_415_with_accept_patch(client: TestClient,
                                                                settings: Settings) -> None:
    """RFC 5789 2.2: an unsupported patch document is refused with 415 and `Accept-Patch`."""
    before = settings.projects.read_bytes()
    for media in ("text/plain", "application/xml", "application/json-patch+json"):
        refused = client.patch(f"{ITEMS}/salang-tunnel-2", headers={**AUTH, "Content-Type": media},
                               content=b'{"properties": {"status": "approved"}}')
        _problem(refused, 415)
        assert "application/merge-patch+json" in _methods(refused.headers["accept-patch"])
    assert settings.projects.read_bytes() == before


def test_req_update_patch_content_type_b_a_patch_without_content_type_is_400(client: TestClient) -> None:
    """/req/update/patch-content-type B: no `Content-Type` on a PATCH is a 400 client error."""
    request = client.build_request("PATCH", f"{ITEMS}/salang-tunnel-2", headers=AUTH,
                                   content=b'{"properties": {"status": "approved"}}')
    assert "content-type" not in request.headers  # raw bytes: the client names no type
    problem = _problem(client.send(request), 400)
    assert problem["errors"][0]["field"] == "Content-Type"


@pytest.mark.parametrize("path, method", [(ITEMS, "post"), (f"{ITEMS}/{{featureId}}", "put"),
                                          (f"{ITEMS}/{{featureId}}", "patch"),
                                          (f"{ITEMS}/{{featureId}}", "delete")])
def test_the_write_operations_document_their_refusals(client: TestClient, path: str, method: str) -> None:
    paths = client.get("/api").json()["paths"]
    template = path.replace("projects", "{collectionId}")
    operation = next(item for name, item in paths.items()
                     if name.replace("{collection_id}", "{collectionId}").replace(
                         "{feature_id}", "{featureId}") == template)[method]
    responses = operation["responses"]
    for code in ("401", "412", "429", "503") if method != "post" else ("401", "429", "503"):
        assert code in responses, (method, code)
    assert responses["429"]["headers"]["Retry-After"]["required"] is True
    assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True
    assert responses["405"]["headers"]["Allow"]["required"] is True


def test_options_without_keys_offers_no_writes(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"api_keys": None}))) as client:
        assert client.options(ITEMS).headers["allow"] == "GET, HEAD, OPTIONS"


def test_put_replaces_and_keeps_server_fields(client: TestClient) -> None:
    url, created, _ = _create(client, budget_usd=1000, funders=["Ministry"])
    body = point_feature(62.2, 34.35, name="Herat school", status="approved", id="other",
                         province="AF-KAB", created_at="1999-01-01T00:00:00Z", status_history=[])
    response = client.put(url, headers=AUTH, json=body)
    assert response.status_code == 200, response.text
    new = response.json()
    props = new["properties"]
    assert new["id"] == created["id"] and props["name"] == "Herat school"
    # Server-set fields come from the server: the province from the new geometry, the rest kept or moved.
    assert props["province"] == "AF-HER" and props["province_name"] == "Herat"
    assert props["created_at"] == created["properties"]["created_at"]
    assert props["updated_at"] >= created["properties"]["updated_at"]
    assert [h["status"] for h in props["status_history"]] == ["proposed", "approved"]
    assert props["status_history"][-1]["at"] == props["updated_at"]
    # A replacement replaces: what the new body leaves out is gone.
    assert "budget_usd" not in props and "funders" not in props
    assert client.get(url).json()["properties"]["name"] == "Herat school"


def test_put_with_the_same_status_adds_no_history(client: TestClient) -> None:
    url, _, _ = _create(client)
    props = client.put(url, headers=AUTH, json=point_feature(name="Renamed")).json()["properties"]
    assert [h["status"] for h in props["status_history"]] == ["proposed"]


def test_patch_merges_properties(client: TestClient) -> None:
    url, created, _ = _create(client, budget_usd=1000, description="first")
    response = client.patch(url, headers={**AUTH, "Content-Type": "application/merge-patch+json"},
                            json={"properties": {"status": "approved", "description": None,
                                                 "end_date": "2030-01-01", "province": "AF-HER"}})
    assert response.status_code == 200, response.text
    props = response.json()["properties"]
    assert props["status"] == "approved" and props["budget_usd"] == 1000
    assert "description" not in props and props["end_date"] == "2030-01-01"
    assert props["province"] == "AF-KAB"  # never taken from the client
    assert [h["status"] for h in props["status_history"]] == ["proposed", "approved"]
    assert response.json()["geometry"] == created["geometry"]


def test_patch_geometry_recomputes_the_province(client: TestClient) -> None:
    url, _, _ = _create(client)
    mazar = {"type": "Point", "coordinates": [67.11, 36.71]}
    moved = client.patch(url, headers=AUTH, json={"geometry": mazar})
    assert moved.status_code == 200
    assert moved.json()["properties"]["province"] == "AF-BAL"
    assert moved.json()["properties"]["province_name"] == "Balkh"
    balkh = client.get(ITEMS, params={"province": "AF-BAL"}).json()["features"]
    names = [f["properties"]["name"] for f in balkh]
    assert names == ["Girls' secondary school"]


@pytest.mark.parametrize("patch, status, field", [
    ({"properties": {"name": None}}, 422, "properties.name"),
    ({"properties": {"status": "finished"}}, 422, "properties.status"),
    ({"properties": {"budget_usd": -1}}, 422, "properties.budget_usd"),
    ({"properties": {"colour": "red"}}, 422, "properties.colour"),
    ({"properties": "closed"}, 422, "properties"),
    ({"geometry": None}, 422, "geometry"),
    ({"geometry": {"type": "Point", "coordinates": [2.35, 48.85]}}, 422, "geometry"),
    ({"owner": "me"}, 422, "owner"),
    (["not", "an", "object"], 422, "body"),
])
def test_bad_patches_change_nothing(client: TestClient, settings: Settings, patch: Any, status: int,
                                    field: str) -> None:
    url, _, _ = _create(client)
    before = settings.projects.read_bytes()
    problem = _problem(client.patch(url, headers=AUTH, json=patch), status)
    assert field in [e["field"] for e in problem["errors"]], problem
    assert settings.projects.read_bytes() == before


def test_put_validates_like_post(client: TestClient, settings: Settings) -> None:
    url, _, _ = _create(client)
    before = settings.projects.read_bytes()
    body = point_feature(category="castle")
    assert "properties.category" in [e["field"] for e in _problem(client.put(url, headers=AUTH, json=body),
                                                                   422)["errors"]]
    _problem(client.put(url, headers={**AUTH, "Content-Type": "application/json"}, content=b"{oops"), 400)
    _problem(client.put(url, headers={**AUTH, "Content-Type": "text/plain"}, content=b"x"), 415)
    huge = point_feature(description="x" * (settings.max_body_bytes + 10))
    _problem(client.put(url, headers=AUTH, json=huge), 413)
    assert settings.projects.read_bytes() == before


def test_delete(client: TestClient) -> None:
    url, _, _ = _create(client)
    before = client.get(ITEMS).json()["numberMatched"]
    assert client.delete(url, headers=AUTH).status_code == 204
    # Deleted, not erased (issue 14): 410 Gone, with its history; a never-made id stays a 404.
    _problem(client.get(url), 410)
    _problem(client.delete(url, headers=AUTH), 410)
    _problem(client.get(f"{ITEMS}/p-000000000000"), 404)
    assert client.get(ITEMS).json()["numberMatched"] == before - 1


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_writes_need_the_same_auth_as_post(client: TestClient, method: str) -> None:
    url, _, _ = _create(client)
    kwargs: dict[str, Any] = {} if method == "delete" else {"json": point_feature()}
    call = getattr(client, method)
    assert "Bearer" in _problem(call(url, **kwargs), 401)["detail"]
    _problem(call(url, headers={"Authorization": "Bearer wrong"}, **kwargs), 401)
    assert client.get(url).status_code == 200


def test_writes_refused_without_keys_and_on_read_only_collections(client: TestClient,
                                                                  settings: Settings) -> None:
    problem = _problem(client.delete("/collections/salang/items/salang-tunnel", headers=AUTH), 405)
    assert "read-only" in problem["detail"]
    _problem(client.patch("/collections/provinces/items/AF-KAB", headers=AUTH, json={}), 405)
    with TestClient(create_app(settings.model_copy(update={"api_keys": None}))) as locked:
        _problem(locked.delete(f"{ITEMS}/salang-tunnel-2", headers=AUTH), 403)
    _problem(client.put(f"{ITEMS}/nope", headers=AUTH, json=point_feature()), 404)


def test_etag_and_if_match(client: TestClient, settings: Settings) -> None:
    url, _, created_etag = _create(client)
    etag = client.get(url).headers["etag"]
    # The same version; a GET may be gzipped (an item with its links passes 1 kB), whose tag is marked.
    assert base_etag(etag) == created_etag
    changed = client.patch(url, headers={**AUTH, "If-Match": etag},
                           json={"properties": {"status": "planned"}})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert base_etag(client.get(url).headers["etag"]) == changed.headers["etag"]
    # A second writer still holding the old ETag is refused, and nothing changes.
    before = settings.projects.read_bytes()
    stale = _problem(client.patch(url, headers={**AUTH, "If-Match": etag},
                                  json={"properties": {"status": "cancelled"}}), 412)
    assert stale["errors"][0]["field"] == "If-Match"
    _problem(client.put(url, headers={**AUTH, "If-Match": etag}, json=point_feature()), 412)
    _problem(client.delete(url, headers={**AUTH, "If-Match": etag}), 412)
    assert settings.projects.read_bytes() == before
    assert client.patch(url, headers={**AUTH, "If-Match": "*"}, json={}).status_code == 200
    current = client.get(url).headers["etag"]
    assert client.delete(url, headers={**AUTH, "If-Match": current}).status_code == 204


def test_a_write_to_one_feature_leaves_the_others_etags(client: TestClient) -> None:
    first, _, _ = _create(client, name="First")
    second, _, second_etag = _create(client, name="Second")
    client.patch(first, headers=AUTH, json={"properties": {"status": "planned"}})
    assert client.get(second).headers["etag"] == second_etag
    assert client.patch(second, headers={**AUTH, "If-Match": second_etag}, json={}).status_code == 200


def test_two_stores_with_the_same_etag_cannot_both_write(settings: Settings,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Two services on one store file, as two worker processes are: each has its own store, so they meet
    only at the cross-process file lock and the re-read under it. Both writers read the same ETag, then
    both reach the store's write lock before either takes it (a barrier in front of the lock): the writes
    overlap by construction. Exactly one wins; the other's If-Match, checked under the lock against the
    file as it now is, fails with 412. A check made before the lock (on the snapshot) lets both win."""
    url = f"{ITEMS}/salang-tunnel-2"
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        etag = one.get(url).headers["etag"]
        assert two.get(url).headers["etag"] == etag
        both_at_the_lock = threading.Barrier(2, timeout=30)
        take_lock = fsutil.exclusive_lock  # what the store takes (geo.store.geojson_file imports it)

        @contextmanager
        def after_both_arrive(path: Path, timeout: float) -> Iterator[None]:
            both_at_the_lock.wait()  # each writer waits here until the other has come this far too
            with take_lock(path, timeout):
                yield

        monkeypatch.setattr("geo.store.geojson_file.exclusive_lock", after_both_arrive)
        results: dict[str, int] = {}

        def write(client: TestClient, status: str) -> None:
            results[status] = client.patch(url, headers={**AUTH, "If-Match": etag},
                                           json={"properties": {"status": status}}).status_code

        threads = [threading.Thread(target=write, args=(client, status))
                   for client, status in ((one, "approved"), (two, "cancelled"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not both_at_the_lock.broken, "the two writes did not both reach the lock"
        assert sorted(results.values()) == [200, 412], results
        monkeypatch.undo()
        winner = next(status for status, code in results.items() if code == 200)
        for client in (one, two):
            stored = client.get(url).json()["properties"]
            assert stored["status"] == winner
            assert sum(h["status"] in ("approved", "cancelled") for h in stored["status_history"]) == 1


def _interleaved(settings: Settings, times: int,
                 if_match: str | None) -> tuple[httpx.Response, list[int], dict[str, Any]]:
    """A PATCH by one service, and `times` writes by a second service on the same file (another worker
    process) each landing while the first is checking its new version, after it read the feature and
    before it takes the store's lock. Returns the first's answer, the second's statuses and the feature
    as stored at the end."""
    url = f"{ITEMS}/salang-tunnel-2"
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        catalogue = one.app.state.catalogue  # type: ignore[attr-defined]
        place = catalogue.place
        theirs: list[int] = []

        def place_after_another_write(geom: Any) -> Any:
            if len(theirs) < times:
                budget = 1000 + len(theirs)
                theirs.append(two.patch(url, headers=AUTH, json={"properties": {"budget_usd": budget}})
                              .status_code)
            return place(geom)

        catalogue.place = place_after_another_write
        headers = {**AUTH, **({"If-Match": if_match} if if_match else {})}
        mine = one.patch(url, headers=headers, json={"properties": {"status": "approved"}})
        catalogue.place = place
        return mine, theirs, one.get(url).json()


def test_a_patch_is_rebuilt_on_a_write_that_landed_while_it_was_checked(settings: Settings) -> None:
    """No lost update: the PATCH was merged into the version it read, and another write changed the
    feature before it was stored. The store refuses to write over a version the PATCH was not built
    from; the PATCH is merged again into the new version, so both changes are kept."""
    mine, theirs, stored = _interleaved(settings, times=1, if_match=None)
    assert theirs == [200]
    assert mine.status_code == 200, mine.text
    props = stored["properties"]
    assert props["status"] == "approved" and props["budget_usd"] == 1000  # both writes are there
    assert [h["status"] for h in props["status_history"]].count("approved") == 1
    assert mine.json()["properties"] == props  # the answer is what was stored


def test_an_if_match_that_held_when_read_but_not_when_written_is_a_412(settings: Settings) -> None:
    original = next(f for f in orjson.loads(settings.projects.read_bytes())["features"]
                    if f["id"] == "salang-tunnel-2")
    etag = feature_etag(orjson.dumps(original))  # what GET sent before both writes
    mine, theirs, stored = _interleaved(settings, times=1, if_match=etag)
    assert theirs == [200]
    problem = _problem(mine, 412)
    assert problem["errors"][0]["field"] == "If-Match"
    assert stored["properties"]["budget_usd"] == 1000 and stored["properties"]["status"] != "approved"


def test_a_patch_that_keeps_colliding_gives_up_with_a_503_and_writes_nothing(settings: Settings) -> None:
    """Each attempt finds the feature changed again before it is stored: after three attempts the answer
    is 503 with Retry-After (the client sent no If-Match, so 412 would be wrong), and nothing of the
    PATCH is stored."""
    mine, theirs, stored = _interleaved(settings, times=3, if_match=None)
    assert theirs == [200, 200, 200]
    problem = _problem(mine, 503)
    assert problem["type"].endswith("store-busy") and mine.headers["retry-after"] == "2"
    assert stored["properties"]["budget_usd"] == 1002 and stored["properties"]["status"] != "approved"


def _nested(depth: int, leaf: str = '"x"') -> str:
    """JSON text of an object nested `depth` levels deep around `leaf` (json.dumps would recurse)."""
    return '{"a":' * depth + leaf + "}" * depth


def _send(client: TestClient, method: str, url: str, text: str) -> httpx.Response:
    return client.request(method, url, content=text.encode(),
                          headers={**AUTH, "Content-Type": "application/json"})


@pytest.mark.parametrize("depth", [33, 1000])
def test_a_deeply_nested_merge_patch_is_refused_not_a_500(client: TestClient, settings: Settings,
                                                           depth: int) -> None:
    url = f"{ITEMS}/salang-tunnel-2"
    before = settings.projects.read_bytes()
    problem = _problem(_send(client, "PATCH", url, '{"properties": {"name": ' + _nested(depth) + "}}"), 422)
    assert problem["errors"][0]["field"] == "properties" and "32 deep" in problem["errors"][0]["message"]
    assert settings.projects.read_bytes() == before


def test_a_merge_patch_just_within_the_depth_limit_is_judged_on_its_content(client: TestClient) -> None:
    # 32 levels pass the depth check; the result is then refused because a name is not an object.
    problem = _problem(_send(client, "PATCH", f"{ITEMS}/salang-tunnel-2",
                             '{"properties": {"name": ' + _nested(31) + "}}"), 422)
    assert [e["field"] for e in problem["errors"]] == ["properties.name"]


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_deeply_nested_values_in_a_whole_feature_are_refused(client: TestClient, settings: Settings,
                                                             method: str) -> None:
    before = settings.projects.read_bytes()
    url = f"{ITEMS}/salang-tunnel-2" if method == "PUT" else ITEMS
    props = '{"name": "School", "category": "school", "status": "planned", "description": '
    deep_text = ('{"type": "Feature", "geometry": {"type": "Point", "coordinates": [69.1, 34.5]}, '
                 '"properties": ' + props + _nested(1000) + "}}")
    deep_coordinates = ('{"type": "Feature", "geometry": {"type": "Point", "coordinates": '
                        + "[" * 1000 + "69.1, 34.5" + "]" * 1000 + '}, "properties": ' + props + '"x"}}')
    for body, field in ((deep_text, "properties.description"), (deep_coordinates, "geometry.coordinates")):
        problem = _problem(_send(client, method, url, body), 422)
        assert field in [e["field"] for e in problem["errors"]]
    assert settings.projects.read_bytes() == before


@pytest.mark.parametrize("patch, field", [
    ({"properties": {"name": "Salang\u0000"}}, "properties.name"),
    ({"properties": {"description": "\u202eevil"}}, "properties.description"),
    ({"properties": {"budget_usd": True}}, "properties.budget_usd"),
    ({"geometry": {"type": "Point", "coordinates": [69.1, 35.3, 50_000]}}, "geometry.coordinates"),
    ({"geometry": {"type": "Point", "coordinates": [69.1, 35.3, 3400, 0]}}, "geometry.coordinates"),
])
def test_a_patch_gets_the_same_text_and_number_checks(client: TestClient, settings: Settings,
                                                      patch: dict[str, Any], field: str) -> None:
    before = settings.projects.read_bytes()
    problem = _problem(client.patch(f"{ITEMS}/salang-tunnel-2", headers=AUTH, json=patch), 422)
    assert field in [e["field"] for e in problem["errors"]]
    assert settings.projects.read_bytes() == before
