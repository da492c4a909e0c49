"""Generated query strings against a real server: whatever a client sends, no 5xx and no traceback.

Hypothesis builds query strings from the real parameter names (and one unknown) with values of every
kind: text, ASCII and unicode digits, huge and special numbers, dates at and beyond the calendar's
edges, lists of known and unknown names, and CQL2 (text and JSON) from a small grammar with hostile
literals. Values shaped for one parameter also go to the others. Schemathesis adds requests that
break the OpenAPI document's rules for the GET operations that filter. Both are derandomized and
bounded, so a run is the same every time and takes seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from geo.query.params import PARAMETERS
from tests.conftest import KEY, workspace
from tests.server import live_server

ROUTES = ("/collections/projects/items", "/stats", "/layers/projects.geojson")
NAMES = (*PARAMETERS, "limit", "offset", "f", "bom", "colour")
# Characters that str.isdigit() or float() take although they are not ASCII digits, and other odd ones.
ODD = "\u00b2\u00b3\u0660\u0663\u06f3\u0967\u0a67\uff11\u2460\u00bd\u216b\x00\u202e\ufeff\u200b"

# Numbers as text: ASCII or not, signed, huge, special.
DIGITS = st.text(alphabet="0123456789" + ODD, max_size=6)
INTEGERS = st.one_of(st.integers(-1000, 1000), st.integers(10**15, 10**400), st.integers(max_value=-(10**15)))
NUMBERS = st.one_of(DIGITS, INTEGERS.map(str), st.floats().map(repr),
                    st.sampled_from(["nan", "inf", "-inf", "1e999", "0x10", "1_0", " 5", "+5", "5.0", ""]))
# Dates and date-times at and beyond the calendar's edges, with odd offsets; intervals of them.
TIMES = ("", "T00:00:00", "T23:59:59Z", "T00:00:00+01:00", "T23:59:59-01:00", "T24:00:00", "T12:00:00+25:00")
INSTANTS = st.builds("{:04d}-{:02d}-{:02d}{}".format, st.sampled_from([0, 1, 2020, 9999, 10000]),
                     st.integers(0, 13), st.integers(0, 32), st.sampled_from(TIMES))
ENDS = st.one_of(INSTANTS, st.sampled_from(["..", ""]))
DATETIMES = st.one_of(INSTANTS, st.builds("{}/{}".format, ENDS, ENDS), st.sampled_from(["..", "/", "a/b/c"]))
# Comma-separated names and values, known and not.
WORDS = st.one_of(st.sampled_from(["name", "-name", "+budget_usd", "--name", "-", "geometry", "id", "colour",
                                   "proposed", "school", "AF-KAB", "salang-tunnel-2", ""]),
                  st.text(max_size=4))
LISTS = st.lists(WORDS, max_size=4).map(",".join)
# CQL2 text from a small grammar, with hostile literals: huge numbers, zero divisors, edge dates.
PROPERTIES = st.sampled_from(["name", "budget_usd", "start_date", "created_at", "geometry", "status",
                              "colour"])
LITERALS = st.one_of(INTEGERS.map(str), st.sampled_from(["0", "1.5", "'x'", "'%'", "TRUE", "POINT(69 34)",
                                                         "POLYGON((60 29,75 29,75 39,60 29))"]),
                     INSTANTS.map("DATE('{}')".format), INSTANTS.map("TIMESTAMP('{}')".format))
OPERANDS = st.one_of(PROPERTIES, LITERALS, st.builds("{} {} {}".format, PROPERTIES | LITERALS,
                                                     st.sampled_from("+-*/"), PROPERTIES | LITERALS))
PREDICATES = st.one_of(
    st.builds("{} {} {}".format, OPERANDS, st.sampled_from(["=", "<>", "<", ">", "<=", ">="]), OPERANDS),
    st.builds("{} LIKE {}".format, OPERANDS, LITERALS), st.builds("{} IS NULL".format, OPERANDS),
    st.builds("{} BETWEEN {} AND {}".format, OPERANDS, OPERANDS, OPERANDS),
    st.builds("{} IN ({}, {})".format, OPERANDS, LITERALS, LITERALS),
    st.builds("S_INTERSECTS({}, {})".format, OPERANDS, OPERANDS))
CQL_TEXT = st.recursive(PREDICATES, lambda inner: st.one_of(
    st.builds("({}) AND ({})".format, inner, inner), st.builds("{} OR {}".format, inner, inner),
    st.builds("NOT ({})".format, inner)), max_leaves=4)
# CQL2 JSON: operators over properties and literals, geometry types real and not.
JSON_LEAVES = st.one_of(
    st.integers(-10, 10), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=4),
    st.booleans(),
    PROPERTIES.map(lambda name: {"property": name}), INSTANTS.map(lambda t: {"timestamp": t}),
    st.builds(lambda kind, xy: {"type": kind, "coordinates": xy},
              st.sampled_from(["Point", "Foo", "polygon", "", "LineString"]),
              st.lists(st.integers(-200, 200), max_size=3)))
CQL_JSON = st.recursive(JSON_LEAVES, lambda inner: st.one_of(
    st.builds(lambda op, args: {"op": op, "args": args},
              st.sampled_from(["=", "<", "and", "or", "not", "like", "in", "between", "isNull",
                               "s_intersects", "/", "+", "casei", "t_after", "nope"]),
              st.lists(inner, max_size=3)),
    st.lists(inner, max_size=2)), max_leaves=6).map(json.dumps)
FILTERS = st.one_of(CQL_TEXT.map(lambda text: [("filter", text)]),
                    CQL_JSON.map(lambda text: [("filter-lang", "cql2-json"), ("filter", text)]))
# Values shaped like what each parameter takes; any value may also go to any name.
SHAPED = {"limit": NUMBERS, "offset": NUMBERS, "bbox": st.lists(NUMBERS, max_size=7).map(",".join),
          "datetime": DATETIMES, "sortby": LISTS, "properties": LISTS, "ids": LISTS, "status": LISTS,
          "category": LISTS, "province": LISTS, "f": st.sampled_from(["json", "html", "xml", "\u00b2", ""]),
          "bom": st.sampled_from(["true", "1", "yes", "maybe", "\u00b2"])}
VALUES = st.one_of(NUMBERS, DATETIMES, LISTS, st.text(max_size=12))
PAIRS = st.one_of(
    *[st.tuples(st.just(name), values).map(lambda pair: [pair]) for name, values in SHAPED.items()],
    FILTERS, st.tuples(st.sampled_from(NAMES), VALUES).map(lambda pair: [pair]))
QUERIES = st.lists(PAIRS, min_size=1, max_size=3).map(
    lambda groups: urlencode([pair for group in groups for pair in group]))
BATCH, BATCHES, WORKERS = 20, 10, 5  # 200 query strings per route, sent a batch at a time


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Iterator[tuple[str, Path]]:
    """The service on temporary copies of the store and layers, and its log file."""
    folder = tmp_path_factory.mktemp("fuzz")
    log = folder / "server.log"
    with live_server(workspace(folder, provinces_cache, api_keys=KEY), log=log) as base:
        yield base, log


def _send(base: str, route: str, queries: list[str]) -> list[tuple[str, int, str]]:
    """Send the queries in turn on one connection: (query, status, content type) of each."""
    answers = []
    with httpx.Client(base_url=base, timeout=30) as http:
        for query in queries:
            try:
                response = http.get(f"{route}?{query}")
            except httpx.TransportError as exc:  # a dropped connection counts as a server error
                answers.append((query, 599, repr(exc)))
                continue
            answers.append((query, response.status_code, response.headers.get("content-type", "")))
    return answers


def _statuses(base: str, route: str, queries: list[str]) -> list[tuple[str, int, str]]:
    """The answers to the queries, sent over a few connections at once."""
    with ThreadPoolExecutor(WORKERS) as pool:
        shares = [queries[n::WORKERS] for n in range(WORKERS)]
        parts = pool.map(_send, [base] * WORKERS, [route] * WORKERS, shares)
        return [answer for part in parts for answer in part]


@pytest.mark.parametrize("route", ROUTES)
def test_generated_query_strings_never_get_a_server_error(server: tuple[str, Path], route: str) -> None:
    base, log = server
    sent: list[int] = []

    @settings(max_examples=BATCHES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(QUERIES, min_size=BATCH, max_size=BATCH))
    def run(queries: list[str]) -> None:
        answers = _statuses(base, route, queries)
        sent.extend(status for _, status, _ in answers)
        errors = [(q, s) for q, s, _ in answers if s >= 500]
        assert not errors, errors
        odd = [(q, s, t) for q, s, t in answers if s >= 400 and t != "application/problem+json"]
        assert not odd, odd

    run()
    assert len(sent) == BATCH * BATCHES
    assert any(s == 200 for s in sent) and any(400 <= s < 500 for s in sent)  # both kinds were sent
    assert "Traceback" not in log.read_text(errors="replace")


# The GET operations that take the filter parameters (and limit, offset, f, bom).
OPERATIONS = ("/collections/{collection_id}/items", "/stats", "/map", "/layers/{name}")


@pytest.mark.parametrize("mode", [GenerationMode.NEGATIVE, GenerationMode.POSITIVE])
@pytest.mark.parametrize("path", OPERATIONS)
def test_schemathesis_gets_no_server_error(server: tuple[str, Path], path: str, mode: GenerationMode) -> None:
    base, log = server
    operation = schemathesis.openapi.from_url(f"{base}/api")[path]["GET"]
    calls: list[int] = []

    @settings(max_examples=25, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call_and_validate(base_url=base, checks=[not_a_server_error])
        calls.append(response.status_code)

    run()
    assert calls, f"schemathesis generated no request for GET {path}"
    assert "Traceback" not in log.read_text(errors="replace")
