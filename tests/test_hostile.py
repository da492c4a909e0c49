"""Hostile query parameters, sent to a real server: each is a 4xx problem naming the parameter, never a
500, never a traceback or a flood in the log, never a change to the store.

One table: every hostile value of every parameter (those of the security review, issue 8, and others),
sent to every route that takes the parameter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from geo.settings import Settings
from tests.conftest import KEY, workspace
from tests.server import live_server

ITEMS = "/collections/projects/items"
ITEM = "/collections/projects/items/salang-tunnel-2"
FILTERED = (ITEMS, "/stats", "/map", "/layers/projects.geojson", "/layers/projects.csv")
# The routes that take each parameter; the filter parameters go to every route in FILTERED.
ROUTES = {"limit": (ITEMS,), "offset": (ITEMS,), "f": (ITEMS, ITEM),
          "bom": ("/layers/projects.geojson", "/layers/projects.csv")}

WORKERS = 6
ZEROS = "0" * 400
DEEP_JSON = '{"op":"not","args":[' * 300 + '{"op":"=","args":[1,1]}' + "]}" * 300
FOO = '{"op":"s_intersects","args":[{"property":"geometry"},{"type":"Foo","coordinates":[1,2]}]}'

# (the parameter the problem must name, the query as (name, value) pairs, sent percent-encoded)
Pairs = tuple[tuple[str, str], ...]
HOSTILE: list[tuple[str, Pairs]] = [
    # CQL2 text: arithmetic faults, huge literals, the calendar's edges, nesting, length, misuse.
    ("filter", (("filter", "1/0=1"),)),
    ("filter", (("filter", "budget_usd/(1-1)>1 AND 1/0=1"),)),
    ("filter", (("filter", f"budget_usd>1{ZEROS}"),)),
    ("filter", (("filter", f"budget_usd*1{ZEROS}>1"),)),
    ("filter", (("filter", "created_at>TIMESTAMP('0001-01-01T00:00:00+01:00')"),)),
    ("filter", (("filter", "created_at<TIMESTAMP('9999-12-31T23:59:59-01:00')"),)),
    ("filter", (("filter", "start_date>DATE('2020-02-30')"),)),
    ("filter", (("filter", "start_date>DATE('0000-01-01')"),)),
    ("filter", (("filter", "1=1 AND " * 600 + "1=1"),)),
    ("filter", (("filter", "1=1 OR " * 150 + "1=1"),)),
    ("filter", (("filter", "-" * 300 + "budget_usd=1"),)),
    ("filter", (("filter", "budget_usd" + "+1" * 200 + ">1"),)),
    ("filter", (("filter", "(" * 50 + "1=1" + ")" * 49),)),
    ("filter", (("filter", "name='" + "x" * 9000 + "'"),)),
    ("filter", (("filter", "LOWER(budget_usd)='a'"),)),
    ("filter", (("filter", "colour='red'"),)),
    ("filter", (("filter", "S_INTERSECTS(geometry,POINT(1))"),)),
    ("filter", (("filter", "name = 'a' AND"),)),
    ("filter", (("filter", "\x00"),)),
    ("filter", (("filter", "\uff11=\uff11"),)),  # fullwidth digits
    # CQL2 JSON: unknown geometry types, nesting, wrong shapes, arithmetic faults.
    ("filter", (("filter-lang", "cql2-json"), ("filter", FOO))),
    ("filter", (("filter-lang", "cql2-json"), ("filter", FOO.replace('"Foo"', "5")))),
    ("filter", (("filter-lang", "cql2-json"), ("filter", DEEP_JSON))),
    ("filter", (("filter-lang", "cql2-json"), ("filter", "[1,2]"))),
    ("filter", (("filter-lang", "cql2-json"), ("filter", '{"op":"=","args":[{"op":"/","args":[1,0]},1]}'))),
    ("filter", (("filter-lang", "cql2-json"), ("filter", '{"op":"in","args":[true,true]}'))),
    ("filter", (("filter-lang", "cql2-json"), ("filter", '{"op":"like","args":[{"property":"name"},5]}'))),
    ("filter", (("filter-lang", "cql2-json"),
                ("filter", '{"filter-lang":"cql2-text","op":"=","args":[1,1]}'))),
    ("filter", (("filter-lang", "cql2-json"), ("filter", '{"property":"name"}'))),
    ("filter", (("filter-lang", "cql2-json"), ("filter", '{"op":"=","args":[1,1e400]}'))),
    ("filter", (("filter-lang", "cql2-json"), ("filter", '{"op":">","args":[{"property":"created_at"},'
                                                         '{"timestamp":"0001-01-01T00:00:00+01:00"}]}'))),
    ("filter-lang", (("filter-lang", "cql2-xml"), ("filter", "1=1"))),
    ("filter-crs", (("filter-crs", "EPSG:4326"), ("filter", "1=1"))),
    # datetime: the calendar's edges, open intervals, garbage, odd digits.
    ("datetime", (("datetime", "0001-01-01T00:00:00+01:00"),)),
    ("datetime", (("datetime", "9999-12-31T23:59:59-01:00"),)),
    ("datetime", (("datetime", "0001-01-01T00:00:00+01:00/.."),)),
    ("datetime", (("datetime", "../9999-12-31T23:59:59-01:00"),)),
    ("datetime", (("datetime", ".."),)),
    ("datetime", (("datetime", "../.."),)),
    ("datetime", (("datetime", "/"),)),
    ("datetime", (("datetime", "2020-01-01/2021-01-01/2022-01-01"),)),
    ("datetime", (("datetime", "2020-02-30"),)),
    ("datetime", (("datetime", "2024-01-01/2023-01-01"),)),
    ("datetime", (("datetime", "\uff12\uff10\uff12\uff10-01-01"),)),  # fullwidth digits
    ("datetime", (("datetime", "yesterday"),)),
    ("datetime", (("datetime", "9" * 5000),)),
    ("datetime", (("datetime", "2020-01-01"), ("datetime", "2021-01-01"))),
    # limit and offset: odd digits (² passes str.isdigit), huge, signed, empty, repeated.
    ("limit", (("limit", "²"),)),
    ("limit", (("limit", "٣"),)),
    ("limit", (("limit", "9" * 5000),)),
    ("limit", (("limit", "9" * 19),)),
    ("limit", (("limit", "-1"),)),
    ("limit", (("limit", "0"),)),
    ("limit", (("limit", ""),)),
    ("limit", (("limit", "+5"),)),
    ("limit", (("limit", " 5"),)),
    ("limit", (("limit", "1_0"),)),
    ("limit", (("limit", "5.0"),)),
    ("limit", (("limit", "1"), ("limit", "2"))),
    ("offset", (("offset", "²"),)),
    ("offset", (("offset", "٣"),)),
    ("offset", (("offset", "9" * 5000),)),
    ("offset", (("offset", "-1"),)),
    ("offset", (("offset", ""),)),
    ("offset", (("offset", "0"), ("offset", "0"))),
    # bbox: odd numbers, NaN, infinity, huge, five numbers, nothing but commas, repeated.
    ("bbox", (("bbox", "nan,34,70,36"),)),
    ("bbox", (("bbox", "68,34,inf,36"),)),
    ("bbox", (("bbox", "1e999,34,70,36"),)),
    ("bbox", (("bbox", "68,34,7000,36"),)),
    ("bbox", (("bbox", "68,34,70,36,1"),)),
    ("bbox", (("bbox", "68,34"),)),
    ("bbox", (("bbox", ",,,"),)),
    ("bbox", (("bbox", "٦٨,34,70,36"),)),
    ("bbox", (("bbox", "6_8,34,70,36"),)),
    ("bbox", (("bbox", "0x44,34,70,36"),)),
    ("bbox", (("bbox", "1" * 5000 + ",34,70,36"),)),
    ("bbox", (("bbox", "68,34,70,36"), ("bbox", "68,34,70,36"))),
    # sortby, properties, ids: unknown names, empty lists, repeated.
    ("sortby", (("sortby", "colour"),)),
    ("sortby", (("sortby", "-"),)),
    ("sortby", (("sortby", "--name"),)),
    ("sortby", (("sortby", ","),)),
    ("sortby", (("sortby", ",".join(["colour"] * 2000)),)),
    ("sortby", (("sortby", "name"), ("sortby", "id"))),
    ("properties", (("properties", "colour"),)),
    ("properties", (("properties", ","),)),
    ("properties", (("properties", "name"), ("properties", "status"))),
    ("ids", (("ids", ",,"),)),
    ("ids", (("ids", "a"), ("ids", "b"))),
    # the property filters.
    ("status", (("status", "done"),)),
    ("status", (("status", ","),)),
    ("status", (("status", "proposed"), ("status", "planned"))),
    ("category", (("category", "castle"),)),
    ("province", (("province", "AF-KAB"), ("province", "AF-HER"))),
    # the format and the CSV byte-order mark.
    ("f", (("f", "xml"),)),
    ("f", (("f", "²"),)),
    ("f", (("f", "json"), ("f", "html"))),
    ("bom", (("bom", "maybe"),)),
]


def _routes(pairs: Pairs) -> tuple[str, ...]:
    """The routes that take every parameter of the query."""
    names = {name for name, _ in pairs}
    return tuple(r for r in (*FILTERED, ITEM) if all(r in ROUTES.get(n, FILTERED) for n in names))


@dataclass(frozen=True)
class Case:
    """One hostile request and the parameter its problem must name."""

    route: str
    blamed: str
    query: str

    def __str__(self) -> str:
        return f"{self.route}?{self.query[:120]}"


CASES = [Case(route, blamed, "&".join(f"{quote(n)}={quote(v, safe='')}" for n, v in pairs))
         for blamed, pairs in HOSTILE for route in _routes(pairs)]


@dataclass(frozen=True)
class Server:
    """A running service, its log file and its store file."""

    base: str
    log: Path
    store: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Iterator[Server]:
    """The service in a subprocess on temporary copies of the store and layers, its stderr in a file."""
    folder = tmp_path_factory.mktemp("hostile")
    settings: Settings = workspace(folder, provinces_cache, api_keys=KEY)
    log = folder / "server.log"
    with live_server(settings, log=log) as base:
        yield Server(base, log, settings.projects)


def _problem_faults(case: Case, response: httpx.Response) -> list[str]:
    """What is wrong with one answer (nothing, for a 4xx problem that names the parameter)."""
    if not 400 <= response.status_code < 500:
        return [f"{case}: status {response.status_code}"]
    if response.headers.get("content-type") != "application/problem+json":
        return [f"{case}: content type {response.headers.get('content-type')}"]
    problem = response.json()
    faults = [f"{case}: no {key} in {problem}" for key in ("status", "title", "detail")
              if not problem.get(key)]
    named = {str(e.get("field")) for e in problem.get("errors", [])}
    if case.blamed not in named and not problem.get("detail", "").startswith(case.blamed):
        faults.append(f"{case}: the problem does not name {case.blamed}: {problem}")
    return faults


def _send(base: str, cases: list[Case]) -> list[str]:
    """Send these cases in turn; what is wrong with the answers."""
    faults: list[str] = []
    with httpx.Client(base_url=base, timeout=30) as http:
        for case in cases:
            try:
                faults += _problem_faults(case, http.get(f"{case.route}?{case.query}"))
            except httpx.TransportError as exc:  # the server dropped the connection (after a 500)
                faults.append(f"{case}: {exc!r}")
    return faults


def test_every_hostile_parameter_is_a_client_error_on_every_route(server: Server) -> None:
    assert len(CASES) > 300  # every route that takes each parameter, not one route per value
    store_before = hashlib.sha256(server.store.read_bytes()).hexdigest()
    log_before = server.log.stat().st_size
    # A few connections at once: each answer is judged on its own, and the run takes seconds.
    with ThreadPoolExecutor(WORKERS) as pool:
        parts = pool.map(_send, [server.base] * WORKERS, [CASES[n::WORKERS] for n in range(WORKERS)])
        faults = [fault for part in parts for fault in part]
    assert not faults, "\n".join(faults)
    # At most a line per bad request, and no trace or parser dump (each 400 should write nothing).
    written = server.log.read_bytes()[log_before:]
    assert written.count(b"\n") <= len(CASES) and len(written) <= 200 * len(CASES), written[-3000:]
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log and "STATE STACK DUMP" not in log, log[-3000:]
    assert hashlib.sha256(server.store.read_bytes()).hexdigest() == store_before
