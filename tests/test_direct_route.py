"""The items route answers items requests: its plan (geo/routers/direct.py) gives FastAPI's very answers,
leaves to FastAPI what only FastAPI says, and runs the route's own functions (a breakpoint in them fires)."""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from types import CodeType, FrameType
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import httpx2
import numpy as np
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.dependencies.utils import solve_dependencies
from fastapi.responses import PlainTextResponse, Response
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.gzip import IdentityResponder

from geo.app import create_app
from geo.catalogue import Page
from geo.http import first_values
from geo.http.compression import EXCLUDED, Identity
from geo.query import cql
from geo.query.featuretable import RECENT_ENTRIES, FeatureTable
from geo.query.params import declared_parameters, filters_dependency
from geo.routers import direct, features
from geo.routers.deps import base_url
from geo.routers.features import items
from geo.settings import Settings
from tests.conftest import AUTH, KEY, point_feature, workspace

ITEMS = "/collections/projects/items"
QUERIES = [
    "", "limit=1", "limit=1&offset=1", "offset=2", "f=json", "f=html", "bbox=68,34,70,36",
    "status=proposed,under_construction", "category=transport&province=AF-BGL",
    "datetime=2023-01-01/..", "filter=budget_usd%20%3E%201000",
    "filter-lang=cql2-text&filter=name%20LIKE%20%27S%25%27",
    "sortby=-name", "sortby=-budget_usd&limit=2&offset=1", "properties=name,status", "ids=salang-tunnel-2",
    "limit=10000", "crs=http%3A%2F%2Fwww.opengis.net%2Fdef%2Fcrs%2FEPSG%2F0%2F32642&limit=2",
    # Queryables as parameters, and the bbox across the antimeridian.
    "name=Salang%20Tunnel", "id=salang-tunnel-2&limit=1", "budget_usd=5000",
    "bbox=177,65,-177,70", "bbox=60,29,-170,39",
    # 400s the route's functions raise (the plan calls them): FastAPI's path raises the same.
    "unknownQueryParameter12345=1", "status=nope", "status=a&status=b", "bbox=1,2", "sortby=nope",
    "properties=nope", "filter=name%20%3E%205", "datetime=2023-07-12T00:00:00", "crs=nope",
    # 400s only FastAPI words (a declared field refuses the value): the plan leaves them to it.
    "limit=0", "limit=x", "offset=-1", "f=xml", "limit=%C2%B2", "limit=5.0",
]
HOSTILE = ["limit=%C2%B2", "limit=%D9%A3", "offset=%C2%B2", "offset=%DB%B3", "limit=" + "9" * 5000,
           "offset=" + "9" * 5000, "limit=9999999999999999999", "limit=+5", "limit=%205", "limit=1_0",
           "limit=5.0", "limit=", "offset=", "limit=1&limit=2", "limit=\xb2", "limit=%FF"]
COMPARED = ("content-type", "etag", "last-modified", "content-crs", "vary")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Any) -> Iterator[TestClient]:
    """A client of an app with three more projects and no response cache (every request reaches the
    route, so both ways below are really taken)."""
    settings = workspace(tmp_path_factory.mktemp("direct"), provinces_cache, api_keys=KEY,
                         response_cache_entries=0)
    with TestClient(create_app(settings)) as test_client:
        for n in range(3):
            created = test_client.post(ITEMS, headers=AUTH,
                                       json=point_feature(name=f"School {n}", budget_usd=5000 * n))
            assert created.status_code == 201
        yield test_client


@contextmanager
def fastapi_only() -> Iterator[None]:
    """Every request to a DirectRoute answered by FastAPI's own handler (the plan declines them all)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(direct, "arguments", lambda plan, request: None)
        yield


def both_ways(client: TestClient, url: str) -> tuple[httpx2.Response, httpx2.Response]:
    """The answer to `url` as the app gives it, and as FastAPI alone gives it."""
    headers = {"Accept-Encoding": "identity"}
    planned = client.get(url, headers=headers)
    with fastapi_only():
        by_fastapi = client.get(url, headers=headers)
    return planned, by_fastapi


def assert_same(planned: httpx2.Response, by_fastapi: httpx2.Response, url: str) -> None:
    assert (planned.status_code, planned.content) == (by_fastapi.status_code, by_fastapi.content), url
    for name in COMPARED:
        assert planned.headers.get(name) == by_fastapi.headers.get(name), (url, name)


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("collection", ["projects", "provinces", "salang"])
def test_the_same_answer_as_fastapi(client: TestClient, collection: str, query: str) -> None:
    url = f"/collections/{collection}/items?{query}"
    assert_same(*both_ways(client, url), url)


def test_the_answers_compared_are_real_pages_and_problems(client: TestClient) -> None:
    """The comparison above is not of two empty answers: the shipped data and the three posted projects."""
    page = client.get(f"{ITEMS}?limit=2&offset=1&sortby=-budget_usd").json()
    assert page["numberMatched"] == 2 + 3 and page["numberReturned"] == 2
    # Budgets, highest first: the second Salang tunnel's 1.6e9, then 10000, 5000, 0, and the shipped
    # highway's none (missing values sort last).
    assert [f["properties"]["budget_usd"] for f in page["features"]] == [10000, 5000]
    assert {ln["rel"] for ln in page["links"]} >= {"next", "prev"}
    problem = client.get(f"{ITEMS}?limit=0")
    assert problem.status_code == 400 and problem.headers["content-type"] == "application/problem+json"
    assert problem.json()["errors"][0]["field"] == "limit"


def test_ordinary_requests_follow_the_plan_and_refused_values_go_to_fastapi(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[bool] = []
    real = direct.arguments

    def spy(plan: direct.Plan, request: Request) -> list[dict[str, Any]] | None:
        given = real(plan, request)
        taken.append(given is not None)
        return given

    monkeypatch.setattr(direct, "arguments", spy)
    # A page follows the plan once (geo/routers/dispatch.py answers it). A value a dependency refuses
    # raises: the request then goes through FastAPI, whose router follows the plan again and whose
    # exception handler answers the problem.
    planned = {"limit=1&status=proposed": 200, "f=html&bbox=68,34,70,36": 200, "name=Salang%20Tunnel": 200}
    refused = {"status=nope": 400, "unknown=1": 400, "status=a&status=b": 400}
    for query, status in {**planned, **refused}.items():
        assert client.get(f"{ITEMS}?{query}").status_code == status, query
    assert taken == [True] * (len(planned) + 2 * len(refused))
    taken.clear()
    for query in ("limit=0", "limit=x", "offset=-1", "f=xml", "limit=%C2%B2"):
        assert client.get(f"{ITEMS}?{query}").status_code == 400, query
    assert taken == [False] * 2 * 5


POSTS: list[tuple[dict[str, str], object]] = [
    (AUTH, {"type": "Feature", "geometry": {"type": "Point", "coordinates": [69.17, 34.53]},
            "properties": {"name": "Clinic", "category": "health", "status": "planned"}}),
    (AUTH, {"type": "Feature", "geometry": {"type": "Point", "coordinates": [34.53, 69.17]},
            "properties": {"name": "Swapped", "category": "health", "status": "planned"}}),
    (AUTH, {"type": "Feature", "geometry": None, "properties": {"name": "No place"}}),
    ({"Authorization": "Bearer wrong"}, {"type": "Feature"}),
    ({}, {"type": "Feature"}),
]


@pytest.mark.parametrize(("headers", "body"), POSTS)
def test_a_post_gets_the_same_answer_as_from_fastapi(client: TestClient, headers: dict[str, str],
                                                     body: object) -> None:
    """POST /items is a DirectRoute too: created, refused, unauthorised, the same both ways (ids and
    times differ between two creations, so a 201 is compared without them)."""
    # The same project twice: past the duplicate guard (geo/duplicates.py), both ways.
    planned = client.post(ITEMS, headers=headers, json=body, params={"duplicate": "allow"})
    with fastapi_only():
        by_fastapi = client.post(ITEMS, headers=headers, json=body, params={"duplicate": "allow"})
    assert planned.status_code == by_fastapi.status_code
    assert planned.headers["content-type"] == by_fastapi.headers["content-type"]
    if planned.status_code == 201:
        made = [r.json() for r in (planned, by_fastapi)]
        for feature in made:
            del feature["id"], feature["properties"]["created_at"], feature["properties"]["updated_at"]
            del feature["properties"]["status_history"][0]["at"]
            feature.pop("links", None)
        assert made[0] == made[1] and made[0]["properties"]["province"] == "AF-KAB"
        for delete in (planned, by_fastapi):  # keep the module's data as the GET tests expect it
            assert client.delete(delete.headers["location"], headers=AUTH).status_code in (200, 204)
    else:
        assert planned.json() == by_fastapi.json() and planned.status_code in (400, 401, 403, 422)


def _calls(app: FastAPI, url: str, watched: dict[CodeType, str]) -> set[str]:
    """Which of the watched functions run while `app` answers `url`, seen as a debugger sees them: by a
    trace function in the thread that serves the request (set before that thread starts)."""
    seen: set[str] = set()

    def tracer(frame: FrameType, event: str, arg: Any) -> None:
        name = watched.get(frame.f_code)
        if name is not None:
            seen.add(name)

    previous = threading.gettrace()
    threading.settrace(tracer)  # it returns None: no line events, only calls
    try:
        with TestClient(app) as test_client:
            seen.clear()  # start-up
            test_client.get(url)
    finally:
        threading.settrace(previous)
    return seen


def test_a_breakpoint_in_the_route_or_its_dependency_fires_on_ordinary_requests(settings: Settings) -> None:
    watched = {items.__code__: "items", filters_dependency.__code__: "filters_dependency",
               solve_dependencies.__code__: "FastAPI's resolution"}
    app = create_app(settings)
    assert _calls(app, f"{ITEMS}?limit=1&status=proposed", watched) == {"items", "filters_dependency"}
    # A value a field refuses: FastAPI's own resolution runs (the filters, valid, are still read), and
    # the route does not.
    assert _calls(app, f"{ITEMS}?limit=0", watched) == {"FastAPI's resolution", "filters_dependency"}


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_counts_are_400_problems_both_ways(client: TestClient, query: str) -> None:
    planned, by_fastapi = both_ways(client, f"{ITEMS}?{query}")
    assert_same(planned, by_fastapi, query)
    assert planned.status_code == 400, planned.text
    assert planned.headers["content-type"] == "application/problem+json"
    assert planned.json()["errors"][0]["field"] in ("limit", "offset")


NAMES = ["limit", "offset", "f", "bbox", "status", "crs", "sortby", "ids", "name", "x", ""]
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)  # no lone surrogates: a URL holds UTF-8


@settings(max_examples=150, derandomize=True, deadline=None, database=None)
@given(st.lists(st.tuples(st.sampled_from(NAMES), TEXT | st.sampled_from(["1", "0", "10", "json", "html"])),
                max_size=4))
def test_any_query_gets_fastapis_answer(client: TestClient, pairs: list[tuple[str, str]]) -> None:
    url = f"{ITEMS}?{urlencode(pairs)}"
    assert_same(*both_ways(client, url), url)


def _items_route() -> APIRoute:
    """The items route as an app holds it (on the app's own router: features.add_items_route)."""
    app = FastAPI()
    features.add_items_route(app)
    return next(r for r in app.router.routes if isinstance(r, APIRoute)
                and r.path == "/collections/{collection_id}/items" and r.methods == {"GET"})


def test_the_plan_takes_exactly_the_parameters_the_route_declares() -> None:
    route = _items_route()
    assert isinstance(route, direct.DirectRoute)
    plan = direct.plan(route.dependant)
    assert plan is not None  # the items have the fast path
    assert set(plan.query) == declared_parameters(route)
    assert {"limit", "offset", "f", "crs", "bbox", "filter", "filter-lang", "sortby"} <= set(plan.query)
    assert set(plan.path) == {"collection_id"}


def _tiny_app(route_dependencies: list[Any], include_dependencies: list[Any]) -> FastAPI:
    router = APIRouter()

    @direct.direct_get(router, "/thing", dependencies=route_dependencies)
    async def thing(n: Annotated[int, Query(ge=1)] = 1) -> Response:
        return PlainTextResponse(str(n))

    app = FastAPI()
    app.include_router(router, dependencies=include_dependencies)
    return app


def test_dependencies_of_the_route_and_of_its_inclusion_run_on_the_plan() -> None:
    calls: list[str] = []

    async def on_route(request: Request) -> None:
        calls.append("route")

    def on_inclusion(request: Request) -> None:  # plain def: run in a worker thread, as FastAPI does
        calls.append("inclusion")

    app = _tiny_app([Depends(on_route)], [Depends(on_inclusion)])
    with TestClient(app) as test_client:
        assert test_client.get("/thing?n=3").text == "3"
        assert sorted(calls) == ["inclusion", "route"]
        refused = test_client.get("/thing?n=0")  # FastAPI's own 422 (this app has no problem handlers)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["query", "n"]


async def real() -> str:
    """A dependency that tests override (at module level: the annotations are read from its globals)."""
    return "real"


async def replaced() -> str:
    """What overrides it."""
    return "replaced"


def test_overridden_dependencies_are_fastapis_to_resolve() -> None:
    router = APIRouter()

    @direct.direct_get(router, "/which")
    async def which(value: Annotated[str, Depends(real)]) -> Response:
        return PlainTextResponse(value)

    app = FastAPI()
    app.include_router(router)
    with TestClient(app) as test_client:
        assert test_client.get("/which").text == "real"
        app.dependency_overrides[real] = replaced
        assert test_client.get("/which").text == "replaced"


def test_what_the_plan_cannot_resolve_is_fastapis_throughout() -> None:
    async def with_yield() -> AsyncIterator[int]:
        yield 1

    async def header(x_thing: Annotated[str | None, Header()] = None) -> None:
        return None

    for dependencies in ([Depends(header)], [Depends(with_yield)]):
        router = APIRouter()

        @direct.direct_get(router, "/thing", dependencies=dependencies)
        async def thing(n: int = 1) -> Response:
            return PlainTextResponse(str(n))

        route = router.routes[0]
        assert isinstance(route, APIRoute) and direct.plan(route.dependant) is None
        app = FastAPI()
        app.include_router(router)
        with TestClient(app) as test_client:
            assert test_client.get("/thing?n=2").text == "2"
    router = APIRouter()

    @direct.direct_get(router, "/many")
    async def many(n: Annotated[list[int], Query()]) -> Response:
        return PlainTextResponse(str(sum(n)))

    route = router.routes[0]
    assert isinstance(route, APIRoute) and direct.plan(route.dependant) is None


# The items path's shortcuts (issue 10's last criterion: the new pages at least as fast as with the fast
# lane). Each is compared with what it replaces, on values chosen to reach every branch of both.

COUNTS = ["0", "1", "10", "49", "007", "9" * 18, "9" * 19, "-1", "+5", " 5", "5 ", "1_0", "5.0", "", "x",
          "\u00b2", "\u0663", "\uff15", "0x10", "1e3", "true"]


def _field(route: APIRoute, alias: str) -> tuple[Any, direct.Reader]:
    plan = direct.plan(route.dependant)
    assert plan is not None
    (param,) = plan.query[alias]
    assert param.field is not None and param.reader is not None
    return param.field, param.reader


def _thing_route(annotation: Any) -> APIRoute:
    """A DirectRoute with one query parameter `v` of this annotation."""
    router = APIRouter()

    async def thing(v: Any = None) -> Response:
        return PlainTextResponse(str(v))

    thing.__annotations__["v"] = annotation  # the object itself: this module's annotations are strings
    direct.direct_get(router, "/thing")(thing)
    route = router.routes[0]
    assert isinstance(route, APIRoute)
    return route


@pytest.mark.parametrize(("route", "alias"), [
    (_items_route(), "limit"), (_items_route(), "offset"), (_items_route(), "f"),
    (_thing_route(Annotated[int | None, Query(gt=2, lt=40)]), "v"),
    (_thing_route(Annotated[int | None, Query(ge=1, strict=True)]), "v"),
    (_thing_route(Annotated[int | None, Query(multiple_of=2)]), "v"),
    (_thing_route(Annotated[str | None, Query(max_length=3)]), "v"),
    (_thing_route(Annotated[float | None, Query(ge=0)]), "v")])
def test_a_reader_reads_what_the_field_reads_or_leaves_it_to_pydantic(route: APIRoute, alias: str) -> None:
    """Whatever a Reader reads itself, pydantic reads the same; every value pydantic refuses, the Reader
    leaves to it (UNSURE), the second time too (only accepted values are remembered)."""
    field, reader = _field(route, alias)
    for _ in range(2):
        for raw in [*COUNTS, "json", "html", "xml", "JSON", "json\n", "abc", "abcd"]:
            value, errors = field.validate(raw, {}, loc=("query", alias))
            read = reader.read(raw)
            if errors:
                assert read is direct.UNSURE, (alias, raw)
            else:
                assert read is direct.UNSURE or (type(read), read) == (type(value), value), (alias, raw)
                reader.remember(raw, value)


def test_limit_offset_and_f_are_read_without_pydantic(client: TestClient,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The counts (digits within their bounds) never reach pydantic; `f` reaches it once per value."""
    checked: list[object] = []
    real = direct.ModelField.validate

    def spy(self: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        checked.append(value)
        return real(self, value, *args, **kwargs)

    monkeypatch.setattr(direct.ModelField, "validate", spy)
    for n in range(3):
        page = client.get(f"{ITEMS}?limit={n + 1}&offset={n}&f=json")
        assert page.status_code == 200 and page.json()["numberReturned"] == min(n + 1, 5 - n)
    assert checked in ([], ["json"])  # "json" once, unless an earlier test already taught the Reader
    checked.clear()
    assert client.get(f"{ITEMS}?limit=0").status_code == 400
    # Refused: pydantic decides (the plan's check, then FastAPI's own resolution answers the 400).
    assert checked[0] == "0" and "projects" in checked[1:]


def test_a_reader_remembers_a_bounded_number_of_values() -> None:
    _, reader = _field(_thing_route(Annotated[str | None, Query(max_length=3)]), "v")
    for n in range(direct.MEMO_SIZE + 50):
        reader.remember(str(n), str(n))
    assert reader.memo is not None and len(reader.memo) == direct.MEMO_SIZE
    assert reader.read(str(direct.MEMO_SIZE + 10)) is direct.UNSURE


@pytest.mark.parametrize(("query", "alternate"), [
    ("f=json", "f=html"),
    ("limit=2&f=json&offset=1", "limit=2&offset=1&f=html"),  # plain pairs: kept as sent
    ("sortby=-name&f=json&limit=1", "sortby=-name&limit=1&f=html"),
    ("bbox=68,34,70,36&f=json", "bbox=68%2C34%2C70%2C36&f=html"),  # re-encoded by urlencode
    ("name=Salang%20Tunnel&f=json", "name=Salang+Tunnel&f=html"),
    ("limit=2", "limit=2&f=html")])  # no f: the query as sent
def test_the_alternate_link_keeps_the_other_parameters(client: TestClient, query: str,
                                                       alternate: str) -> None:
    links = client.get(f"{ITEMS}?{query}").json()["links"]
    (href,) = [ln["href"] for ln in links if ln["rel"] == "alternate"]
    assert href == f"http://testserver{ITEMS}?{alternate}"


def test_the_page_of_every_feature_is_the_page_of_arange() -> None:
    for count in (0, 1, 9, 10, 11, 25):
        for offset in (0, 1, 9, 10, 11, 24, 25, 26, 100):
            for limit in (1, 10, 25):
                whole, quick = Page.of(np.arange(count), offset, limit), Page.of_all(count, offset, limit)
                assert quick.indices.dtype == np.intp and quick.indices.tolist() == whole.indices.tolist()
                assert (quick.matched, quick.next_offset, quick.prev_offset) == \
                    (whole.matched, whole.next_offset, whole.prev_offset) == \
                    (count, offset + limit if offset + limit < count else None,
                     max(0, offset - limit) if offset else None)


@settings(max_examples=200, derandomize=True, deadline=None, database=None)
@given(st.lists(st.tuples(st.sampled_from([b"host", b"accept", b"etag", b"x", b"Host"]),
                          st.binary(max_size=3)), max_size=6))
def test_first_values_reads_headers_as_starlette_does(raw: list[tuple[bytes, bytes]]) -> None:
    names = ("host", "accept", "etag", "absent")
    expected = [Headers(raw=raw).get(name) for name in names]
    found = first_values(raw, *(name.encode() for name in names))
    assert [None if v is None else v.decode("latin-1") for v in found] == expected


IDENTITY_CASES = [
    (status, ctype, encoding, sizes, last)
    for status in (200, 206, 304)
    for ctype in (None, b"application/geo+json", b"image/png", b"Video/MP4; x=1", b"application/grpc+proto",
                  b"application/vnd.apache.parquet")
    for encoding in (None, b"gzip")
    for sizes in ((), (10,), (2000,), (10, 10), (2000, 5, 0), (0, 3000))
    for last in (None, "http.response.trailers", "http.response.pathsend")]


async def _responded(responder: str, messages: list[dict[str, Any]], asked: str) -> list[dict[str, Any]]:
    """What `send` gets from Compression's identity path, or from what it replaced: Starlette's identity
    responder sending through the re-tagging of the gzipped ETag as it was written before (MutableHeaders)."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(copy.deepcopy(message))

    async def retag(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            etag = headers.get("etag")
            if etag and etag.endswith('"'):
                gz = etag[:-1] + '-gz"'
                if headers.get("content-encoding") == "gzip" or (message["status"] == 304 and gz in asked):
                    headers["etag"] = gz
        await send(message)

    async def app(scope: Any, receive: Any, send_on: Any) -> None:
        for message in messages:
            await send_on(message)

    if responder == "starlette":
        await IdentityResponder(app, 1024, exclude_content_types=EXCLUDED)({"type": "http"}, receive_nothing,
                                                                             retag)
    else:
        await app({}, receive_nothing, Identity(send, 1024, asked))
    return sent


async def receive_nothing() -> dict[str, Any]:
    return {"type": "http.disconnect"}


@pytest.mark.parametrize(("status", "ctype", "encoding", "sizes", "last"), IDENTITY_CASES)
def test_the_identity_path_sends_what_starlettes_identity_responder_sends(
        status: int, ctype: bytes | None, encoding: bytes | None, sizes: tuple[int, ...],
        last: str | None) -> None:
    """A request without gzip: `Vary: Accept-Encoding` on what could have been compressed (all the
    Vary values joined), the start held until the first body, a gzipped or 304 tag re-tagged; the same
    messages as Starlette's responder and the re-tagging it replaced, for every kind of response."""
    def messages() -> list[dict[str, Any]]:
        headers = [(b"etag", b'"x"'), *([(b"content-type", ctype)] if ctype else []), (b"vary", b"Accept"),
                   *([(b"content-encoding", encoding)] if encoding else []), (b"vary", b"Origin")]
        out: list[dict[str, Any]] = [{"type": "http.response.start", "status": status, "headers": headers}]
        out += [{"type": "http.response.body", "body": b"a" * n, "more_body": i < len(sizes) - 1}
                for i, n in enumerate(sizes)]
        return out + ([{"type": last}] if last else [])

    for asked in ("", '"x-gz"', '"y"'):
        ours, starlettes = (asyncio.run(_responded(way, messages(), asked)) for way in ("ours", "starlette"))
        assert ours == starlettes, asked


def test_the_service_root_is_base_url() -> None:
    """Kept per (scheme, server, Host, root path): each gives base_url's answer, and the memo is bounded."""
    def request(scheme: str, host: bytes | None, root: str, server: tuple[str, int] | None) -> Request:
        return Request({"type": "http", "scheme": scheme, "path": f"{root}/collections", "root_path": root,
                        "query_string": b"", "server": server,
                        "headers": [(b"host", host)] if host is not None else []})

    cases = [("http", b"a.example", "", None), ("https", b"a.example:8443", "/api", None),
             ("http", None, "", ("10.0.0.1", 80)), ("https", None, "", ("::1", 8443)),
             ("http", b"bad host", "", ("h", 81)), ("http", None, "/x/", None)]
    for _ in range(2):  # the second round from the memo
        for scheme, host, root, server in cases:
            expected = base_url(request(scheme, host, root, server))
            assert features._service_root(request(scheme, host, root, server)) == expected, (scheme, host)
    for n in range(features._MAX_ROOTS + 5):
        features._service_root(request("http", f"h{n}.example".encode(), "", None))
    assert len(features._ROOTS) <= features._MAX_ROOTS


def test_paging_through_a_filter_evaluates_it_once_per_version(settings: Settings,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A CQL2 filter is read once and evaluated once per version, whatever the page; a write makes a new
    version, whose answer counts the new feature (nothing stale is kept); a filter that cannot be read
    is refused every time."""
    evaluated: list[object] = []
    real = cql.evaluate

    def spy(expression: cql.Expression, frame: Any) -> Any:
        evaluated.append(expression)
        return real(expression, frame)

    monkeypatch.setattr(cql, "evaluate", spy)
    where = "filter=" + quote("budget_usd > 2500 AND category = 'school'")
    with TestClient(create_app(settings.model_copy(update={"response_cache_entries": 0}))) as test_client:
        def matched(offset: int) -> int:
            page = test_client.get(f"{ITEMS}?{where}&offset={offset}&limit=1")
            assert page.status_code == 200
            return int(page.json()["numberMatched"])

        assert [matched(n) for n in range(3)] == [0, 0, 0]  # the shipped projects: no school
        assert len(evaluated) == 1
        assert test_client.post(ITEMS, headers=AUTH, json=point_feature(budget_usd=5000)).status_code == 201
        assert [matched(n) for n in range(3)] == [1, 1, 1]
        assert len(evaluated) == 2 and evaluated[0] is evaluated[1]  # read once: the same compiled filter
        for _ in range(2):
            refused = test_client.get(f"{ITEMS}?filter=" + quote("budget_usd >"))
            assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "filter"


def test_the_arrays_kept_per_version_are_bounded_and_read_only() -> None:
    table = FeatureTable.empty()
    for n in range(RECENT_ENTRIES + 5):
        kept = table.recent(("filter", n), lambda: np.zeros(len(table), dtype=bool))
        assert not kept.flags.writeable
    assert len(table._recent) == RECENT_ENTRIES


def test_paging_through_a_selection_selects_once_per_version(settings: Settings,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """bbox, the column filters and datetime select once per version and filter, whatever the page; the
    new version after a write selects again and counts the new feature."""
    selections: list[object] = []
    real = FeatureTable.select

    def spy(table: FeatureTable, **kwargs: Any) -> Any:
        selections.append(kwargs)
        return real(table, **kwargs)

    monkeypatch.setattr(FeatureTable, "select", spy)
    where = "bbox=69,34,70,35&status=proposed&category=school&datetime=2020-01-01/.."
    with TestClient(create_app(settings.model_copy(update={"response_cache_entries": 0}))) as test_client:
        def matched(offset: int) -> int:
            page = test_client.get(f"{ITEMS}?{where}&offset={offset}&limit=1")
            assert page.status_code == 200
            return int(page.json()["numberMatched"])

        assert [matched(n) for n in range(3)] == [0, 0, 0]
        assert len(selections) == 1
        made = point_feature(start_date="2024-05-01")  # a proposed school in Kabul, within the box
        # ?duplicate=allow: the duplicate guard (geo/duplicates.py) would select too.
        added = test_client.post(ITEMS, headers=AUTH, json=made, params={"duplicate": "allow"})
        assert added.status_code == 201
        assert [matched(n) for n in range(3)] == [1, 1, 1]
        assert len(selections) == 2
