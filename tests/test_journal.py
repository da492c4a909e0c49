"""The store's journal: one line per write, recovery on start (torn and corrupt lines), compaction into a
plain FeatureCollection (in the background, at shutdown, and safe at every step), and other processes
following it (two stores on one path are two worker processes: they meet only on disk)."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson
import pyogrio
import pytest

from geo import fsutil
from geo.app import create_app
from geo.errors import StoreCorrupt
from geo.settings import Settings
from geo.store import GeoJSONFileStore, geojson_file
from geo.store.geojson_file import encode_store

# The store file and its ledger of changes (geo.store.ledger), which is kept for ever.
FOLDER_FILES = ["p.geojson", "p.geojson.ledger.sqlite"]


def _feature(fid: str, name: str | None = None) -> dict[str, object]:
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [69.1, 34.5]},
            "properties": {"name": name or fid, "category": "water", "status": "planned"}}


def _ids(store: GeoJSONFileStore) -> list[str]:
    return list(store.snapshot().ids)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _lines(store: GeoJSONFileStore) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in store.journal_path.read_bytes().splitlines()]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A store file holding a and b (as the service leaves it at rest: no journal)."""
    file = tmp_path / "p.geojson"
    file.write_bytes(encode_store([_feature("a"), _feature("b")]))
    return file


def _batch_line(features: list[dict[str, object]], at: int = 1767225600000) -> bytes:
    """A batch journal line, written by hand as geo/store/journal.py describes it (newline included)."""
    return (b'{"op":"batch","n":' + str(len(features)).encode() + b',"at":' + str(at).encode()
            + b',"features":' + orjson.dumps(features) + b"}\n")


def _written(path: Path) -> GeoJSONFileStore:
    """A store on `path` after three writes: add c, replace a, delete b (a, c remain)."""
    store = GeoJSONFileStore(path)
    store.add(_feature("c"))
    store.replace("a", _feature("a", "A2"))
    store.delete("b")
    return store


def test_each_write_appends_one_line_and_leaves_the_file_alone(path: Path) -> None:
    before = path.read_bytes()
    store = _written(path)
    assert path.read_bytes() == before
    header, *changes = _lines(store)
    assert header["base"] == store.snapshot().version or header["continues"] is None
    assert [(c["op"], c["id"]) for c in changes] == [("add", "c"), ("replace", "a"), ("delete", "b")]
    assert changes[1]["feature"] == _feature("a", "A2") and "feature" not in changes[2]
    reopened = GeoJSONFileStore(path)
    assert _ids(reopened) == ["a", "c"]
    assert reopened.snapshot().get("a") == _feature("a", "A2")
    assert reopened.snapshot().version == store.snapshot().version


@pytest.mark.parametrize("torn, what", [
    (b'{"op":"add","id":"lost-1","at":1767225600000,"feature":{"type":"Fea', "add of 'lost-1'"),
    # A power cut can keep a line's end and lose its middle (zeros where the data was not written).
    (b'{"op":"replace","id":"a","at":17672256' + b"\x00" * 40 + b"\n", "replace of 'a'"),
    (b"\x00" * 100, "100 bytes, not even its op and id"),
])
def test_a_torn_last_line_is_dropped_with_a_log_line_naming_it(path: Path, torn: bytes, what: str,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    store = _written(path)
    journal = store.journal_path
    good = journal.read_bytes()
    with journal.open("ab") as fh:
        fh.write(torn)  # a write a crash cut short: never acknowledged
    with caplog.at_level(logging.WARNING, logger="geo.store.geojson_file"):
        reopened = GeoJSONFileStore(path)
    assert _ids(reopened) == ["a", "c"]
    message = "\n".join(r.getMessage() for r in caplog.records)
    assert f"{journal}: line 5 was cut short by a crash" in message and what in message
    assert "never acknowledged" in message
    assert journal.read_bytes() == good  # cut off, so the next line is not written after it
    reopened.add(_feature("d"))
    assert _ids(GeoJSONFileStore(path)) == ["a", "c", "d"]


@pytest.mark.parametrize("line, reason", [
    (b'{"op":"replace","id":"a","at":1,"feature":{"type":"Feat\n', "line 3: not valid JSON"),
    (b'{"op":"move","id":"a","at":1}\n', "line 3: unknown op 'move'"),
    (b'{"op":"replace","id":"a","at":1,"feature":' + orjson.dumps(_feature("b")) + b"}\n",
     "line 3: its feature has the id 'b', not 'a'"),
    (b'{"op":"add","id":"a","at":1,"feature":' + orjson.dumps(_feature("a")) + b"}\n",
     "line 3: add of 'a', which exists at that point"),
    (b'{"op":"delete","id":"zz","at":1}\n', "line 3: delete of 'zz', which does not exist"),
    (_batch_line([_feature("x"), _feature("a")]), "line 3: add of 'a', which exists at that point"),
    (_batch_line([_feature("x")]).replace(b'"n":1', b'"n":2'), "line 3: a batch of 2 features holds 1"),
    (_batch_line([_feature("x"), {"type": "Feature", "id": "y"}]),
     "line 3: its feature [1] (y) lacks a geometry or properties object"),
    (b'{"op":"batch","n":0,"at":1,"features":[]}\n', "line 3: a batch without a list of features"),
])
def test_a_corrupt_line_in_the_middle_refuses_to_start_and_overwrites_nothing(
        path: Path, line: bytes, reason: str) -> None:
    store = _written(path)
    journal = store.journal_path
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[2] = line  # the replace of a (line 3), with the delete of b after it
    journal.write_bytes(b"".join(lines))
    before = _files(path.parent)
    with pytest.raises(StoreCorrupt, match=re.escape(f"{journal}: {reason}")):
        GeoJSONFileStore(path)
    with pytest.raises(StoreCorrupt, match=re.escape(reason)):
        create_app(Settings(projects=path, layers_dir=path.parent))
    assert _files(path.parent) == before


def test_a_journal_over_a_file_replaced_by_hand_is_refused(path: Path) -> None:
    store = _written(path)
    path.write_bytes(encode_store([_feature("x")]))  # restored from somewhere while the journal was there
    before = _files(path.parent)
    expected = f"{path} is not the file its journal {store.journal_path} extends: the journal holds 3 changes"
    with pytest.raises(StoreCorrupt, match=re.escape(expected)):
        GeoJSONFileStore(path)
    assert _files(path.parent) == before


def test_a_journal_without_changes_over_a_file_replaced_by_hand_is_removed(path: Path) -> None:
    store = _written(path)
    assert store.compact()  # the journal now holds no change, only its header
    path.write_bytes(encode_store([_feature("x")]))  # edited by hand with the service stopped
    assert _ids(GeoJSONFileStore(path)) == ["x"]
    assert not store.journal_path.exists()


def test_compaction_writes_a_plain_feature_collection_gdal_reads(path: Path) -> None:
    store = _written(path)
    version = store.snapshot().version
    assert store.compact()
    doc = orjson.loads(path.read_bytes())
    assert [f["id"] for f in doc["features"]] == ["a", "c"]
    assert doc["features"][0] == _feature("a", "A2")
    assert pyogrio.read_info(path)["features"] == 2
    assert list(pyogrio.read_dataframe(path)["name"]) == ["A2", "c"]
    header, *changes = _lines(store)
    assert changes == [] and header["continues"] is not None
    assert store.snapshot().version == version  # folding the journal in changes no version
    assert not store.compact()  # nothing left to fold in
    # The file's mtime is when the last change was made (every process's Last-Modified).
    assert store.snapshot().modified is not None
    assert os.stat(path).st_mtime == pytest.approx(store.snapshot().modified.timestamp(), abs=0.002)
    reopened = GeoJSONFileStore(path)
    assert _ids(reopened) == ["a", "c"] and reopened.snapshot().modified == store.snapshot().modified


def test_writes_made_while_the_new_file_is_written_stay_in_the_journal(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The new file is written without the lock: a write that lands meanwhile is not in it, and is carried
    into the new journal."""
    store = _written(path)
    other = GeoJSONFileStore(path)  # another process, writing while the first compacts
    real = geojson_file.write_temporary

    def write_then_other_writes(target: Path, data: bytes, like: Path | None = None) -> tuple[Path, object]:
        out = real(target, data, like)
        if like is None:  # the new store file (the journal's successor names `like`)
            other.add(_feature("during"))
        return out

    monkeypatch.setattr(geojson_file, "write_temporary", write_then_other_writes)
    assert store.compact()
    monkeypatch.undo()
    assert [f["id"] for f in orjson.loads(path.read_bytes())["features"]] == ["a", "c"]
    assert [(c["op"], c["id"]) for c in _lines(store)[1:]] == [("add", "during")]
    for view in (store, other, GeoJSONFileStore(path)):
        assert _ids(view) == ["a", "c", "during"]
    assert store.snapshot().version == other.snapshot().version


# os.replace calls of a compaction, in order: the next journal into place beside the file (1), the new file
# over the old (2), the next journal over the journal (3); `fsync` is the folder's flush between 2 and 3.
@pytest.mark.parametrize("step", ["write", "replace-1", "replace-2", "fsync", "replace-3"])
def test_a_compaction_stopped_at_any_step_loses_nothing(path: Path, step: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    store = _written(path)
    store.add(_feature("d"))
    calls: list[str] = []
    real_replace, real_fsync_dir = os.replace, geojson_file.fsync_dir

    def stop_here(name: str) -> None:
        calls.append(name)
        if name == step:
            raise OSError(5, f"stopped at {step}")

    def replace(src: object, dst: object) -> None:
        stop_here(f"replace-{sum(c.startswith('replace') for c in calls) + 1}")
        real_replace(src, dst)  # type: ignore[arg-type]

    def fsync_dir(folder: Path) -> None:
        stop_here("fsync")
        real_fsync_dir(folder)

    real_write_durably = fsutil.write_durably

    def write_durably(fd: int, data: bytes | Iterable[bytes]) -> None:
        stop_here("write")
        real_write_durably(fd, data)

    monkeypatch.setattr("os.replace", replace)
    monkeypatch.setattr("geo.store.geojson_file.fsync_dir", fsync_dir)
    monkeypatch.setattr("geo.fsutil.write_durably", write_durably)
    with pytest.raises(OSError, match=f"stopped at {step}"):
        store.compact()
    monkeypatch.undo()
    # A restart reads everything, whatever step it was stopped at, and leaves the usual files.
    restarted = GeoJSONFileStore(path)
    assert _ids(restarted) == ["a", "c", "d"]
    assert sorted(_files(path.parent)) == [".p.geojson.journal", *FOLDER_FILES]
    # The first store (still running) goes on too: its next write takes up what was left.
    store.add(_feature("e"))
    assert _ids(store) == _ids(restarted) == ["a", "c", "d", "e"]
    restarted.close()
    assert _ids(GeoJSONFileStore(path)) == ["a", "c", "d", "e"]
    assert [f["id"] for f in orjson.loads(path.read_bytes())["features"]] == ["a", "c", "d", "e"]


def test_another_process_follows_a_compaction_without_reading_the_file_again(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer, reader = _written(path), GeoJSONFileStore(path)
    assert _ids(reader) == ["a", "c"]
    assert writer.compact()
    writer.add(_feature("d"))
    writer.replace("c", _feature("c", "C2"))

    def no_full_read() -> None:
        raise AssertionError("the store file was read again")

    monkeypatch.setattr(reader, "_read_base", no_full_read)
    assert _ids(reader) == ["a", "c", "d"]
    assert reader.snapshot().get("c") == _feature("c", "C2")
    assert reader.snapshot().version == writer.snapshot().version
    assert writer.compact()
    assert _ids(reader) == ["a", "c", "d"]
    writer.close()  # removes the journal, which holds no change now: the reader follows that too
    assert _ids(reader) == ["a", "c", "d"] and not reader.journal_path.exists()
    assert reader.snapshot().version == writer.snapshot().version


def test_a_journal_another_process_started_is_read_from_its_start(path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    reader = GeoJSONFileStore(path)  # no journal yet
    monkeypatch.setattr(reader, "_read_base", lambda: (_ for _ in ()).throw(AssertionError("re-read")))
    _written(path)
    assert _ids(reader) == ["a", "c"]


def test_two_compactions_in_between_are_followed_by_reading_everything_again(path: Path) -> None:
    writer, reader = _written(path), GeoJSONFileStore(path)
    assert writer.compact()
    writer.add(_feature("d"))
    assert writer.compact()
    writer.add(_feature("e"))
    assert _ids(reader) == ["a", "c", "d", "e"]
    assert reader.snapshot().version == writer.snapshot().version


def _until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _in_file(path: Path) -> list[str]:
    return [f["id"] for f in orjson.loads(path.read_bytes())["features"]]


def test_a_journal_past_its_size_is_compacted_in_the_background(path: Path) -> None:
    store = GeoJSONFileStore(path, journal_max_bytes=1000)
    for n in range(6):  # about 230 bytes a line
        store.add(_feature(f"n{n}"))
    assert _until(lambda: len(_in_file(path)) >= 6), "no compaction"
    assert _ids(store)[:8] == ["a", "b", "n0", "n1", "n2", "n3", "n4", "n5"]
    store.close()


def test_a_change_older_than_the_age_limit_is_compacted_in_the_background(path: Path) -> None:
    store = GeoJSONFileStore(path, journal_max_age_s=0.3)
    began = time.monotonic()
    store.add(_feature("c"))
    assert _in_file(path) == ["a", "b"]
    assert _until(lambda: _in_file(path) == ["a", "b", "c"]), "no compaction"
    assert time.monotonic() - began >= 0.3
    store.close()
    assert sorted(_files(path.parent)) == FOLDER_FILES


@pytest.mark.parametrize("layout", ["indented", "one line", "a feature over two lines"])
def test_a_store_file_laid_out_by_hand_reads_the_same(path: Path, layout: str) -> None:
    """The store writes one feature per line and reads such a file a line at a time; any other layout of
    the same JSON (an editor's) reads the same, and the journal goes on over it."""
    features = [_feature("a"), _feature("b", 'B, "quoted",\nacross a line')]
    doc = {"type": "FeatureCollection", "features": features}
    text = {"indented": orjson.dumps(doc, option=orjson.OPT_INDENT_2),
            "one line": orjson.dumps(doc),
            "a feature over two lines": encode_store(features).replace(b'"id":"b",', b'"id":"b",\n')}[layout]
    path.write_bytes(text)
    store = GeoJSONFileStore(path)
    assert [store.snapshot().get(fid) for fid in store.snapshot().ids] == features
    store.add(_feature("c"))
    assert _ids(GeoJSONFileStore(path)) == ["a", "b", "c"]


def test_replaying_the_journal_keeps_the_order_the_writes_made(path: Path) -> None:
    """Replayed on start, the journal gives what the writes gave as they were made: a replaced feature
    keeps its place, a deleted one goes, one added (or deleted and restored) comes last."""
    store = GeoJSONFileStore(path)  # a, b in the file
    steps = [("add", "c"), ("delete", "a"), ("restore", "a"), ("replace", "b"), ("add", "d"), ("delete", "c"),
             ("replace", "a"), ("restore", "c"), ("delete", "d")]
    for n, (op, fid) in enumerate(steps):
        if op == "delete":
            store.delete(fid)
        elif op == "restore":
            store.restore(fid)  # as it was when deleted (a deleted id is never added again)
        elif op == "add":
            store.add(_feature(fid, f"step {n}"))
        else:
            store.replace(fid, _feature(fid, f"step {n}"))
    written = store.snapshot()
    assert list(written.ids) == ["b", "a", "c"]
    replayed = GeoJSONFileStore(path).snapshot()
    assert [replayed.get(fid) for fid in replayed.ids] == [written.get(fid) for fid in written.ids]
    names = [replayed.get(fid)["properties"]["name"] for fid in replayed.ids]  # type: ignore[index]
    assert names == ["step 3", "step 6", "step 0"]


# --- batches (add_many): one line, all or none ---

def test_add_many_appends_one_batch_line_that_replays_and_compacts_like_any_other(path: Path) -> None:
    store = _written(path)  # three single-change lines first: old journals and batches mix
    follower = GeoJSONFileStore(path)
    batch = [_feature(f"n{k}") for k in (2, 0, 1)]
    store.add_many(batch)
    *_, line = _lines(store)
    assert line["op"] == "batch" and line["n"] == 3 and line["features"] == batch
    assert len(_lines(store)) == 5  # the header, three changes, one batch
    expected = ["a", "c", "n2", "n0", "n1"]
    assert _ids(follower) == expected and follower.snapshot().version == store.snapshot().version
    assert _ids(GeoJSONFileStore(path)) == expected
    version = store.snapshot().version
    assert store.compact()
    assert _in_file(path) == expected and pyogrio.read_info(path)["features"] == 5
    assert store.snapshot().version == version and _lines(store)[1:] == []
    assert _ids(follower) == expected and follower.snapshot().version == version


def test_a_batch_line_written_by_hand_reads_back(path: Path) -> None:
    """The format is the one geo/store/journal.py documents, not only what this version happens to write."""
    store = _written(path)
    with store.journal_path.open("ab") as fh:
        fh.write(_batch_line([_feature("x"), _feature("y", "Y")]))
    reopened = GeoJSONFileStore(path)
    assert _ids(reopened) == ["a", "c", "x", "y"]
    assert reopened.snapshot().get("y") == _feature("y", "Y")
    assert reopened.snapshot().modified is not None
    assert reopened.snapshot().modified.timestamp() == 1767225600  # the batch's `at`


BATCH = _batch_line([_feature("lost-1"), _feature("lost-2"), _feature("lost-3")])


@pytest.mark.parametrize("torn", [
    BATCH[:-1],  # all but its newline: even complete JSON is not acknowledged without it
    BATCH[:BATCH.index(b'"lost-2"') + 50],  # the first feature whole, the second begun
    BATCH[:20],
    # A power cut can keep a line's end and lose its middle (zeros where the data was not written).
    BATCH[:60] + b"\x00" * (len(BATCH) - 61) + b"\n",
], ids=["no newline", "mid-features", "head only", "zeros inside"])
def test_a_torn_batch_line_is_dropped_whole(path: Path, torn: bytes,
                                            caplog: pytest.LogCaptureFixture) -> None:
    store = _written(path)
    journal = store.journal_path
    good = journal.read_bytes()
    with journal.open("ab") as fh:
        fh.write(torn)  # a batch a crash cut short: never acknowledged
    with caplog.at_level(logging.WARNING, logger="geo.store.geojson_file"):
        reopened = GeoJSONFileStore(path)
    assert _ids(reopened) == ["a", "c"]  # none of it, not the features before the tear
    message = "\n".join(r.getMessage() for r in caplog.records)
    assert f"{journal}: line 5 was cut short by a crash" in message
    assert f"{len(torn)} bytes, a batch of 3 adds" in message
    assert journal.read_bytes() == good
    reopened.add_many([_feature("d"), _feature("lost-1")])
    assert _ids(GeoJSONFileStore(path)) == ["a", "c", "d", "lost-1"]


def test_a_batch_of_ten_thousand_is_one_line_of_megabytes_that_reads_back_or_is_dropped_whole(
        path: Path) -> None:
    """No line-length limit: a 10,000-project batch (about 4 MB here) is replayed on start, and one torn
    in its middle is cut off whole."""
    filler = "x" * 300  # a description, so the projects are of a typical size
    batch = [{**_feature(f"imp-{k:05d}"), "properties": {"name": f"Imported {k}", "category": "water",
                                                         "status": "planned", "description": filler}}
             for k in range(10_000)]
    store = GeoJSONFileStore(path, journal_max_bytes=1 << 30)  # no compaction of its own
    store.add_many(batch)
    size = store.journal_path.stat().st_size
    assert size > 4_000_000
    reopened = GeoJSONFileStore(path, journal_max_bytes=1 << 30)
    assert list(reopened.snapshot().ids) == ["a", "b", *(f["id"] for f in batch)]
    assert reopened.snapshot().get("imp-09999") == batch[-1]
    with store.journal_path.open("r+b") as fh:
        fh.truncate(size // 2)  # as a crash halfway through the append leaves it
    assert _ids(GeoJSONFileStore(path, journal_max_bytes=1 << 30)) == ["a", "b"]
    assert len(store.journal_path.read_bytes().splitlines()) == 1  # only the header is left
