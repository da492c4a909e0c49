"""geo/routers/dispatch.py: the items GET answered by its DirectRoute without FastAPI's inner layers gets
the very answer FastAPI's router gives; errors, other routes and followed requests take the whole way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from geo.app import create_app
from geo.routers import dispatch
from geo.routers.direct import DirectRoute, direct_get
from tests.conftest import workspace
from tests.test_direct_route import QUERIES

ITEMS = "/collections/projects/items"
# Everything a client may read of an answer but the date.
COMPARED = ("content-type", "content-length", "etag", "last-modified", "content-crs", "vary",
            "access-control-allow-origin", "access-control-expose-headers", "x-content-type-options",
            "content-security-policy", "content-encoding")


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory,
            provinces_cache: Any) -> Iterator[tuple[TestClient, TestClient]]:
    """Two apps on one store, without the response cache (every request reaches the route): the first
    dispatches, the second has no route to dispatch to (its router answers everything)."""
    settings = workspace(tmp_path_factory.mktemp("dispatch"), provinces_cache, response_cache_entries=0)
    with TestClient(create_app(settings)) as dispatching, TestClient(create_app(settings)) as routed:
        with pytest.MonkeyPatch.context() as patch:
            # The leading routes are found at the first request, and kept.
            patch.setattr(dispatch, "leading_direct_gets", lambda app: ())
            routed.get(ITEMS)
        dispatching.get(ITEMS)
        yield dispatching, routed


class Handled:
    """Counts the requests the items route's `handle` (FastAPI's router's way in) receives."""

    def __init__(self, app: FastAPI, patch: pytest.MonkeyPatch) -> None:
        self.count = 0
        route = app.router.routes[0]
        real = route.handle

        async def counting(scope: Scope, receive: Receive, send: Send) -> None:
            self.count += 1
            await real(scope, receive, send)

        patch.setattr(route, "handle", counting)


@pytest.mark.parametrize("accept", ["application/geo+json", "text/html", "*/*"])
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
@pytest.mark.parametrize("query", QUERIES)
def test_the_answer_is_the_routers(clients: tuple[TestClient, TestClient], query: str, accept: str,
                                   encoding: str) -> None:
    dispatching, routed = clients
    url = f"{ITEMS}?{query}"
    headers = {"Accept": accept, "Accept-Encoding": encoding}
    mine, theirs = dispatching.get(url, headers=headers), routed.get(url, headers=headers)
    assert (mine.status_code, mine.content) == (theirs.status_code, theirs.content), url
    for name in COMPARED:
        assert mine.headers.get(name) == theirs.headers.get(name), (url, name)
    assert mine.headers["x-content-type-options"] == "nosniff"


def test_head_and_conditional_requests_are_the_routers(clients: tuple[TestClient, TestClient]) -> None:
    dispatching, routed = clients
    for client in (dispatching, routed):
        page = client.get(f"{ITEMS}?limit=1")
        head = client.head(f"{ITEMS}?limit=1")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["etag"] == page.headers["etag"]
        again = client.get(f"{ITEMS}?limit=1", headers={"If-None-Match": page.headers["etag"]})
        assert again.status_code == 304 and again.content == b""


def test_a_page_skips_the_router_and_an_error_takes_it(settings: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(settings)
    handled = Handled(app, monkeypatch)
    with TestClient(app) as client:
        for query in ("", "limit=1&offset=1", "status=proposed", "f=html"):
            assert client.get(f"{ITEMS}?{query}").status_code == 200
        assert handled.count == 0
        # Refused by a dependency (raises), by a field (FastAPI words it), an unknown collection: each
        # is FastAPI's, through its router and exception handlers, as the problem types say.
        for url, slug in ((f"{ITEMS}?status=nope", "invalid-input"), (f"{ITEMS}?limit=0", "invalid-input"),
                          ("/collections/nope/items", "not-found")):
            problem = client.get(url)
            assert problem.status_code in (400, 404), url
            assert problem.headers["content-type"] == "application/problem+json"
            assert problem.json()["type"] == f"urn:geo:problem:{slug}", (url, problem.json())
        assert handled.count == 3
        # Not a GET: the router's, which hands it to the route whose path it is, to answer 405.
        assert client.delete(ITEMS).status_code == 405
        assert handled.count == 4


def test_a_request_followed_by_fastapis_telemetry_takes_the_whole_way(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(settings)
    handled = Handled(app, monkeypatch)

    async def followed(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[dispatch.TELEMETRY_SCOPE_KEY] = None  # as FastAPI marks a request it follows
        await app(scope, receive, send)

    with TestClient(followed) as client:
        assert client.get(f"{ITEMS}?limit=2").status_code == 200
    assert handled.count == 1


def test_only_the_leading_read_only_direct_routes_are_dispatched() -> None:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    async def first() -> None:
        """A route."""

    direct_get(app.router, "/a")(first)
    direct_get(app.router, "/b")(first)
    app.add_api_route("/c", first)  # an ordinary route: FastAPI's router from here on
    direct_get(app.router, "/d")(first)
    leading = dispatch.leading_direct_gets(app)
    assert [route.path for route in leading] == ["/a", "/b"]
    assert all(isinstance(route, DirectRoute) for route in leading)
    writes = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    writes.router.add_api_route("/w", first, methods=["GET", "POST"], route_class_override=DirectRoute)
    assert dispatch.leading_direct_gets(writes) == ()
