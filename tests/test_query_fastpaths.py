"""The fast paths of uncached queries give exactly the answers of the plain evaluation.

- CQL2 `=`, `<>` and `IN` on a string column run on the frame's integer codes of it (`Frame.codes`),
  and number comparisons on the column's numpy array: checked on random data (hypothesis) against a
  row-by-row reading of CQL2's three-valued logic written here, and against the frame without codes.
- A bbox tests points by the spatial index's envelopes only (`SpatialIndex.items`): checked against
  GEOS's intersects on random points, lines and polygons, boxes and points on a grid so that points
  fall on the box's edges.
- A filter's mask is kept per version (`Collection._cql_mask`) and pages are cut from it: paging
  through a filter gives its matches once each, in order, and a write is seen by the next page.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shapely
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo.app import create_app
from geo.crs import DEFAULT
from geo.errors import InvalidInput
from geo.query import cql, cql_fast, frame
from geo.query.frame import Frame
from geo.query.rows import Rows
from geo.query.spatialindex import SpatialIndex
from geo.schema import Queryable
from geo.store.geojson_file import encode_store
from tests.conftest import AUTH, KEY, workspace

QUERYABLES = (Queryable("word", "string"), Queryable("amount", "number"))
WORDS = ["a", "b", "c", "é", ""]
# A property value: one of a few words, a number, a boolean, or missing (None: no property).
VALUES = st.one_of(st.sampled_from([*WORDS, None]), st.integers(-3, 3), st.booleans())
NUMBERS = st.one_of(st.integers(-3, 3), st.floats(-3, 3, allow_nan=False), st.none(), st.sampled_from(["x"]))
Truth = bool | None  # None: unknown


def _frame(words: list[Any], amounts: list[Any]) -> Frame:
    features = [{"properties": {k: v for k, v in (("word", w), ("amount", a)) if v is not None}}
                for w, a in zip(words, amounts, strict=True)]
    ids = [f"f{i}" for i in range(len(features))]
    return Frame.build(features, ids, np.full(len(ids), None, dtype=object), QUERYABLES)


def _word(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _amount(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _compare(op: str, left: Any, right: Any) -> Truth:
    if left is None or right is None:
        return None
    return {"=": left == right, "<>": left != right, "<": left < right, ">": left > right,
            "<=": left <= right, ">=": left >= right}[op]


def _and(a: Truth, b: Truth) -> Truth:
    return False if a is False or b is False else None if a is None or b is None else True


def _or(a: Truth, b: Truth) -> Truth:
    return True if a is True or b is True else None if a is None or b is None else False


def _not(a: Truth) -> Truth:
    return None if a is None else not a


def _quoted(word: str) -> str:
    return "'" + word.replace("'", "''") + "'"


# A random filter as (CQL2 text, the row-by-row reading of it over (word, amount)).
Row = tuple[str | None, float | None]
Case = tuple[str, Callable[[Row], Truth]]


@st.composite
def _conditions(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["word", "word-flipped", "in", "amount", "amount-flipped"]))
    if kind.startswith("word"):
        op, word = draw(st.sampled_from(["=", "<>"])), draw(st.sampled_from([*WORDS, "zz"]))
        if kind == "word":
            return f"word {op} {_quoted(word)}", lambda row: _compare(op, row[0], word)
        return f"{_quoted(word)} {op} word", lambda row: _compare(op, word, row[0])
    if kind == "in":
        options = draw(st.lists(st.sampled_from([*WORDS, "zz"]), min_size=1, max_size=3))
        negated = draw(st.booleans())
        text = f"word {'NOT ' if negated else ''}IN ({', '.join(_quoted(o) for o in options)})"

        def within(row: Row) -> Truth:
            found = None if row[0] is None else row[0] in options
            return _not(found) if negated else found
        return text, within
    op = draw(st.sampled_from(["=", "<>", "<", ">", "<=", ">="]))
    number = draw(st.integers(-3, 3))
    if kind == "amount":
        return f"amount {op} {number}", lambda row: _compare(op, row[1], float(number))
    return f"{number} {op} amount", lambda row: _compare(op, float(number), row[1])


@st.composite
def _filters(draw: st.DrawFn) -> Case:
    text, judge = draw(_conditions())
    for _ in range(draw(st.integers(0, 2))):
        how = draw(st.sampled_from(["and", "or", "not"]))
        if how == "not":
            text, judge = f"NOT ({text})", (lambda j: lambda row: _not(j(row)))(judge)
            continue
        other_text, other = draw(_conditions())
        combine = _and if how == "and" else _or
        text = f"({text}) {how.upper()} ({other_text})"
        judge = (lambda a, b, c: lambda row: c(a(row), b(row)))(judge, other, combine)
    return text, judge


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(VALUES, NUMBERS), min_size=1, max_size=40), case=_filters())
def test_coded_and_numeric_comparisons_match_the_rules_and_the_plain_evaluation(
        rows: list[tuple[Any, Any]], case: Case) -> None:
    """Every filter keeps exactly the rows where CQL2's three-valued logic says TRUE: on numpy arrays
    (geo/query/cql_fast.py), and by the nodes with the frame's codes of the string column and without
    them (the pyarrow comparison)."""
    text, judge = case
    words, amounts = [w for w, _ in rows], [a for _, a in rows]
    expected = [judge((_word(w), _amount(a))) is True for w, a in rows]
    expression = cql.parse(text, "cql2-text", DEFAULT)
    coded = _frame(words, amounts)
    assert coded.codes("word") is not None
    assert cql_fast.truth(expression, coded) is not None  # every filter drawn here is one it reads
    assert cql.evaluate(expression, coded).tolist() == expected, text
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cql_fast, "truth", lambda node, frame_: None)
        assert cql.evaluate(expression, coded).tolist() == expected, text
        patch.setattr(frame, "CODED_AT_MOST", 0)
        plain = _frame(words, amounts)
        if len(set(filter(None, map(_word, words)))) > len(rows) // 16:
            assert plain.codes("word") is None  # the pyarrow comparison answers
        assert cql.evaluate(expression, plain).tolist() == expected, text


def test_a_column_of_many_values_is_not_coded() -> None:
    """Codes are kept for columns of few values only: an id-like column compares its strings."""
    many = _frame([f"w{i}" for i in range(frame.CODED_AT_MOST + 1)], [None] * (frame.CODED_AT_MOST + 1))
    assert many.codes("word") is None
    expression = cql.parse("word = 'w7' OR word IN ('w9', 'nope')", "cql2-text", DEFAULT)
    assert np.flatnonzero(cql.evaluate(expression, many)).tolist() == [7, 9]


# Geometries on a grid of whole numbers, so that points and vertices fall on boxes' edges.
COORD = st.integers(0, 6).map(float)
POINTS = st.builds(shapely.Point, COORD, COORD)
LINES = st.lists(st.tuples(COORD, COORD), min_size=2, max_size=3).map(shapely.LineString)
POLYGONS = st.builds(lambda x, y, w, h: shapely.box(x, y, x + w, y + h), COORD, COORD,
                     st.integers(1, 2), st.integers(1, 2))
GEOMETRIES = st.one_of(POINTS, POINTS, LINES, POLYGONS, st.none(), st.just(shapely.Point()))


@settings(max_examples=300, deadline=None)
@given(geometries=st.lists(GEOMETRIES, min_size=1, max_size=30),
       box=st.tuples(COORD, COORD, st.integers(0, 3), st.integers(0, 3)))
def test_the_bbox_tests_points_by_envelope_and_the_rest_with_geos(
        geometries: list[Any], box: tuple[float, float, int, int]) -> None:
    """The index's items meeting a box are exactly those GEOS says intersect it, edges included."""
    shapes = np.empty(len(geometries), dtype=object)
    shapes[:] = geometries
    rows = Rows([b""] * len(shapes), [str(i) for i in range(len(shapes))], shapes, len(shapes))
    index = SpatialIndex.build(rows, np.arange(len(shapes), dtype=np.intp))
    x, y, w, h = box
    query = shapely.box(x, y, x + w, y + h)
    expected = [i for i, g in enumerate(geometries) if g is not None and shapely.intersects(g, query)]
    assert sorted(index.items(query).tolist()) == expected


PROJECTS = [
    {"type": "Feature", "id": f"p{i:02d}", "geometry": {"type": "Point", "coordinates": [61 + i * 0.4, 33.0]},
     "properties": {"name": f"Project {i}", "category": "school" if i % 3 else "health",
                    "status": "proposed", "budget_usd": 1000 * i, "province": "Kabul"}}
    for i in range(30)]


def test_paging_through_a_filter_gives_each_match_once_and_sees_a_write(tmp_path: Path,
                                                                        provinces_cache: Path) -> None:
    """Pages of a CQL2 filter (its mask kept between pages) are the matches worked out by hand,
    in layer order, each once; after a write the next page is of the new version."""
    settings_ = workspace(tmp_path, provinces_cache, api_keys=KEY)
    settings_.projects.write_bytes(encode_store(PROJECTS))
    with TestClient(create_app(settings_)) as api:
        wanted = [f"p{i:02d}" for i in range(30) if i % 3 and 1000 * i > 5000]  # school, budget > 5000
        query = "/collections/projects/items?filter=category%3D%27school%27%20AND%20budget_usd%3E5000"
        seen: list[str] = []
        for offset in range(0, len(wanted), 4):
            page = api.get(f"{query}&offset={offset}&limit=4").json()
            assert page["numberMatched"] == len(wanted)
            seen += [f["id"] for f in page["features"]]
        assert seen == wanted
        before = api.get(f"{query}&limit=100").json()["numberMatched"]
        gone = api.delete(f"/collections/projects/items/{wanted[0]}", headers=AUTH)
        assert gone.status_code == 204
        after = api.get(f"{query}&limit=100").json()
        assert (before, after["numberMatched"]) == (len(wanted), len(wanted) - 1)
        assert [f["id"] for f in after["features"]] == wanted[1:]


def test_filters_the_fast_path_does_not_read_go_to_the_nodes() -> None:
    """LIKE, two properties, a name that is no queryable, a type mismatch: the nodes answer (and refuse)."""
    frame_ = _frame(["a", "b"], [1, 2])
    for text in ("word LIKE 'a%'", "word = word", "amount + 1 > 2", "nope = 'a'", "word = 1"):
        assert cql_fast.truth(cql.parse(text, "cql2-text", DEFAULT), frame_) is None, text
    mixed = cql.parse("word LIKE 'a%' AND amount > 0", "cql2-text", DEFAULT)
    assert cql.evaluate(mixed, frame_).tolist() == [True, False]
    with pytest.raises(InvalidInput, match="not a queryable"):
        cql.evaluate(cql.parse("nope = 'a'", "cql2-text", DEFAULT), frame_)
    with pytest.raises(InvalidInput, match="compares values of one type"):
        cql.evaluate(cql.parse("word = 1 OR amount > 1", "cql2-text", DEFAULT), frame_)


def test_a_string_comparison_on_codes_keeps_unknown_for_missing_values() -> None:
    """`<>` is unknown, not TRUE, where the property is missing: NOT (word <> 'a') keeps only 'a'."""
    frame_ = _frame(["a", None, "b", "a"], [None] * 4)
    expression = cql.parse("NOT (word <> 'a')", "cql2-text", DEFAULT)
    assert cql.evaluate(expression, frame_).tolist() == [True, False, False, True]
    assert isinstance(frame_.columns["word"], pd.Series)
