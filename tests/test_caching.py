"""The response cache and gzip: repeated pages come from memory, writes show at once, tags stay right."""

from __future__ import annotations

import os
import tracemalloc
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import orjson
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from geo.app import create_app
from geo.http.conditional import make_etag, not_modified, validators
from geo.http.responsecache import MAX_QUERY, ResponseCache
from geo.lru import PageCache, SizedLRU
from geo.settings import Settings
from tests.conftest import AUTH, point_feature, workspace

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


class CountingApp:
    """An ASGI app that counts the requests that reach it, then passes them on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        await self.app(scope, receive, send)


def _count_behind_cache(client: TestClient) -> CountingApp:
    cache = _cache(client)
    counter = CountingApp(cache.app)
    cache.app = counter
    return counter


def test_a_cached_page_is_answered_without_reaching_the_app(client: TestClient) -> None:
    counter = _count_behind_cache(client)
    first = client.get(ITEMS, params={"limit": 1})
    assert counter.calls == 1
    for _ in range(3):
        again = client.get(ITEMS, params={"limit": 1})
        assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    assert counter.calls == 1  # served three times from memory
    client.post(ITEMS, json=point_feature(name="Another clinic", category="health"), headers=AUTH)
    client.get(ITEMS, params={"limit": 1})
    assert counter.calls == 3  # the POST, and the page again: the write made the entry stale


def test_cache_keys_on_host_and_accept(client: TestClient) -> None:
    json_page = client.get("/collections/salang/items", headers={"Host": "a.example"})
    other_host = client.get("/collections/salang/items", headers={"Host": "b.example"})
    assert "a.example" in json_page.json()["links"][0]["href"]
    assert "b.example" in other_host.json()["links"][0]["href"]
    html = client.get("/collections/salang/items", headers={"Host": "a.example", "Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html")


def test_the_key_holds_the_negotiated_format_not_the_raw_accept(client: TestClient) -> None:
    counter = _count_behind_cache(client)
    url = "/collections/salang/items"
    accepts = [f"application/geo+json, */*;q=0.{i % 9 + 1}, x/{'y' * 8000}{i}" for i in range(20)]
    pages = {client.get(url, headers={"Accept": accept}).content for accept in accepts}
    assert len(pages) == 1 and counter.calls == 1 and len(_cache(client)) == 1
    html = {client.get(url, headers={"Accept": f"text/html, x/{'y' * 8000}{i}"}).text for i in range(20)}
    assert len(html) == 1 and counter.calls == 2 and len(_cache(client)) == 2
    assert next(iter(html)).startswith("<!doctype html>")


def test_long_queries_and_absurd_hosts_are_answered_but_not_remembered(client: TestClient) -> None:
    bbox = "60." + "0" * MAX_QUERY + ",30,75,39"
    long = client.get(ITEMS, params={"bbox": bbox})
    assert long.status_code == 200 and long.json()["numberMatched"] == 2
    for host in ("h" * 300, "a.example/<script>", "a.example:99999999"):
        assert client.get(ITEMS, headers={"Host": host}).status_code in (200, 400)
    assert len(_cache(client)) == 0
    client.get(ITEMS, headers={"Host": "[::1]:8000"})
    assert len(_cache(client)) == 1


def test_the_cache_is_bounded_by_count(tmp_path: Path, provinces_cache: Path) -> None:
    settings = workspace(tmp_path, provinces_cache, response_cache_entries=3)
    with TestClient(create_app(settings)) as client:
        for offset in range(10):
            assert client.get(ITEMS, params={"offset": offset}).status_code == 200
        assert len(_cache(client)) == 3
        counter = _count_behind_cache(client)
        client.get(ITEMS, params={"offset": 9})  # among the last three: still cached
        client.get(ITEMS, params={"offset": 0})  # evicted long ago: built again
        assert counter.calls == 1


def test_the_byte_budget_counts_keys_not_only_bodies() -> None:
    lru: SizedLRU[bytes] = SizedLRU(max_entries=1000, max_bytes=20_000)
    for i in range(100):
        key = f"{i:04d}" + "k" * 2000  # 2 kB keys, 1-byte values
        lru.put(key, b"v", cost=len(key) + 1)
    # 100 bytes of values, but the keys fill the budget: only about nine entries fit.
    assert len(lru) == 9 and lru.used_bytes <= 20_000
    assert lru.get("0099" + "k" * 2000) == b"v" and lru.get("0000" + "k" * 2000) is None


def test_one_entry_over_budget_is_not_kept() -> None:
    lru: SizedLRU[str] = SizedLRU(max_entries=10, max_bytes=1000)
    assert lru.put("small", "x", cost=100) and not lru.put("big", "y", cost=5000)
    assert len(lru) == 1 and lru.get("big") is None


def test_page_cache_is_bounded_by_bytes_including_keys() -> None:
    pages = PageCache(max_entries=100, max_bytes=200_000)
    for i in range(100):
        pages.put(("map", "x" * 10_000 + str(i)), "<html>" + str(i))  # 10 kB keys, tiny pages
    assert pages.used_bytes <= 200_000 and 10 <= len(pages) < 20


def test_the_charge_of_an_entry_covers_what_it_really_holds(client: TestClient) -> None:
    """tracemalloc measures what storing pages really allocates; the budget must not undercount it."""
    cache = ResponseCache(client.app, client.app.state.catalogue)  # type: ignore[attr-defined]
    count = 2000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(count):
            key = (f"/collections/projects/items{i}", b"offset=%d&limit=5" % i, "", "http",
                   f"host{i}.example:8000", False, True)
            headers = [(b"content-length", str(3000 + i).encode()),
                       (b"content-type", b"application/geo+json"),
                       (b"etag", f'"{os.urandom(12).hex()}-gz"'.encode()),
                       (b"last-modified", format_datetime(datetime.now(UTC), usegmt=True).encode()),
                       (b"content-crs", b"<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"),
                       (b"vary", b"Accept, Accept-Encoding"), (b"content-encoding", b"gzip")]
            start = {"type": "http.response.start", "status": 200, "headers": headers}
            cache._store(key, "v1", start, os.urandom(3000))
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(cache) == count
    assert used <= cache.used_bytes <= 1.5 * used, (used, cache.used_bytes)


def test_cached_page_answers_if_none_match(client: TestClient) -> None:
    page = client.get(ITEMS)
    assert client.get(ITEMS).status_code == 200  # now cached
    cached = client.get(ITEMS, headers={"If-None-Match": page.headers["etag"]})
    assert cached.status_code == 304 and cached.headers["etag"] == page.headers["etag"]
    assert client.get(ITEMS, headers={"If-None-Match": '"other"'}).status_code == 200


def _ims_request(value: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [
        (b"if-modified-since", value.encode())]})


def test_if_modified_since_tells_apart_two_versions_within_one_second() -> None:
    first = datetime(2026, 3, 1, 10, 0, 0, 300_000, tzinfo=UTC)  # written at 10:00:00.3
    second = datetime(2026, 3, 1, 10, 0, 0, 700_000, tzinfo=UTC)  # and again at 10:00:00.7
    sent = validators(make_etag("first"), first)["Last-Modified"]
    assert sent == "Sun, 01 Mar 2026 10:00:00 GMT"  # an HTTP date cannot show the fraction
    # A client holding the first version, revalidating after the second write: no 304.
    assert not_modified(_ims_request(sent), make_etag("second"), second) is None
    # Once the whole second is past the write, the date is unambiguous: 304.
    later = "Sun, 01 Mar 2026 10:00:01 GMT"
    answer = not_modified(_ims_request(later), make_etag("second"), second)
    assert answer is not None and answer.status_code == 304 and answer.headers["last-modified"] == sent
    # A version written on a whole second is "not modified since" that very second.
    whole = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
    assert not_modified(_ims_request(sent), make_etag("whole"), whole) is not None


def test_odd_if_modified_since_dates_are_ignored_not_errors() -> None:
    modified = datetime(2026, 3, 1, 10, 0, 0, 300_000, tzinfo=UTC)
    for value in ("yesterday", "Sun, 01 Mar 2026 10:00:00 +9999", "Mon, 01 Jan 0001 00:00:00 +2359", "",
                  "Sun, 1 Mar 99999999999999999999 10:00:00 GMT"):
        assert not_modified(_ims_request(value), make_etag("x"), modified) is None, value
    # "-0000" (zone unknown) is read as GMT, like every HTTP date.
    answer = not_modified(_ims_request("Sun, 01 Mar 2026 11:00:00 -0000"), make_etag("x"), modified)
    assert answer is not None and answer.status_code == 304


def test_a_write_within_the_same_second_is_not_hidden_by_if_modified_since(client: TestClient) -> None:
    first = client.get(ITEMS)
    since = first.headers["last-modified"]
    assert client.post(ITEMS, json=point_feature(name="Same-second clinic"), headers=AUTH).status_code == 201
    after = client.get(ITEMS, headers={"If-Modified-Since": since})
    # The write may fall in the first version's second: it must not be hidden by a 304.
    assert after.status_code == 200 and after.json()["numberMatched"] == first.json()["numberMatched"] + 1
    stamp = datetime.strptime(after.headers["last-modified"], "%a, %d %b %Y %H:%M:%S GMT")
    one_later = format_datetime(stamp.replace(tzinfo=UTC) + timedelta(seconds=1), usegmt=True)
    assert client.get(ITEMS, headers={"If-Modified-Since": one_later}).status_code == 304


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
