"""HTTP itself: content negotiation by `Accept` q-values (RFC 9110 12.5.1) and `*` in GEO_CORS_ORIGINS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from geo.app import create_app
from geo.settings import Settings
from tests.conftest import AUTH, point_feature

ITEMS = "/collections/projects/items"
PAGES = ["/", "/collections", "/collections/salang", "/collections/salang/items",
         "/collections/salang/items/salang-tunnel"]
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # Firefox's navigation Accept


def _is_html(content_type: str) -> bool:
    return content_type.startswith("text/html")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";")[0]
    return media in ("application/json", "application/geo+json")


# Each expectation worked out from RFC 9110 12.5.1: a type's weight is the q of the most specific range
# that matches it, q=0 means "not acceptable", and the server picks among the heaviest (JSON on a tie,
# since JSON is this API's default).
@pytest.mark.parametrize("accept, html", [
    ("text/html;q=0, application/json", False),  # HTML is refused outright
    ("application/json;q=0.5, text/html", True),  # order means nothing, weights do
    ("*/*", False),  # no preference: the default
    ("text/html;q=0.9, application/geo+json", False),  # GeoJSON weighs 1 > 0.9
    ("application/geo+json;q=0.8, text/html;q=0.9", True),
    ("text/html, application/json", False),  # a tie: the default
    ("text/html;q=0.5, */*;q=0.1", True),  # JSON weighs only what */* gives it
    ("application/*;q=0.3, text/html;q=0.4", True),
    ("text/html;q=0.4, application/*;q=0.5", False),
    ("text/html;q=0.001", True),  # the smallest weight still accepts
    ("text/html;q=1.5, application/json;q=0.1", False),  # not a qvalue: that element is ignored
    (BROWSER, True),
])
def test_accept_q_values_choose_html_or_json(client: TestClient, accept: str, html: bool) -> None:
    for path in PAGES:
        response = client.get(path, headers={"Accept": accept})
        assert response.status_code == 200, (path, response.text)
        content_type = response.headers["content-type"]
        assert _is_html(content_type) if html else _is_json(content_type), (path, accept, content_type)


@pytest.mark.parametrize("f, accept, html", [("json", BROWSER, False), ("html", "application/json", True),
                                             ("html", "text/html;q=0, application/json", True)])
def test_f_overrides_accept(client: TestClient, f: str, accept: str, html: bool) -> None:
    for path in PAGES:
        content_type = client.get(path, params={"f": f}, headers={"Accept": accept}).headers["content-type"]
        assert _is_html(content_type) is html, (path, f, accept)


def test_the_cache_key_agrees_with_the_page(client: TestClient, settings: Settings) -> None:
    """The response cache keys on the negotiated format: whatever order requests come in, each gets what
    the same service without a cache answers it (never a JSON page to a browser, nor HTML to a script)."""
    url = "/collections/salang/items"
    accepts = ["text/html", "text/html;q=0, application/json", "application/json;q=0.5, text/html", "*/*",
               "TEXT/HTML", "text/*", "Text/Html;q=0.5, application/json;q=0.1", BROWSER]
    with TestClient(create_app(settings.model_copy(update={"response_cache_bytes": 0}))) as uncached:
        expected = {a: uncached.get(url, headers={"Accept": a}).headers["content-type"] for a in accepts}
    for order in (accepts, accepts[::-1], accepts):  # the later rounds are served from the cache
        for accept in order:
            assert client.get(url, headers={"Accept": accept}).headers["content-type"] == expected[accept], \
                accept


@pytest.fixture
def anyone_writes(settings: Settings) -> Iterator[TestClient]:
    """A service started with GEO_CORS_ORIGINS=*."""
    with TestClient(create_app(settings.model_copy(update={"cors_origins": "*"}))) as client:
        yield client


PATCH_PREFLIGHT = {"Access-Control-Request-Method": "PATCH",
                   "Access-Control-Request-Headers": "authorization,content-type,if-match"}


@pytest.mark.parametrize("origin", ["https://anyone.example", "http://localhost:8080", "null"])
def test_a_star_in_cors_origins_lets_any_origin_write(anyone_writes: TestClient, origin: str) -> None:
    """What `*` does today (geo/http/cors.py): any Origin, even the opaque `null` of a sandboxed page or a
    file://, passes the write preflight; the answer names that origin (not `*`) and varies by Origin.
    The API key is still required: CORS only lets the page send the request."""
    preflight = anyone_writes.options(ITEMS, headers={"Origin": origin, **PATCH_PREFLIGHT})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "Origin" in preflight.headers["vary"]
    assert "PATCH" in preflight.headers["access-control-allow-methods"]
    allowed_headers = preflight.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "if-match"} <= {h.strip() for h in allowed_headers.split(",")}
    created = anyone_writes.post(ITEMS, headers={**AUTH, "Origin": origin}, json=point_feature())
    assert created.status_code == 201
    assert created.headers["access-control-allow-origin"] == origin
    assert "Origin" in created.headers["vary"]
    assert "ETag" in created.headers["access-control-expose-headers"]
    anonymous = anyone_writes.post(ITEMS, headers={"Origin": origin}, json=point_feature())
    assert anonymous.status_code == 401


def test_a_star_in_cors_origins_leaves_reads_as_they_are(anyone_writes: TestClient) -> None:
    read = anyone_writes.get(ITEMS, headers={"Origin": "https://anyone.example"})
    assert read.headers["access-control-allow-origin"] == "*"
    assert "Origin" not in read.headers.get("vary", "")


def test_a_star_among_named_origins_still_means_any(settings: Settings) -> None:
    mixed = settings.model_copy(update={"cors_origins": "https://editor.example.org, *"})
    with TestClient(create_app(mixed)) as client:
        preflight = client.options(ITEMS, headers={"Origin": "https://other.example", **PATCH_PREFLIGHT})
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "https://other.example"


def test_without_a_star_a_stranger_may_not_write(client: TestClient) -> None:
    preflight = client.options(ITEMS, headers={"Origin": "https://anyone.example", **PATCH_PREFLIGHT})
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
