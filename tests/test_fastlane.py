"""The items fast lane answers exactly as FastAPI's route does, and leaves everything unusual to it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import Receive, Scope, Send

from tests.conftest import AUTH, point_feature

ITEMS = "/collections/projects/items"
QUERIES = [
    "", "limit=1", "limit=1&offset=1", "offset=2", "f=json", "f=html", "bbox=68,34,70,36",
    "status=proposed,under_construction", "category=transport&province=AF-BGL",
    "datetime=2023-01-01/..", "filter=budget_usd%20%3E%201000",
    "filter-lang=cql2-text&filter=name%20LIKE%20%27S%25%27",
    "sortby=-name", "properties=name,status", "ids=salang-tunnel-2", "limit=10000",
    # What the fast lane leaves to the route: queryables as parameters, unknown parameters.
    "name=Salang%20Tunnel", "id=salang-tunnel-2&limit=1", "unknownQueryParameter12345=1",
    "bbox=177,65,-177,70", "bbox=60,29,-170,39", "datetime=2023-07-12T00:00:00",
]


class Counting:
    """What lies behind the fast lane (FastAPI's own routing), counting the requests that reach it."""

    def __init__(self, app: FastAPI, inner: Any) -> None:
        self.app, self.inner, self.calls = app, inner, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += scope["type"] == "http"
        await self.inner({**scope, "app": self.app}, receive, send)


def fast_lane(app: FastAPI) -> Any:
    """The app's ItemsFastLane middleware instance."""
    if app.middleware_stack is None:
        app.middleware_stack = app.build_middleware_stack()
    layer: Any = app.middleware_stack
    while type(layer).__name__ != "ItemsFastLane":
        layer = layer.app
    return layer


@pytest.fixture
def clients(app: FastAPI) -> Iterator[tuple[TestClient, TestClient]]:
    """A client through the whole app, and one straight to what lies behind the fast lane."""
    with TestClient(app) as full:
        for n in range(3):
            full.post(ITEMS, headers=AUTH, json=point_feature(name=f"School {n}", budget_usd=5000 * n))
        yield full, TestClient(Counting(app, fast_lane(app).app))


@pytest.mark.parametrize("query", QUERIES)
def test_same_answer_as_fastapi(clients: tuple[TestClient, TestClient], query: str) -> None:
    full, plain = clients
    for collection in ("projects", "provinces", "salang"):
        if collection != "projects" and any(k in query for k in ("status", "category", "budget", "ids=s")):
            continue
        url = f"/collections/{collection}/items?{query}"
        headers = {"Accept-Encoding": "identity"}
        fast, slow = full.get(url, headers=headers), plain.get(url, headers=headers)
        assert (fast.status_code, fast.content) == (slow.status_code, slow.content), url
        for name in ("content-type", "etag", "last-modified", "content-crs"):
            assert fast.headers.get(name) == slow.headers.get(name), (url, name)
        # gzip, outside the fast lane, adds Accept-Encoding to Vary on the full path only.
        if fast.status_code == 200:
            assert "Accept" in fast.headers["vary"] and "Accept" in slow.headers["vary"]


def test_qualifying_requests_skip_fastapi_and_others_reach_it(app: FastAPI) -> None:
    lane = fast_lane(app)
    counting = lane.app = Counting(app, lane.app)  # the fall-through now counts
    with TestClient(app) as client:
        assert client.get(f"{ITEMS}?limit=1&status=proposed").status_code == 200
        assert counting.calls == 0
        for odd in ("limit=0", "limit=x", "offset=-1", "f=xml", "status=a&status=b", "unknown=1",
                    "status=nope", "bbox=1,2"):
            client.get(f"{ITEMS}?{odd}")
        assert counting.calls == 8
        bad = client.get(f"{ITEMS}?status=nope")
        assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"


HOSTILE = ["limit=%C2%B2", "limit=%D9%A3", "offset=%C2%B2", "offset=%DB%B3", "limit=" + "9" * 5000,
           "offset=" + "9" * 5000, "limit=9999999999999999999", "limit=+5", "limit=%205", "limit=1_0",
           "limit=5.0", "limit=", "offset=", "limit=1&limit=2", "limit=\xb2", "limit=%FF"]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_counts_fall_through_and_are_400_problems(clients: tuple[TestClient, TestClient],
                                                          query: str) -> None:
    from geo.fastlane import _arguments

    assert _arguments(query) is None  # FastAPI judges it
    full, plain = clients
    fast, slow = full.get(f"{ITEMS}?{query}"), plain.get(f"{ITEMS}?{query}")
    assert fast.status_code == slow.status_code == 400, fast.text
    assert fast.headers["content-type"] == "application/problem+json"
    assert fast.json()["errors"][0]["field"] in ("limit", "offset")


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(st.lists(st.tuples(st.sampled_from(["limit", "offset", "f", "bbox", "x", ""]), st.text()), max_size=4))
def test_arguments_never_raise_and_admit_only_ascii_counts(pairs: list[tuple[str, str]]) -> None:
    from geo.fastlane import _arguments

    args = _arguments(urlencode(pairs))
    if args is not None:
        given_pairs = dict(pairs)
        for name in ("limit", "offset"):
            if name in given_pairs:
                text = given_pairs[name]
                assert text.isascii() and text.isdigit() and len(text) <= 18
                assert args[name] == int(text)


def test_the_fast_lane_takes_only_parameters_the_route_declares() -> None:
    """Whatever the fast lane answers itself, the route would have taken: its names are the route's."""
    from fastapi.routing import APIRoute

    from geo.fastlane import OTHERS
    from geo.query.params import PARAMETERS, declared_parameters
    from geo.routers.features import router

    route = next(r for r in router.routes if isinstance(r, APIRoute)
                 and r.path == "/collections/{collection_id}/items" and "GET" in r.methods)
    assert set(PARAMETERS) | OTHERS <= declared_parameters(route)
    assert {"f", "limit", "offset", "bbox", "filter-lang"} <= declared_parameters(route)
