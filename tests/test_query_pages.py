"""A page of a CQL2 filter is cut from its mask (`Page.of_mask`): a count and the positions of the rows
up to the page's end, a block of rows at a time, not a list of every match.

Checked against a row-by-row reading of the mask (hypothesis, with blocks of a few rows so that pages
start and end inside blocks, across them and past the last match), by hand on masks of known matches
(an empty mask, fewer matches than the offset, a page across the boundary of two real blocks), and
through `Collection.features` against the plain evaluation of the same plan. Also: the cache key
hashed once (`HashedKey`), and the arrays the fast path reads and gives.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo import catalogue
from geo.catalogue import Collection, Page
from geo.crs import DEFAULT
from geo.lru import HashedKey, SizedLRU
from geo.query import cql, cql_fast
from geo.query.featuretable import FeatureTable
from geo.query.frame import Frame
from geo.query.params import Filters
from geo.schema import Queryable


def _reading(mask: list[bool], offset: int, limit: int) -> tuple[list[int], int, int | None, int | None]:
    """The page row by row: the matches' positions, those at offset..offset+limit, and the links."""
    matches = [i for i, hit in enumerate(mask) if hit]
    following = offset + limit
    return (matches[offset:following], len(matches), following if following < len(matches) else None,
            max(0, offset - limit) if offset > 0 else None)


@settings(max_examples=400, deadline=None)
@given(mask=st.lists(st.booleans(), max_size=60), offset=st.integers(0, 70), limit=st.integers(1, 20),
       block=st.integers(1, 9))
def test_a_page_cut_from_a_mask_is_the_row_by_row_page(mask: list[bool], offset: int, limit: int,
                                                        block: int) -> None:
    """Every page (inside a block, across blocks, past the end, of an empty mask) is the one read row
    by row."""
    array = np.array(mask, dtype=np.bool_)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(catalogue, "MASK_BLOCK", block)
        page = Page.of_mask(array, offset, limit)
    indices, matched, next_offset, prev_offset = _reading(mask, offset, limit)
    assert page.indices.tolist() == indices
    assert (page.matched, page.next_offset, page.prev_offset) == (matched, next_offset, prev_offset)
    assert (page.offset, page.limit) == (offset, limit)


def test_pages_of_masks_worked_by_hand() -> None:
    """An empty mask, fewer matches than the offset, and a page across two blocks of the real size."""
    empty = Page.of_mask(np.zeros(0, dtype=np.bool_), 0, 10)
    assert (empty.indices.tolist(), empty.matched, empty.next_offset, empty.prev_offset) == (
        [], 0, None, None)
    none = Page.of_mask(np.zeros(5000, dtype=np.bool_), 0, 10)
    assert (none.indices.tolist(), none.matched, none.next_offset) == ([], 0, None)
    three = np.zeros(100, dtype=np.bool_)
    three[[3, 50, 99]] = True
    past = Page.of_mask(three, 5, 2)
    assert (past.indices.tolist(), past.matched, past.next_offset, past.prev_offset) == ([], 3, None, 3)
    # Every 1000th row of 10,000 matches: the 4th to the 7th cross the block boundary at 4096.
    sparse = np.zeros(10_000, dtype=np.bool_)
    sparse[::1000] = True
    page = Page.of_mask(sparse, 3, 4)
    assert catalogue.MASK_BLOCK == 4096
    assert (page.indices.tolist(), page.matched, page.next_offset, page.prev_offset) == (
        [3000, 4000, 5000, 6000], 10, 7, 0)
    assert page.indices.dtype == np.intp
    # Deep: 40 matches over ten blocks, the page in the last.
    wide = np.zeros(40_000, dtype=np.bool_)
    wide[::1000] = True
    deep = Page.of_mask(wide, 37, 5)
    assert (deep.indices.tolist(), deep.matched, deep.next_offset) == ([37_000, 38_000, 39_000], 40, None)


def test_a_filters_first_page_is_cut_from_its_mask_and_later_pages_slice_its_kept_matches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A new filter lists no matches; asked again (a client paging), its matches are listed once and
    kept, and every later page is a slice of them (no second listing), with the same answers."""
    table = _table(10_000)
    collection = _collection(table)
    filters = Filters(cql=cql.parse("category = 'water' AND budget < 3000", "cql2-text", DEFAULT))
    expected = [i for i in range(3000) if i % 3 == 2]  # water rows below 3000 (row 7 has no budget)
    listed: list[int] = []
    real = np.flatnonzero

    def counting(array: Any) -> Any:
        listed.append(len(array))
        return real(array)

    monkeypatch.setattr(catalogue.np, "flatnonzero", counting)
    first = collection.features(table, filters, offset=0, limit=5)
    assert first.indices.tolist() == expected[:5] and first.matched == len(expected)
    assert 10_000 not in listed  # cut from the mask, a block at a time
    for offset in (5, 100, 990, 2000):
        page = collection.features(table, filters, offset=offset, limit=5)
        assert page.indices.tolist() == expected[offset:offset + 5] and page.matched == len(expected)
    assert listed.count(10_000) == 1  # listed once, at the second request, then sliced


QUERYABLES = (Queryable("category", "string"), Queryable("budget", "number"))
CATEGORIES = ["school", "health", "water"]


def _table(count: int) -> FeatureTable:
    """Features whose category cycles through CATEGORIES and whose budget is their number (row 7 has
    none), points on a line."""
    features = [{"type": "Feature", "id": f"f{i}",
                 "geometry": {"type": "Point", "coordinates": [60 + i / count, 33]},
                 "properties": {"category": CATEGORIES[i % 3], **({} if i == 7 else {"budget": i})}}
                for i in range(count)]
    return FeatureTable(features, "v1")


def _collection(table: FeatureTable) -> Collection:
    return Collection(id="things", title="Things", description="", keywords=(), load=lambda: table,
                      queryables=QUERYABLES, max_limit=100_000)


@pytest.mark.parametrize(("text", "expected"), [
    # School rows are 0, 3, 6, ...; budget > 9000: rows 9003, 9006, ..., 9999 (333 of them, none in
    # the first two blocks).
    ("category = 'school' AND budget > 9000", [i for i in range(9003, 10_000, 3)]),
    # Row 7 has no budget: NOT (budget < 5) is unknown there, not TRUE.
    ("NOT (budget < 5) AND category <> 'school'", [i for i in range(5, 10_000) if i % 3 and i != 7]),
    ("category IN ('nope') OR budget = 4100", [4100]),
])
def test_a_filter_page_is_the_page_of_its_matches_worked_by_hand(text: str, expected: list[int]) -> None:
    """Through Collection.features, at offsets either side of a block boundary and past the end."""
    table = _table(10_000)
    collection = _collection(table)
    filters = Filters(cql=cql.parse(text, "cql2-text", DEFAULT))
    for offset, limit in ((0, 10), (len(expected) // 2, 7), (len(expected) - 3, 10), (len(expected) + 1, 5),
                          (0, 100_000)):
        page = collection.features(table, filters, offset=offset, limit=limit)
        assert page.indices.tolist() == expected[offset:offset + limit], (text, offset)
        assert page.matched == len(expected)
        # The same as the plain evaluation of the plan (which lists every match).
        assert page.indices.tolist() == collection.select(table, filters)[offset:offset + limit].tolist()


def test_the_fast_path_gives_an_array_of_its_own_and_reads_locked_columns() -> None:
    """A caller may keep or change the mask it gets without changing the frame's columns or the next
    answer; the frame's number array and codes are read-only, codes in the smallest integer type."""
    features = [{"properties": {"category": CATEGORIES[i % 3], "budget": i}} for i in range(6)]
    frame = Frame.build(features, [f"f{i}" for i in range(6)], np.full(6, None, dtype=object), QUERYABLES)
    expression = cql.parse("category = 'school'", "cql2-text", DEFAULT)
    first = cql.evaluate(expression, frame)
    assert first.flags.writeable
    first[:] = False
    assert cql.evaluate(expression, frame).tolist() == [True, False, False, True, False, False]
    found = frame.codes("category")
    assert found is not None and found[0].dtype == np.int8 and not found[0].flags.writeable
    numbers = frame.numbers("budget")
    assert numbers is not None and numbers.tolist() == [0, 1, 2, 3, 4, 5] and not numbers.flags.writeable
    assert frame.numbers("category") is None  # not a number column: the nodes compare it
    assert cql_fast.truth(cql.parse("budget > 'a'", "cql2-text", DEFAULT), frame) is None


def test_a_hashed_key_is_hashed_once_and_equal_to_an_equal_key() -> None:
    """Equal keys find one entry; a key that cannot be hashed raises TypeError as hash() does."""
    calls: list[int] = []

    class Counted:
        def __hash__(self) -> int:
            calls.append(1)
            return 7

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Counted)

    key = HashedKey(("cql", Counted()))
    lru: SizedLRU[str] = SizedLRU(4, 1 << 20)
    lru.put(key, "mask", 10)
    assert lru.get(key) == "mask" and lru.get(HashedKey(("cql", Counted()))) == "mask"
    assert len(calls) == 2  # once per HashedKey made, never per lookup
    assert HashedKey(("cql", 1)) != HashedKey(("cql", 2)) and lru.get(HashedKey(("other", Counted()))) is None
    assert HashedKey(1) != 1
    unhashable: Any = ("cql", [1])
    with pytest.raises(TypeError):
        HashedKey(unhashable)


def test_a_frame_and_a_mask_are_found_again_for_an_equal_tuple_of_queryables() -> None:
    """The last queryables asked for are recognised by identity; an equal tuple finds the same frame and
    the same kept mask, and other queryables get a frame of their own columns."""
    table = _table(50)
    frame = table.frame(QUERYABLES)
    assert table.frame(QUERYABLES) is frame and table.frame(tuple(QUERYABLES)) is frame
    assert table.frame(tuple(list(QUERYABLES))) is frame  # an equal tuple, another object
    other = table.frame(QUERYABLES[:1])
    assert other is not frame and list(other.columns.columns) == ["id", "category"]
    assert table.frame(QUERYABLES) is frame
    expression = cql.parse("budget > 40", "cql2-text", DEFAULT)
    first, key = Collection._cql_mask(expression, table, QUERYABLES)
    equal = cql.parse("budget > 40", "cql2-text", DEFAULT)
    again, same = Collection._cql_mask(equal, table, tuple(list(QUERYABLES)))
    assert again is first and same == key and np.flatnonzero(first).tolist() == list(range(41, 50))
