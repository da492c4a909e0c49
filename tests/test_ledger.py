"""The embedded store's ledger (geo/store/ledger.py): what only the file store has.

The contract of the record (seqs, ops, restore, idempotency) is tests/test_store_changes.py, on both
stores. Here: the crash window between a journal line and its ledger insert (a process killed there,
an insert that failed), catch-up before a write and before a compaction folds the journal, compaction
that loses nothing, journals written before the ledger, the baseline of a store made before it, a
ledger that is not one (refused at open, nothing overwritten), and several processes.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from geo import fsutil
from geo.errors import StoreCorrupt, StoreWriteFailed
from geo.store import ledger
from geo.store.changes import Replayed, WriteMeta
from geo.store.geojson_file import GeoJSONFileStore
from geo.store.storefile import content_version, encode_store
from tests.conftest import ROOT

LEDGER = "p.geojson.ledger.sqlite"


def _feature(fid: str, name: str | None = None, status: str = "planned") -> dict[str, object]:
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [69.1, 34.5]},
            "properties": {"name": name or fid, "category": "water", "status": status}}


def _ops(store: GeoJSONFileStore) -> list[tuple[int, str, str]]:
    return [(c.seq, c.op, c.fid) for c in store.changes(0, 10_000)]


def _rows(path: Path) -> list[tuple[int, str, str]]:
    """The ledger's rows, read with sqlite3 directly (not through the store)."""
    with sqlite3.connect(path.parent / f"{path.name}.ledger.sqlite") as conn:
        rows = conn.execute("SELECT seq, op, fid FROM changes ORDER BY seq").fetchall()
    conn.close()
    return [(int(s), str(o), str(f)) for s, o, f in rows]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "p.geojson"


def test_the_ledger_is_beside_the_store_file_and_named_after_it(path: Path) -> None:
    assert ledger.ledger_path(path) == path.parent / LEDGER
    store = GeoJSONFileStore(path)
    store.add(_feature("a"))
    assert store.ledger_path == path.parent / LEDGER and (path.parent / LEDGER).is_file()
    assert _rows(path) == [(1, "create", "a")]
    store.close()


def test_each_journal_line_carries_its_seq_and_who(path: Path) -> None:
    store = GeoJSONFileStore(path)
    store.add(_feature("a"), WriteMeta(by="alice", idempotency_key="k", request_hash="h"))
    store.replace("a", _feature("a", status="approved"), meta=WriteMeta(by="bob"))
    store.add_many([_feature("b"), _feature("c")], WriteMeta(by="imp"))
    lines = [orjson.loads(line) for line in store.journal_path.read_bytes().splitlines()[1:]]
    assert [(x["op"], x["seq"], x.get("by"), x.get("as"), x.get("idem"), x.get("rh")) for x in lines] == [
        ("add", 1, "alice", None, "alice\nk", "h"), ("replace", 2, "bob", "status", None, None),
        ("batch", 3, "imp", None, None, None)]
    store.close()


# --- the crash window: the journal line flushed, the ledger insert not made ---

def _killed_after_the_journal_line(where: str) -> None:
    """In a child process: add `b`, and die (no cleanup) once its journal line is flushed, before its
    ledger insert."""
    store = GeoJSONFileStore(Path(where))

    def die(self: ledger.Writer, rows: object) -> None:
        os._exit(9)

    ledger.Writer.record = die  # type: ignore[method-assign]
    store.add(_feature("b"), WriteMeta(by="killed"))
    os._exit(0)  # not reached


def test_a_process_killed_between_journal_and_ledger_loses_nothing(path: Path) -> None:
    store = GeoJSONFileStore(path)
    store.add(_feature("a"))
    proc = multiprocessing.get_context("fork").Process(target=_killed_after_the_journal_line,
                                                       args=(str(path),))
    proc.start()
    proc.join(30)
    assert proc.exitcode == 9
    assert _rows(path) == [(1, "create", "a")]  # the ledger lacks it: the window was hit
    assert b'"id":"b"' in store.journal_path.read_bytes()
    # Reopened (recovery, under the lock): the change is in both, with its seq, time and author.
    reopened = GeoJSONFileStore(path)
    assert list(reopened.snapshot().ids) == ["a", "b"]
    assert _ops(reopened) == [(1, "create", "a"), (2, "create", "b")]
    assert reopened.history("b")[0].by == "killed" and reopened.history("b")[0].feature == _feature("b")
    # The first store, still running, goes on after it: seq 3, no gap.
    store.delete("a")
    assert _ops(store)[-1] == (3, "delete", "a")
    reopened.close()
    store.close()


@contextmanager
def _ledger_fails(monkeypatch: pytest.MonkeyPatch, times: int) -> Iterator[list[int]]:
    """The ledger's insert fails `times` times (a full disk, an I/O error), then works."""
    real = ledger.Writer.record
    failed: list[int] = []

    def record(self: ledger.Writer, rows: object) -> None:
        if len(failed) < times:
            failed.append(1)
            raise sqlite3.OperationalError("disk I/O error")
        real(self, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger.Writer, "record", record)
    yield failed
    monkeypatch.undo()


def test_a_failed_ledger_insert_is_caught_up_before_the_next_write(path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store = GeoJSONFileStore(path)
    store.add(_feature("a"))
    with _ledger_fails(monkeypatch, 1):
        store.replace("a", _feature("a", "A2"), meta=WriteMeta(by="bob"))  # acknowledged: in the journal
    assert list(store.snapshot().ids) == ["a"] and _ops(store) == [(1, "create", "a")]
    store.add(_feature("b"))
    assert _ops(store) == [(1, "create", "a"), (2, "update", "a"), (3, "create", "b")]
    assert store.history("a")[1].by == "bob"
    store.close()


def test_a_write_is_refused_while_the_ledger_cannot_be_caught_up(path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store = GeoJSONFileStore(path)
    store.add(_feature("a"))
    with _ledger_fails(monkeypatch, 2):
        store.add(_feature("b"))  # in the journal, not in the ledger
        with pytest.raises(StoreWriteFailed, match="ledger"):
            store.add(_feature("c"))  # the catch-up fails: nothing written
    assert list(store.snapshot().ids) == ["a", "b"]
    store.add(_feature("c"))
    assert _ops(store) == [(1, "create", "a"), (2, "create", "b"), (3, "create", "c")]
    store.close()


# --- compaction ---

def test_compaction_never_loses_a_change(path: Path) -> None:
    store = GeoJSONFileStore(path)
    store.add(_feature("a"), WriteMeta(by="alice"))
    store.add_many([_feature("b"), _feature("c")])
    store.replace("a", _feature("a", status="approved"))
    store.delete("b")
    assert store.compact()
    store.add(_feature("d"))
    store.restore("b")
    assert store.compact()
    store.close()
    expected = [(1, "create", "a"), (2, "create", "b"), (3, "create", "c"), (4, "status", "a"),
                (5, "delete", "b"), (6, "create", "d"), (7, "restore", "b")]
    reopened = GeoJSONFileStore(path)
    assert not reopened.journal_path.exists()  # all of it was folded into the file
    assert _ops(reopened) == expected
    assert [c.op for c in reopened.history("a")] == ["create", "status"]
    assert reopened.history("a")[0].by == "alice"
    assert [c.op for c in reopened.history("b")] == ["create", "delete", "restore"]
    reopened.close()


def test_a_compaction_catches_up_the_ledger_before_it_folds_the_journal(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = GeoJSONFileStore(path)
    store.add(_feature("a"))
    with _ledger_fails(monkeypatch, 1):
        store.add(_feature("b"))
    assert _rows(path) == [(1, "create", "a")]
    assert store.compact()
    assert _rows(path) == [(1, "create", "a"), (2, "create", "b")]
    store.close()


def test_no_compaction_while_the_ledger_cannot_be_caught_up(path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    store = GeoJSONFileStore(path)
    store.add(_feature("a"))
    with _ledger_fails(monkeypatch, 3):
        store.add(_feature("b"))
        journal_before = store.journal_path.read_bytes()
        with pytest.raises(StoreWriteFailed):
            store.compact()
        assert store.journal_path.read_bytes() == journal_before  # nothing folded
    assert store.compact()
    assert _rows(path) == [(1, "create", "a"), (2, "create", "b")]
    store.close()


# --- stores and journals made before the ledger ---

def test_a_store_made_before_the_ledger_records_its_projects_as_created_at_the_files_time(
        tmp_path: Path) -> None:
    """The shipped projects.geojson: 2 projects, no ledger."""
    path = tmp_path / "projects.geojson"
    shutil.copy(ROOT / "projects.geojson", path)
    mtime = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    store = GeoJSONFileStore(path)
    changes = store.changes()
    shipped = [f["id"] for f in orjson.loads((ROOT / "projects.geojson").read_bytes())["features"]]
    assert len(shipped) == 2
    assert [(c.seq, c.op, c.fid, c.by, c.at) for c in changes] == [
        (1, "create", shipped[0], None, mtime), (2, "create", shipped[1], None, mtime)]
    assert [c.feature for c in changes] == [store.snapshot().get(fid) for fid in shipped]
    store.close()
    again = GeoJSONFileStore(path)  # recorded once, not at every start
    assert len(again.changes()) == 2
    again.close()


def test_projects_added_to_the_file_by_hand_are_recorded_at_the_next_start(path: Path) -> None:
    store = GeoJSONFileStore(path)
    store.add(_feature("a"))
    store.close()
    features = orjson.loads(path.read_bytes())["features"]
    path.write_bytes(encode_store([*features, _feature("by-hand")]))
    reopened = GeoJSONFileStore(path)
    assert _ops(reopened) == [(1, "create", "a"), (2, "create", "by-hand")]
    reopened.close()


def test_a_journal_written_before_the_ledger_still_reads(path: Path) -> None:
    """Lines without `seq` (the old format) replay as before; the projects they leave are the baseline."""
    path.write_bytes(encode_store([_feature("a"), _feature("b")]))
    seed = GeoJSONFileStore(path)
    seed.add(_feature("x"))  # only to have a journal header written by the store over this file
    header = seed.journal_path.read_bytes().splitlines()[0]
    seed.close()
    path.write_bytes(encode_store([_feature("a"), _feature("b")]))
    (path.parent / LEDGER).unlink()
    journal_path = path.parent / ".p.geojson.journal"
    doc = orjson.loads(header)
    doc.update(base=content_version(path.read_bytes()), file=None)
    replaced = orjson.dumps(_feature("a", "old A"))
    old = [b'{"op":"replace","id":"a","at":1767225600000,"feature":' + replaced + b"}",
           b'{"op":"delete","id":"b","at":1767225660000}']
    journal_path.write_bytes(b"\n".join([orjson.dumps(doc), *old]) + b"\n")
    store = GeoJSONFileStore(path)
    assert list(store.snapshot().ids) == ["a"]
    assert _ops(store) == [(1, "create", "a")]
    assert store.history("a")[0].feature == _feature("a", "old A")
    store.add(_feature("c"))
    assert _ops(store)[-1] == (2, "create", "c")
    store.close()
    reopened = GeoJSONFileStore(path)
    assert _ops(reopened) == [(1, "create", "a"), (2, "create", "c")]
    reopened.close()


# --- a ledger that is not one ---

@pytest.mark.parametrize("what", ["not sqlite", "another schema", "a newer schema"])
def test_a_ledger_that_cannot_be_read_stops_the_start_and_is_not_overwritten(path: Path, what: str) -> None:
    store = GeoJSONFileStore(path)
    store.add(_feature("a"))
    store.close()
    target = path.parent / LEDGER
    target.unlink()
    if what == "not sqlite":
        target.write_bytes(b"this is not a database, but some notes someone saved here\n" * 100)
    else:
        conn = sqlite3.connect(target)
        if what == "another schema":
            conn.execute("CREATE TABLE notes (body TEXT)")
        else:
            conn.executescript("CREATE TABLE changes (seq INTEGER PRIMARY KEY); PRAGMA user_version = 7;")
        conn.commit()
        conn.close()
    before = target.read_bytes()
    with pytest.raises(StoreCorrupt, match="ledger") as raised:
        GeoJSONFileStore(path)
    assert str(target) in str(raised.value)
    assert target.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["p.geojson", LEDGER]


# --- several processes ---

def _adder(where: str, prefix: str, count: int) -> None:
    store = GeoJSONFileStore(Path(where), lock_timeout_s=30)
    try:
        for n in range(count):
            store.add(_feature(f"{prefix}-{n}"), WriteMeta(by=prefix))
            if n % 5 == 4:
                store.delete(f"{prefix}-{n}", meta=WriteMeta(by=prefix))
    finally:
        store.close()


def test_writers_in_several_processes_number_every_change_once_with_no_gap(path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_adder, args=(str(path), f"w{i}", 10)) for i in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    store = GeoJSONFileStore(path)
    changes = store.changes(0, 1000)
    assert [c.seq for c in changes] == list(range(1, 37))  # 30 adds, 6 deletes
    for i in range(3):
        mine = [(c.op, c.fid) for c in changes if c.by == f"w{i}"]
        assert [fid for op, fid in mine if op == "create"] == [f"w{i}-{n}" for n in range(10)]
        assert [fid for op, fid in mine if op == "delete"] == [f"w{i}-4", f"w{i}-9"]
    assert len(store.snapshot()) == 24
    store.close()


def test_two_adds_with_one_key_at_the_lock_together_store_one_project(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two store objects (two worker processes), each with an add of one Idempotency-Key, both at the
    write lock before either takes it (a barrier in front of it): one project, the other add Replayed."""
    one, two = GeoJSONFileStore(path, lock_timeout_s=10), GeoJSONFileStore(path, lock_timeout_s=10)
    both_at_the_lock = threading.Barrier(2, timeout=30)
    take_lock = fsutil.exclusive_lock

    @contextmanager
    def after_both_arrive(lock: Path, timeout: float) -> Iterator[None]:
        if lock.name.endswith(".compacting.lock"):
            with take_lock(lock, timeout):
                yield
            return
        both_at_the_lock.wait()
        with take_lock(lock, timeout):
            yield

    monkeypatch.setattr("geo.store.geojson_file.exclusive_lock", after_both_arrive)
    outcome: dict[str, str] = {}
    meta = WriteMeta(by="alice", idempotency_key="retry-1", request_hash="h")

    def post(store: GeoJSONFileStore, fid: str) -> None:
        try:
            store.add(_feature(fid), meta)
            outcome[fid] = "stored"
        except Replayed as exc:
            outcome[fid] = f"replayed {exc.fid}"

    threads = [threading.Thread(target=post, args=(s, f)) for s, f in ((one, "x"), (two, "y"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    monkeypatch.undo()
    stored = [fid for fid, what in outcome.items() if what == "stored"]
    assert len(stored) == 1 and len(outcome) == 2
    other = "y" if stored == ["x"] else "x"
    assert outcome[other] == f"replayed {stored[0]}"
    assert list(one.snapshot().ids) == stored and _ops(two) == [(1, "create", stored[0])]
    one.close()
    two.close()


def test_a_key_read_from_the_journal_before_its_ledger_insert_is_found(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second store object (another worker) reads the journal line of a keyed add while its writer is
    held between the journal's flush and the ledger insert: it sees the project, so `idempotent` must
    find the key too (it waits for the lock and looks again), never answer "not seen" for a project it
    shows. Without that, a retry meets its own project as a duplicate (409)."""
    writer, reader = GeoJSONFileStore(path, lock_timeout_s=10), GeoJSONFileStore(path, lock_timeout_s=10)
    flushed, go = threading.Event(), threading.Event()
    record = ledger.Writer.record

    def held(self: ledger.Writer, rows: object) -> None:
        flushed.set()
        assert go.wait(30)
        record(self, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger.Writer, "record", held)
    meta = WriteMeta(by="alice", idempotency_key="retry-2", request_hash="h")
    adding = threading.Thread(target=writer.add, args=(_feature("p-1"), meta))
    adding.start()
    assert flushed.wait(30)
    assert "p-1" in reader.refresh().ids  # the journal line is read: the project shows
    found: list[Replayed | None] = []
    asking = threading.Thread(target=lambda: found.append(reader.idempotent(meta)))
    asking.start()
    asking.join(0.5)
    waited = asking.is_alive()
    go.set()
    assert waited, "idempotent answered while the ledger lacked a line it had read"
    adding.join(30)
    asking.join(30)
    assert len(found) == 1 and found[0] is not None and found[0].fid == "p-1"
    writer.close()
    reader.close()


def test_reads_of_the_ledger_write_nothing(path: Path) -> None:
    store = GeoJSONFileStore(path)
    store.add(_feature("a"))
    store.delete("a")
    folder = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in path.parent.iterdir()}
    other = GeoJSONFileStore(path)
    assert len(other.changes()) == 2 and other.history("a") and other.deleted("a") is not None
    assert other.seq_before(datetime.now(UTC)) == 2
    assert folder == {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in path.parent.iterdir()}
    other.close()
    store.close()
