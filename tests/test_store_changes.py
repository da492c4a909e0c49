"""The record of changes every project store keeps (geo/store/base.py "Every change is kept";
geo/store/changes.py), run on each store: one test body, two stores.

The expected values come from the contract, not the code: seqs are 1, 2, 3... in commit order with no
gaps; a write records one change per project it touched; a refused write records nothing (the backend's
whole state is as it was); deleted ids are never reused; an Idempotency-Key seen within the window makes
an add a `Replayed` that writes nothing. What only the file store has (its SQLite ledger, crash windows,
compaction) is tested in tests/test_ledger.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from geo.errors import Conflict, NotFound, PreconditionFailed
from geo.store.base import ProjectStore
from geo.store.changes import Change, Replayed, WriteMeta
from tests.test_store_contract import KINDS, Backend, empty_backend

ALICE = WriteMeta(by="alice")


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """An empty store of each kind (as tests/test_store_contract.py's `backend`)."""
    with empty_backend(request.param, tmp_path) as b:
        yield b


def _feature(fid: str, name: str | None = None, status: str = "planned") -> dict[str, object]:
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [69.1, 34.5]},
            "properties": {"name": name or fid, "category": "water", "status": status}}


def _summary(changes: list[Change]) -> list[tuple[int, str, str, str | None]]:
    return [(c.seq, c.op, c.fid, c.by) for c in changes]


@pytest.fixture
def store(backend: Backend) -> ProjectStore:
    """A new, empty store object."""
    return backend.open()


# --- what each write records ---

def test_each_write_records_one_change_numbered_in_commit_order(backend: Backend,
                                                                store: ProjectStore) -> None:
    a = _feature("a")
    store.add(a, ALICE)
    store.replace("a", _feature("a", "renamed"), meta=WriteMeta(by="bob"))
    store.replace("a", _feature("a", "renamed", status="approved"), meta=ALICE)
    store.delete("a", meta=WriteMeta(by="carol"))
    expected = [(1, "create", "a", "alice"), (2, "update", "a", "bob"), (3, "status", "a", "alice"),
                (4, "delete", "a", "carol")]
    assert _summary(store.changes()) == expected
    # Durably: a store newly opened on the same file or schema reads the same record.
    again = backend.open()
    changes = again.changes()
    assert _summary(changes) == expected
    assert changes[0].feature == a
    assert changes[1].feature is not None and changes[1].feature["properties"]["name"] == "renamed"
    assert changes[2].feature is not None and changes[2].feature["properties"]["status"] == "approved"
    assert changes[3].feature is None


def test_a_write_without_meta_is_recorded_by_nobody(store: ProjectStore) -> None:
    store.add(_feature("a"))
    assert _summary(store.changes()) == [(1, "create", "a", None)]


def test_times_are_utc_and_within_the_write(store: ProjectStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    store.add(_feature("a"))
    after = datetime.now(UTC) + timedelta(seconds=1)
    (change,) = store.changes()
    assert change.at.tzinfo is not None and change.at.utcoffset() == timedelta(0)
    assert before <= change.at <= after


def test_add_many_records_one_create_per_feature_in_order(store: ProjectStore) -> None:
    store.add(_feature("a"))
    store.add_many([_feature("b"), _feature("c"), _feature("d")], WriteMeta(by="importer"))
    assert _summary(store.changes()) == [(1, "create", "a", None), (2, "create", "b", "importer"),
                                         (3, "create", "c", "importer"), (4, "create", "d", "importer")]


def test_load_records_one_create_per_feature(store: ProjectStore) -> None:
    assert store.load([_feature("a"), _feature("b")]) == 2
    assert _summary(store.changes()) == [(1, "create", "a", None), (2, "create", "b", None)]


def test_refused_writes_record_nothing_and_change_nothing(backend: Backend, store: ProjectStore) -> None:
    store.add(_feature("a"))
    before = backend.state()
    with pytest.raises(NotFound):
        store.replace("zz", _feature("zz"), meta=ALICE)
    with pytest.raises(NotFound):
        store.delete("zz", meta=ALICE)
    with pytest.raises(PreconditionFailed):
        store.replace("a", _feature("a", "x"), if_match='"stale"', meta=ALICE)
    with pytest.raises(ValueError):
        store.add(_feature("a"), ALICE)
    assert backend.state() == before
    assert _summary(store.changes()) == [(1, "create", "a", None)]


# --- the feed: changes, seq_before ---

def test_changes_pages_by_seq(store: ProjectStore) -> None:
    for n in range(7):
        store.add(_feature(f"p{n}"))
    assert [c.seq for c in store.changes(0, 3)] == [1, 2, 3]
    assert [c.seq for c in store.changes(3, 3)] == [4, 5, 6]
    assert [c.seq for c in store.changes(6, 3)] == [7]
    assert store.changes(7, 3) == []
    assert [c.fid for c in store.changes(since=2, limit=100)] == ["p2", "p3", "p4", "p5", "p6"]


def test_an_empty_store_has_no_changes(store: ProjectStore) -> None:
    assert store.changes() == [] and store.history("a") == [] and store.deleted("a") is None
    assert store.seq_before(datetime.now(UTC)) == 0


def test_seq_before_a_time_lists_the_changes_made_from_then(store: ProjectStore) -> None:
    store.add(_feature("a"))
    store.add(_feature("b"))
    time.sleep(0.05)  # the record's times are milliseconds: a clear gap between the two groups
    middle = datetime.now(UTC)
    time.sleep(0.05)
    store.add(_feature("c"))
    assert store.seq_before(middle) == 2
    assert [c.fid for c in store.changes(store.seq_before(middle))] == ["c"]
    assert store.seq_before(datetime(2000, 1, 1, tzinfo=UTC)) == 0
    assert store.seq_before(datetime.now(UTC) + timedelta(hours=1)) == 3


def test_another_store_object_reads_the_changes_of_the_first(backend: Backend, store: ProjectStore) -> None:
    other = backend.open()
    store.add(_feature("a"), ALICE)
    other.add(_feature("b"), WriteMeta(by="bob"))
    store.delete("a")
    expected = [(1, "create", "a", "alice"), (2, "create", "b", "bob"), (3, "delete", "a", None)]
    assert _summary(store.changes()) == expected and _summary(other.changes()) == expected


# --- history ---

def test_history_lists_every_change_of_one_project(store: ProjectStore) -> None:
    store.add(_feature("a"))
    store.add(_feature("b"))
    store.replace("a", _feature("a", status="approved"), meta=ALICE)
    store.replace("b", _feature("b", "B2"))
    store.delete("a")
    assert _summary(store.history("a")) == [(1, "create", "a", None), (3, "status", "a", "alice"),
                                            (5, "delete", "a", None)]
    assert _summary(store.history("b")) == [(2, "create", "b", None), (4, "update", "b", None)]
    assert store.history("never") == []


# --- soft delete and restore ---

def test_a_deleted_project_is_found_by_deleted_and_not_in_the_features(store: ProjectStore) -> None:
    store.add(_feature("a"))
    store.add(_feature("b"))
    assert store.deleted("a") is None
    store.delete("a", meta=WriteMeta(by="admin"))
    gone = store.deleted("a")
    assert gone is not None and (gone.seq, gone.op, gone.fid, gone.by, gone.feature) == (
        3, "delete", "a", "admin", None)
    assert list(store.snapshot().ids) == ["b"] and store.deleted("b") is None


def test_a_deleted_id_is_never_reused(backend: Backend, store: ProjectStore) -> None:
    store.add(_feature("a"))
    store.add(_feature("b"))
    store.delete("a")
    before = backend.state()
    with pytest.raises(ValueError, match="'a'"):
        store.add(_feature("a", "again"))
    with pytest.raises(ValueError, match="'a'"):
        store.add_many([_feature("c"), _feature("a")])
    assert backend.state() == before
    assert list(store.snapshot().ids) == ["b"]


def test_restore_brings_back_the_project_as_deleted_after_the_others(backend: Backend,
                                                                    store: ProjectStore) -> None:
    store.add(_feature("a"))
    last = _feature("a", "last name", status="approved")
    store.replace("a", last)
    store.add(_feature("b"))
    store.delete("a")
    restored = store.restore("a", WriteMeta(by="admin"))
    assert restored == last
    assert list(store.snapshot().ids) == ["b", "a"] and backend.durable_ids() == ["b", "a"]
    assert store.snapshot().features[1] == last
    assert store.deleted("a") is None
    assert _summary(store.history("a")) == [(1, "create", "a", None), (2, "status", "a", None),
                                            (4, "delete", "a", None), (5, "restore", "a", "admin")]
    assert store.history("a")[-1].feature == last
    # It can be changed and deleted again like any other.
    store.replace("a", _feature("a", "after", status="approved"))
    store.delete("a")
    assert [c.op for c in store.history("a")][-2:] == ["update", "delete"]


def test_restore_of_a_project_that_exists_is_a_conflict(backend: Backend, store: ProjectStore) -> None:
    store.add(_feature("a"))
    before = backend.state()
    with pytest.raises(Conflict) as raised:
        store.restore("a")
    assert raised.value.status == 409
    assert backend.state() == before


def test_restore_of_an_id_that_never_existed_is_not_found(backend: Backend, store: ProjectStore) -> None:
    store.add(_feature("a"))
    before = backend.state()
    with pytest.raises(NotFound):
        store.restore("zz")
    assert backend.state() == before


# --- Idempotency-Key ---

def _keyed(key: str, by: str = "alice", digest: str = "h1") -> WriteMeta:
    return WriteMeta(by=by, idempotency_key=key, request_hash=digest)


def test_an_add_with_a_key_seen_before_is_replayed_and_writes_nothing(backend: Backend,
                                                                      store: ProjectStore) -> None:
    store.add(_feature("a"), _keyed("k1", digest="first"))
    before = backend.state()
    with pytest.raises(Replayed) as raised:
        store.add(_feature("b"), _keyed("k1", digest="second"))
    assert (raised.value.fid, raised.value.request_hash) == ("a", "first")
    assert backend.state() == before and list(store.snapshot().ids) == ["a"]
    # From another store object (another process, another server) too.
    with pytest.raises(Replayed) as again:
        backend.open().add(_feature("c"), _keyed("k1"))
    assert again.value.fid == "a"


def test_keys_are_scoped_by_who_sends_them(store: ProjectStore) -> None:
    store.add(_feature("a"), _keyed("k1", by="alice"))
    store.add(_feature("b"), _keyed("k1", by="bob"))
    store.add(_feature("c"), _keyed("k2", by="alice"))
    assert list(store.snapshot().ids) == ["a", "b", "c"]
    with pytest.raises(Replayed) as raised:
        store.add(_feature("d"), _keyed("k1", by="bob"))
    assert raised.value.fid == "b"


def test_a_key_is_remembered_after_other_writes(store: ProjectStore) -> None:
    store.add(_feature("a"), _keyed("k1"))
    for n in range(5):
        store.add(_feature(f"p{n}"), _keyed(f"other-{n}"))
    store.delete("a")
    with pytest.raises(Replayed) as raised:
        store.add(_feature("z"), _keyed("k1"))
    assert raised.value.fid == "a"


def test_two_concurrent_adds_with_one_key_store_one_project(backend: Backend) -> None:
    """Two store objects (two processes) add with one key at once; whatever the order, one project is
    stored and the other add is told which."""
    one, two = backend.open(lock_timeout_s=10), backend.open(lock_timeout_s=10)
    start = threading.Barrier(2, timeout=10)
    outcome: dict[str, str] = {}

    def post(store: ProjectStore, fid: str) -> None:
        start.wait()
        try:
            store.add(_feature(fid), _keyed("same"))
            outcome[fid] = "stored"
        except Replayed as exc:
            outcome[fid] = f"replayed {exc.fid}"

    with backend.locked(one):  # both queue at the lock, released together
        threads = [threading.Thread(target=post, args=(s, f)) for s, f in ((one, "x"), (two, "y"))]
        for t in threads:
            t.start()
        time.sleep(0.3)
    for t in threads:
        t.join(20)
    assert sorted(outcome.values()) in (["replayed x", "stored"], ["replayed y", "stored"])
    assert len(backend.durable_ids()) == 1
    assert [c.op for c in one.changes()] == ["create"]
