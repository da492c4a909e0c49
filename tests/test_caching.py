"""The response cache and gzip: repeated pages come from memory, writes show at once, tags stay right."""

from __future__ import annotations

import orjson
from fastapi.testclient import TestClient

from geo.app import create_app
from geo.responsecache import ResponseCache
from geo.settings import Settings
from tests.conftest import AUTH, point_feature

ITEMS = "/collections/projects/items"


def _cache(client: TestClient) -> ResponseCache:
    layer = client.app.middleware_stack  # type: ignore[attr-defined]
    while not isinstance(layer, ResponseCache):
        layer = layer.app
    return layer


def test_repeated_page_is_served_from_the_cache_and_a_write_shows_at_once(client: TestClient) -> None:
    first = client.get(ITEMS, params={"limit": 5})
    assert len(_cache(client)) == 1
    again = client.get(ITEMS, params={"limit": 5})
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    client.post(ITEMS, json=point_feature(name="New clinic", category="health"), headers=AUTH)
    after = client.get(ITEMS, params={"limit": 5})
    assert after.json()["numberMatched"] == first.json()["numberMatched"] + 1
    assert after.headers["etag"] != first.headers["etag"]


def test_cache_keys_on_host_and_accept(client: TestClient) -> None:
    json_page = client.get("/collections/salang/items", headers={"Host": "a.example"})
    other_host = client.get("/collections/salang/items", headers={"Host": "b.example"})
    assert "a.example" in json_page.json()["links"][0]["href"]
    assert "b.example" in other_host.json()["links"][0]["href"]
    html = client.get("/collections/salang/items", headers={"Host": "a.example", "Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html")


def test_cached_page_answers_if_none_match(client: TestClient) -> None:
    page = client.get(ITEMS)
    assert client.get(ITEMS).status_code == 200  # now cached
    cached = client.get(ITEMS, headers={"If-None-Match": page.headers["etag"]})
    assert cached.status_code == 304 and cached.headers["etag"] == page.headers["etag"]
    assert client.get(ITEMS, headers={"If-None-Match": '"other"'}).status_code == 200


def test_gzipped_representation_has_its_own_strong_tag(client: TestClient) -> None:
    url = "/collections/provinces/items?limit=3"
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    zipped = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["etag"] == plain.headers["etag"][:-1] + '-gz"'
    assert zipped.content == plain.content  # httpx decodes; the data is the same
    for tag in (plain.headers["etag"], zipped.headers["etag"]):
        again = client.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": tag})
        assert again.status_code == 304 and again.headers["etag"] == zipped.headers["etag"]


def test_if_match_accepts_the_tag_of_a_gzipped_read(client: TestClient) -> None:
    long = point_feature(description="A long description. " * 200)
    created = client.post(ITEMS, json=long, headers=AUTH).json()
    url = f"{ITEMS}/{created['id']}"
    read = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert read.headers["content-encoding"] == "gzip" and read.headers["etag"].endswith('-gz"')
    patched = client.patch(url, json={"properties": {"status": "approved"}},
                           headers={**AUTH, "If-Match": read.headers["etag"]})
    assert patched.status_code == 200, patched.text
    stale = client.patch(url, json={"properties": {"status": "planned"}},
                         headers={**AUTH, "If-Match": read.headers["etag"]})
    assert stale.status_code == 412


def test_parquet_downloads_are_not_gzipped(client: TestClient) -> None:
    response = client.get("/layers/provinces.parquet", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200 and "content-encoding" not in response.headers
    geojson = client.get("/layers/provinces.geojson", headers={"Accept-Encoding": "gzip"})
    assert geojson.headers["content-encoding"] == "gzip"
    assert len(geojson.json()["features"]) == 34  # decoded by the client: the whole layer


def test_a_changed_static_layer_gets_new_validators(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        before = client.get("/layers/salang.geojson")
        items_before = client.get("/collections/salang/items")
    path = settings.layers_dir / "salang.geojson"
    doc = orjson.loads(path.read_bytes())
    doc["features"][0]["properties"]["status"] = "closed"
    path.write_bytes(orjson.dumps(doc))
    with TestClient(create_app(settings)) as client:
        after = client.get("/layers/salang.geojson")
        assert after.headers["etag"] != before.headers["etag"]
        assert client.get("/collections/salang/items").headers["etag"] != items_before.headers["etag"]
        stale = client.get("/layers/salang.geojson", headers={"If-None-Match": before.headers["etag"]})
        assert stale.status_code == 200 and stale.json()["features"][0]["properties"]["status"] == "closed"
        assert after.headers["last-modified"]


def test_head_answers_like_get_without_a_body(client: TestClient) -> None:
    for url in ("/collections/salang/items", "/layers/salang.geojson", "/map", "/collections",
                "/collections/projects/items/salang-tunnel-2"):
        get = client.get(url, headers={"Accept-Encoding": "identity"})
        head = client.head(url, headers={"Accept-Encoding": "identity"})
        assert head.status_code == 200 and head.content == b"", url
        assert head.headers["etag"] == get.headers["etag"], url
        assert head.headers["content-type"] == get.headers["content-type"], url
    assert client.head("/collections/nope/items").status_code == 404
