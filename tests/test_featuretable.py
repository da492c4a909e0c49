"""FeatureTable.apply: a new version from a list of changes, equal to a table built from scratch.

Expected answers are worked by hand on small tables (ids in order, which features a box, a status or
an interval picks), and, over random sequences of changes (hypothesis), every answer of the updated
table is compared with that of a table built from the same features from scratch. The old table must
keep answering as it did: readers may still hold it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo.query import cql, featuretable, frame, spatialindex
from geo.query.featuretable import FeatureTable
from geo.query.frame import Frame
from geo.query.rows import Carry
from geo.schema import PROJECT_FILTERS, PROJECT_QUERYABLES, PROJECT_TEMPORAL
from geo.stats import build_inputs

Feature = dict[str, Any]
STATUSES = ("proposed", "planned", "ongoing", "completed")
CATEGORIES = ("school", "clinic", "road")


def project(fid: str, lon: float, lat: float, status: str = "proposed", category: str = "school",
            start: str | None = None, end: str | None = None, **more: Any) -> Feature:
    """A project-like point feature."""
    props: dict[str, Any] = {"name": f"Project {fid}", "status": status, "category": category, **more}
    if start is not None:
        props["start_date"] = start
    if end is not None:
        props["end_date"] = end
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": props}


def table_of(features: list[Feature], version: str = "v") -> FeatureTable:
    """A projects-like table (the store's filter columns and time span), built from scratch."""
    return FeatureTable(tuple(features), version, filter_columns=PROJECT_FILTERS, temporal=PROJECT_TEMPORAL)


def ids_of(table: FeatureTable, indices: Any) -> list[str]:
    return [table.ids[int(i)] for i in indices]


A = project("a", 61.0, 30.0, "proposed", "school", "2020-01-01", "2020-12-31", budget_usd=100)
B = project("b", 65.0, 34.0, "planned", "clinic", "2022-01-01", None, budget_usd=2_000_000)
C = project("c", 70.0, 36.0, "ongoing", "road", None, None)
D = project("d", 69.0, 35.0, "completed", "school", "2018-05-01", "2019-05-01", budget_usd=5)


def test_apply_adds_replaces_and_deletes_in_order() -> None:
    old = table_of([A, B, C])
    b2 = project("b", 69.5, 35.5, "ongoing", "road", budget_usd=7)
    new = old.apply([("d", D), ("b", b2), ("a", None)], version="v2")
    # a deleted (the others move up one), b replaced in its place, d appended.
    assert list(new.ids) == ["b", "c", "d"]
    assert new.version == "v2"
    assert new.get("b") == b2
    assert new.get("a") is None
    assert new.position["d"] == 2
    assert len(new) == 3
    assert list(new.features) == [b2, C, D]
    # The old version answers as before.
    assert list(old.ids) == ["a", "b", "c"]
    assert old.get("b") == B
    assert old.get("d") is None


def test_apply_a_change_then_its_undoing() -> None:
    old = table_of([A, B])
    new = old.apply([("c", C), ("c", None), ("a", None), ("a", A)], version="v2")
    # c came and went; a was deleted and added again, so it now comes last.
    assert list(new.ids) == ["b", "a"]
    assert new.get("c") is None


def test_apply_keeps_filters_working_with_hand_worked_answers() -> None:
    old = table_of([A, B, C])
    # Built before the change, so an update (rather than a rebuild) of these is what gets tested.
    assert ids_of(old, old.select(bbox=(64, 33, 71, 37))) == ["b", "c"]
    assert ids_of(old, old.select(equals={"status": ["planned", "completed"]})) == ["b"]
    new = old.apply([("d", D), ("b", None)], version="v2")
    assert list(new.ids) == ["a", "c", "d"]
    assert ids_of(new, new.select(bbox=(64, 33, 71, 37))) == ["c", "d"]
    assert ids_of(new, new.select(bbox=(60, 29, 62, 31))) == ["a"]
    assert ids_of(new, new.select(equals={"status": ["planned", "completed"]})) == ["d"]
    assert ids_of(new, new.select(equals={"category": ["school"]})) == ["a", "d"]
    # 2019-01-01..2019-12-31 meets d (2018-05..2019-05) and c (no time: matches every interval).
    interval = (np.datetime64("2019-01-01T00:00:00", "s"), np.datetime64("2019-12-31T00:00:00", "s"))
    assert ids_of(new, new.select(interval=interval)) == ["c", "d"]
    assert new.interval() == ("2018-05-01T00:00:00Z", "2020-12-31T23:59:59Z")
    assert new.bounds() == (61.0, 30.0, 70.0, 36.0)
    assert list(np.flatnonzero(new.equal_to("status", "string", ["completed", "proposed"]))) == [0, 2]
    # The old version still answers with its own features.
    assert ids_of(old, old.select(bbox=(64, 33, 71, 37))) == ["b", "c"]
    assert ids_of(old, old.select(equals={"status": ["planned", "completed"]})) == ["b"]


def test_apply_keeps_cql2_and_sortby_columns_right() -> None:
    old = table_of([A, B, C])
    expression = cql.parse("budget_usd > 50 AND status <> 'proposed'", "cql2-text")
    assert ids_of(old, np.flatnonzero(cql.evaluate(expression, old.frame(PROJECT_QUERYABLES)))) == ["b"]
    new = old.apply([("d", D), ("b", project("b", 65.0, 34.0, "planned", budget_usd=10)),
                     ("a", project("a", 61.0, 30.0, "ongoing", budget_usd=60))], version="v2")
    frame = new.frame(PROJECT_QUERYABLES)
    assert ids_of(new, np.flatnonzero(cql.evaluate(expression, frame))) == ["a"]
    # Ascending budgets: b 10, a 60; then c and d, without a budget... d has 5.
    assert ids_of(new, np.argsort(frame.rank("budget_usd", False), kind="stable")) == ["d", "b", "a", "c"]


def test_apply_refuses_what_cannot_be_applied() -> None:
    old = table_of([A])
    with pytest.raises(KeyError):
        old.apply([("zz", None)], version="v2")
    with pytest.raises(ValueError, match="id"):
        old.apply([("a", B)], version="v2")
    assert list(old.ids) == ["a"]


# --- random sequences of changes, compared with a table built from scratch -----------------------

PROVINCES = ("AF-BAL", "AF-KAB")
BOXES = ((60, 29, 75, 39), (61, 29.5, 66, 33), (66, 33, 75, 39), (68, 34, 69.5, 35.5), (100, 0, 101, 1))
INTERVALS = ((None, "2021-01-01"), ("2023-01-01", None), ("2020-06-01", "2020-06-02"))
EXPRESSIONS = ("budget_usd > 1000", "status IN ('planned','ongoing') OR category = 'road'",
               "name LIKE 'Project 1%'", "S_INTERSECTS(geometry, BBOX(64,31,72,37))", "start_date IS NULL")


def _instant(text: str | None) -> np.datetime64 | None:
    return None if text is None else np.datetime64(text + "T00:00:00", "s")


def assert_same(table: FeatureTable, scratch: FeatureTable) -> None:
    """Every answer of `table` equals that of `scratch` (built from the same features from scratch)."""
    assert list(table.ids) == list(scratch.ids)
    assert list(table.features) == list(scratch.features)
    assert len(table) == len(scratch)
    assert table.join(range(len(table))) == scratch.join(range(len(scratch)))
    for fid in scratch.ids:
        assert table.position[fid] == scratch.position[fid]
        assert table.get(fid) == scratch.get(fid)
    assert table.bounds() == scratch.bounds()
    assert table.interval() == scratch.interval()
    assert table.property_names() == scratch.property_names()
    for box in BOXES:
        assert list(table.select(bbox=box)) == list(scratch.select(bbox=box)), box
    for values in (["planned"], ["proposed", "completed"], ["nothing"]):
        equals = {"status": values, "category": ["school", "road"]}
        assert list(table.select(equals=equals)) == list(scratch.select(equals=equals))
        assert list(table.equal_to("status", "string", values)) == list(
            scratch.equal_to("status", "string", values))
    for lo, hi in INTERVALS:
        interval = (_instant(lo), _instant(hi))
        assert list(table.select(interval=interval)) == list(scratch.select(interval=interval))
    assert list(table.equal_to("budget_usd", "number", [100.0, 7.0])) == list(
        scratch.equal_to("budget_usd", "number", [100.0, 7.0]))
    frame, fresh = table.frame(PROJECT_QUERYABLES), scratch.frame(PROJECT_QUERYABLES)
    for text in EXPRESSIONS:
        expression = cql.parse(text, "cql2-text")
        assert list(cql.evaluate(expression, frame)) == list(cql.evaluate(expression, fresh)), text
    for name in ("budget_usd", "name", "start_date", "id"):
        assert list(frame.rank(name, True)) == list(fresh.rank(name, True))
        assert list(frame.missing(name)) == list(fresh.missing(name))
    mine, theirs = build_inputs(table, PROVINCES), build_inputs(scratch, PROVINCES)
    assert mine.provinces == theirs.provinces
    for column in ("status", "category", "province", "budget", "has_budget"):
        assert list(getattr(mine, column)) == list(getattr(theirs, column)), column


def _use(table: FeatureTable) -> None:
    """Ask a table for what readers ask for, so its memos exist and are carried into the next version."""
    assert_same(table, table_of(list(table.features)))


features_strategy = st.builds(
    project,
    fid=st.sampled_from([f"f{i}" for i in range(12)]),
    lon=st.floats(61, 74), lat=st.floats(29.5, 38.4),
    status=st.sampled_from(STATUSES), category=st.sampled_from(CATEGORIES),
    start=st.one_of(st.none(), st.sampled_from(["2019-01-01", "2020-06-01", "2022-03-03"])),
    end=st.one_of(st.none(), st.sampled_from(["2020-01-01", "2021-12-31", "2024-01-01"])),
    budget_usd=st.one_of(st.none(), st.integers(0, 5000)),
    province=st.sampled_from([None, "AF-KAB", "AF-BAL", "XX-1", "XX-0"]))


@st.composite
def change_lists(draw: st.DrawFn) -> tuple[list[Feature], list[list[tuple[str, Feature | None]]]]:
    """Features to start from, then batches of changes that are valid in order."""
    start: dict[str, Feature] = {}
    for feature in draw(st.lists(features_strategy, max_size=8)):
        start[feature["id"]] = feature
    alive = dict(start)
    batches: list[list[tuple[str, Feature | None]]] = []
    for _ in range(draw(st.integers(1, 5))):
        batch: list[tuple[str, Feature | None]] = []
        for _ in range(draw(st.integers(1, 4))):
            if alive and draw(st.booleans()):
                fid = draw(st.sampled_from(sorted(alive)))
                batch.append((fid, None))
                del alive[fid]
            else:
                feature = draw(features_strategy)
                batch.append((feature["id"], feature))
                alive[feature["id"]] = feature
        batches.append(batch)
    return list(start.values()), batches


def _model(features: list[Feature], batch: list[tuple[str, Feature | None]]) -> list[Feature]:
    """The features after a batch of changes, worked out on a plain list."""
    out = list(features)
    for fid, feature in batch:
        where = next((i for i, f in enumerate(out) if f["id"] == fid), None)
        if feature is None:
            assert where is not None
            del out[where]
        elif where is None:
            out.append(feature)
        else:
            out[where] = feature
    return out


@contextmanager
def tight(on: bool = True) -> Iterator[None]:
    """Thresholds at their smallest, so that small tables compact their storage, fold their id map and
    rebuild their tree (otherwise done once per thousands of writes) on almost every write."""
    saved = (featuretable.COMPACT_SLACK, featuretable.FOLD_AT_LEAST, spatialindex.REBUILD_AT_LEAST,
             frame.MAX_CHUNKS)
    if on:
        (featuretable.COMPACT_SLACK, featuretable.FOLD_AT_LEAST, spatialindex.REBUILD_AT_LEAST,
         frame.MAX_CHUNKS) = 0, 0, 1, 1
    try:
        yield
    finally:
        (featuretable.COMPACT_SLACK, featuretable.FOLD_AT_LEAST, spatialindex.REBUILD_AT_LEAST,
         frame.MAX_CHUNKS) = saved


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(change_lists(), st.booleans(), st.booleans())
def test_random_changes_answer_like_a_table_built_from_scratch(
        case: tuple[list[Feature], list[list[tuple[str, Feature | None]]]], warm: bool, small: bool) -> None:
    features, batches = case
    table = table_of(features, "v0")
    with tight(small):
        for n, batch in enumerate(batches, 1):
            if warm:
                _use(table)
            before = list(table.features)
            boxed = list(table.select(bbox=BOXES[3]))
            updated = table.apply(batch, version=f"v{n}")
            features = _model(features, batch)
            assert [f["id"] for f in updated.features] == [f["id"] for f in features]
            assert_same(updated, table_of(features, f"v{n}"))
            # The old version is untouched, and still answers (its storage may have been compacted away).
            assert list(table.features) == before
            assert list(table.select(bbox=BOXES[3])) == boxed
            table = updated


def test_a_carry_is_runs_of_kept_rows_with_the_fresh_rows_between() -> None:
    # Earlier slots 10..14; later: 11 and 13 gone (deleted or replaced), 20 and 21 new.
    carry = Carry.between(np.array([10, 11, 12, 13, 14]), np.array([10, 12, 20, 14, 21]), 22)
    assert (list(carry.kept), list(carry.source), list(carry.fresh)) == ([0, 1, 3], [0, 2, 4], [2, 4])
    assert carry.segments == [(False, 0, 1), (False, 2, 3), (True, 0, 1), (False, 4, 5), (True, 1, 2)]
    moved = carry.array(np.array([0.0, 1.0, 2.0, 3.0, 4.0]), np.array([20.0, 21.0]))
    assert list(moved) == [0.0, 2.0, 20.0, 4.0, 21.0]
    # A row the earlier version lost in a compaction (-1) is never kept.
    assert list(Carry.between(np.array([-1, 1]), np.array([1, 0]), 2).kept) == [0]


def test_a_write_computes_per_row_memos_for_the_changed_rows_only() -> None:
    seen: list[list[str]] = []

    def size(features: list[Feature]) -> Any:
        seen.append([f["id"] for f in features])
        return np.array([len(f["properties"]) for f in features], dtype=np.int64)

    old = table_of([A, B, C])
    assert list(old.rows("size", size)) == [6, 5, 3]  # how many properties each has
    assert seen == [["a", "b", "c"]]
    seen.clear()
    middle = old.apply([("b", project("b", 65.0, 34.0)), ("d", D), ("a", None)], version="v2")
    # Not asked for in v2: v3 carries it over from v1 through both writes.
    new = middle.apply([("e", project("e", 66.0, 35.0, extra=1))], version="v3")
    assert list(new.rows("size", size)) == [3, 3, 6, 4]
    assert seen == [["b", "d", "e"]]  # c was kept; b changed; d and e are new
    seen.clear()
    assert list(middle.rows("size", size)) == [3, 3, 6]  # v2 carries from v1 too
    assert seen == [["b", "d"]]


def test_a_write_builds_frame_rows_for_the_changed_rows_only(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []
    real = Frame.build

    def counting(*args: Any) -> Frame:
        frame = real(*args)
        built.append(len(frame.columns))
        return frame

    monkeypatch.setattr(Frame, "build", counting)
    old = table_of([A, B, C])
    old.frame(PROJECT_QUERYABLES)
    assert built == [3]
    new = old.apply([("a", None), ("e", project("e", 66.0, 35.0, budget_usd=1))], version="v2")
    frame = new.frame(PROJECT_QUERYABLES)
    assert built == [3, 1]
    assert list(frame.columns["id"]) == ["b", "c", "e"]
    assert list(frame.columns["budget_usd"].fillna(-1)) == [2_000_000, -1, 1]


def test_a_write_does_the_same_python_work_at_any_size() -> None:
    """What `apply` does grows with the changes, not the table: the same Python and C function calls at
    200 and at 20,000 rows (a loop over the features, decoding or encoding each, would add calls;
    what remains proportional to the rows is copying a few integer arrays)."""
    def calls(rows: int) -> int:
        table = table_of([project(f"f{i}", 61 + i % 13, 30 + i % 8, STATUSES[i % 4]) for i in range(rows)])
        table.select(bbox=BOXES[3], equals={"status": ["planned"]})
        table.frame(PROJECT_QUERYABLES)
        count = 0

        def profile(frame: Any, event: str, arg: Any) -> None:
            nonlocal count
            count += event in ("call", "c_call")

        changes: list[tuple[str, Feature | None]]
        sys.setprofile(profile)
        try:
            changes = [("f3", project("f3", 62.0, 31.0)), ("f5", None), ("new", project("new", 63.0, 32.0))]
            table.apply(changes, version="v2")
        finally:
            sys.setprofile(None)
        return count

    assert calls(200) == calls(20_000)


def test_memos_not_asked_for_are_dropped_after_some_versions() -> None:
    calls = 0

    def ones(features: list[Feature]) -> Any:
        nonlocal calls
        calls += 1
        return np.ones(len(features))

    table = table_of([A, B])
    table.rows("ones", ones)
    for n in range(featuretable.CARRY_GENERATIONS + 1):
        table = table.apply([(f"x{n}", project(f"x{n}", 62.0, 31.0))], version=f"v{n}")
    table.rows("ones", ones)
    assert calls == 2  # built again from scratch: the earlier one was not kept that long


def test_a_failed_apply_changes_nothing() -> None:
    old = table_of([A, B])
    bad_value = project("c", 62.0, 31.0, tags={1, 2})  # a set is not JSON
    bad_shape = {**project("c", 62.0, 31.0), "geometry": {"type": "Point", "coordinates": "here"}}
    for bad in (bad_value, bad_shape):
        with pytest.raises((TypeError, shapely.errors.GEOSException)):
            old.apply([("a", None), ("c", bad)], version="v2")
    assert list(old.ids) == ["a", "b"]
    new = old.apply([("c", C)], version="v2")
    assert list(new.ids) == ["a", "b", "c"]
    assert_same(new, table_of([A, B, C]))


def test_features_ids_and_positions_read_like_sequences_and_a_mapping() -> None:
    table = table_of([A, B, C]).apply([("a", None)], version="v2")
    assert table.ids == ("b", "c") and table.ids == ["b", "c"] and table.ids != ("c", "b")
    assert table.ids[-1] == "c" and table.ids[0:1] == ["b"] and "c" in table.ids
    assert table.features[-1] == C and table.features[:1] == [B]
    assert table.encoded[0] == table_of([B]).encoded[0]
    assert "b" in table.position and "a" not in table.position and table.position.get("a") is None
    assert dict(table.position) == {"b": 0, "c": 1}
    with pytest.raises(KeyError):
        table.position["a"]
    # A decoded feature is the reader's own: changing it changes nothing stored.
    table.features[0]["properties"]["status"] = "changed"
    assert table.get("b") == B


def test_readers_of_an_old_version_are_not_disturbed_by_writes() -> None:
    """Readers hold version 0 while a writer makes 300 versions (compacting the storage and rebuilding
    trees on the way); every answer a reader gets is version 0's."""
    base = [project(f"f{i}", 61 + i % 13, 30 + i % 8, STATUSES[i % 4]) for i in range(200)]
    old = table_of(base)
    expected = (list(old.ids), old.join(range(200)), list(old.select(bbox=BOXES[3])),
                list(old.select(equals={"status": ["planned"]})))
    start = threading.Barrier(3)
    done = threading.Event()
    wrong: list[str] = []

    def read() -> None:
        start.wait()
        while not done.is_set():
            got = (list(old.ids), old.join(range(200)), list(old.select(bbox=BOXES[3])),
                   list(old.select(equals={"status": ["planned"]})))
            if got != expected:
                wrong.append("an old reader saw another version")

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    with tight():
        start.wait()
        table = old
        for n in range(300):
            fid = f"f{n % 200}"
            change = (fid, None) if n % 3 == 0 and fid in table.position else (fid, project(fid, 70, 36))
            table = table.apply([change], version=f"v{n}")
            table.select(bbox=BOXES[3])
    done.set()
    for reader in readers:
        reader.join()
    assert not wrong
    assert_same(table, table_of(list(table.features)))
