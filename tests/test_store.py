"""The GeoJSON-file store: atomic, durable, shared between processes, and never overwriting a bad file.

Writes go to the journal beside the file (tests/test_journal.py covers it and compaction); here "on disk"
means what a new store opened on the path reads (the file with its journal replayed), and "nothing
changed" means no byte of any file in the folder did.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from geo import fsutil
from geo.app import create_app
from geo.errors import StoreCorrupt, StoreFull, StoreWriteFailed
from geo.fsutil import atomic_write_bytes, exclusive_lock
from geo.settings import Settings
from geo.store import GeoJSONFileStore, geojson_file
from geo.store.geojson_file import encode_store
from tests.conftest import AUTH, ROOT, point_feature
from tests.server import live_server


def _feature(fid: str) -> dict[str, object]:
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [69.1, 34.5]},
            "properties": {"name": fid, "category": "water", "status": "planned"}}


def _ids(store: GeoJSONFileStore) -> list[str]:
    return list(store.snapshot().ids)


def _on_disk(path: Path) -> list[str]:
    """The ids a store newly opened on `path` reads: the file with its journal replayed."""
    return _ids(GeoJSONFileStore(path))


def _files(folder: Path) -> dict[str, bytes]:
    """Every file in `folder` and its bytes (the store file, its journal, anything left behind)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_write_then_reopen(tmp_path: Path) -> None:
    path = tmp_path / "p.geojson"
    store = GeoJSONFileStore(path)
    assert len(store.snapshot()) == 0 and not path.exists()
    store.add(_feature("a"))
    store.add(_feature("b"))
    assert _on_disk(path) == ["a", "b"]
    store.close()  # folds the journal into the file
    assert [f["id"] for f in orjson.loads(path.read_bytes())["features"]] == ["a", "b"]
    # Human-readable: one feature per line; no journal, temporary or lock file left behind (the ledger of
    # changes is kept for ever).
    assert path.read_text().count("\n") >= 3
    assert sorted(p.name for p in tmp_path.iterdir()) == AT_REST


@pytest.mark.parametrize("content, reason", [
    (b'{"type": "FeatureCollection", "features": [', "not valid JSON"),
    (b'{"type": "Feature"}', "not a GeoJSON FeatureCollection"),
    (b'{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": null, '
     b'"properties": {}}]}', "has no string 'id'"),
    (b'{"type": "FeatureCollection", "features": [{"type": "Feature", "id": "a", "geometry": {}, '
     b'"properties": {}}, {"type": "Feature", "id": "a", "geometry": {}, "properties": {}}]}',
     "features\\[1\\] repeats the id 'a'"),
])
def test_corrupt_store_is_refused_and_left_untouched(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "p.geojson"
    path.write_bytes(content)
    with pytest.raises(StoreCorrupt, match=reason):
        GeoJSONFileStore(path)
    with pytest.raises(StoreCorrupt):
        create_app(Settings(projects=path, layers_dir=tmp_path))
    assert path.read_bytes() == content


def _disk_fills_mid_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next write to a file gets a few bytes in, then the disk is full (what ENOSPC looks like)."""
    real_write = os.write
    calls: list[int] = []

    def write(fd: int, data: bytes) -> int:
        calls.append(fd)
        if len(calls) == 1:
            return real_write(fd, bytes(data[:7]))  # a partial line on disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("geo.fsutil.os.write", write)


def test_a_failed_write_leaves_the_last_acknowledged_state(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.geojson"
    store = GeoJSONFileStore(path)
    store.add(_feature("a"))
    before = _files(tmp_path)
    _disk_fills_mid_write(monkeypatch)
    with pytest.raises(StoreFull, match="No space left on device") as raised:
        store.add(_feature("b"))
    monkeypatch.undo()
    assert raised.value.status == 503 and raised.value.headers["Retry-After"] == "2"
    assert _files(tmp_path) == before  # the partial line was cut off again
    assert _ids(store) == ["a"] and _on_disk(path) == ["a"]
    store.add(_feature("c"))  # and the journal goes on cleanly after it
    assert _on_disk(path) == ["a", "c"]


def test_created_project_is_on_disk_when_acknowledged(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        created = client.post("/collections/projects/items", json=point_feature(), headers=AUTH).json()
        assert created["id"] in _on_disk(settings.projects)  # in the journal before the answer
    on_disk = orjson.loads(settings.projects.read_bytes())  # folded into the file at shutdown
    assert created["id"] in [f["id"] for f in on_disk["features"]]
    # The shipped seed projects are still there, first, in their order.
    shipped = orjson.loads((ROOT / "projects.geojson").read_bytes())
    assert [f["id"] for f in on_disk["features"][:-1]] == [f["id"] for f in shipped["features"]]


def test_a_disk_fault_during_a_post_is_a_503_and_changes_nothing(settings: Settings,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with TestClient(create_app(settings)) as client:
        before = client.get("/collections/projects/items").json()["numberMatched"]
        first = client.post("/collections/projects/items", json=point_feature(), headers=AUTH)
        assert first.status_code == 201  # the journal exists: what follows is one failed append
        on_disk = _files(settings.projects.parent)
        real_fdatasync = os.fdatasync
        failed: list[int] = []

        def broken_fdatasync(fd: int) -> None:
            if not failed:  # the flush of the new line fails; the flush after cutting it off works
                failed.append(fd)
                raise OSError(5, "Input/output error")
            real_fdatasync(fd)

        monkeypatch.setattr("geo.fsutil.os.fdatasync", broken_fdatasync)
        # Another project than the first (the same one again would be a duplicate, 409).
        body = point_feature(name="Written after a disk fault")
        response = client.post("/collections/projects/items", json=body, headers=AUTH)
        monkeypatch.undo()
        assert failed and response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "2"
        assert "Nothing was changed" in response.json()["detail"]
        assert _files(settings.projects.parent) == on_disk
        assert _stray(settings.projects.parent) == []
        assert client.get("/collections/projects/items").json()["numberMatched"] == before + 1
        again = client.post("/collections/projects/items", json=body, headers=AUTH)
        assert again.status_code == 201


WRITER = """
import sys
from pathlib import Path
from geo.store import GeoJSONFileStore
store = GeoJSONFileStore(Path(sys.argv[1]))
n = 0
while True:
    fid = f"k-{n}"
    store.add({"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [69.1, 34.5]},
               "properties": {"name": fid, "category": "water", "status": "planned"}})
    print(fid, flush=True)  # acknowledged: the write is on disk
    n += 1
"""


def test_sigkill_mid_write_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    path = tmp_path / "p.geojson"
    with subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                          cwd=ROOT) as proc:
        assert proc.stdout is not None
        acknowledged = [proc.stdout.readline().strip() for _ in range(40)]
        os.kill(proc.pid, signal.SIGKILL)  # somewhere in the middle of a later write
        proc.wait(10)
        acknowledged += [line.strip() for line in proc.stdout.read().splitlines() if line.strip()]
    ids = _on_disk(path)  # the file and the journal still read
    assert set(acknowledged) <= set(ids)
    assert ids == [f"k-{n}" for n in range(len(ids))]  # in order, nothing torn or repeated
    assert list(tmp_path.glob("*.tmp")) == []  # a killed write's temporary file is swept on opening


def test_orphaned_temporary_files_are_swept_and_others_left(tmp_path: Path) -> None:
    path = tmp_path / "p.geojson"
    GeoJSONFileStore(path).add(_feature("a"))
    orphan = tmp_path / ".p.geojson.abc123.tmp"
    orphan.write_bytes(b'{"type": "FeatureCollection", "features": [')
    unrelated = tmp_path / ".other.geojson.abc123.tmp"
    unrelated.write_bytes(b"keep")
    assert _on_disk(path) == ["a"]
    assert not orphan.exists() and unrelated.exists()


# --- The three writes on the store: the errors only a file has (the others: test_store_contract.py) ---

WRITES = ("add", "replace", "delete")
# The files of a store at rest: the store file and its ledger of changes (geo.store.ledger, kept for ever).
AT_REST = ["p.geojson", "p.geojson.ledger.sqlite"]


def _renamed(fid: str, name: str) -> dict[str, object]:
    return {**_feature(fid), "properties": {"name": name, "category": "water", "status": "planned"}}


def _store_ab(tmp_path: Path) -> tuple[GeoJSONFileStore, Path]:
    path = tmp_path / "p.geojson"
    store = GeoJSONFileStore(path, lock_timeout_s=0.2)
    store.add(_feature("a"))
    store.add(_feature("b"))
    return store, path


def _write(store: GeoJSONFileStore, method: str, if_match: str | None = None, fid: str = "a") -> None:
    if method == "add":
        store.add(_feature("c"))
    elif method == "replace":
        store.replace(fid, _renamed(fid, "new"), if_match=if_match)
    else:
        store.delete(fid, if_match=if_match)


@pytest.mark.parametrize("method", WRITES)
def test_each_write_that_cannot_reach_the_disk_fails_and_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    store, path = _store_ab(tmp_path)
    before = _files(path.parent)
    _disk_fills_mid_write(monkeypatch)
    with pytest.raises(StoreFull, match="No space left on device") as raised:
        _write(store, method)
    monkeypatch.undo()
    assert raised.value.status == 503 and raised.value.type_slug == "store-full"
    assert _files(path.parent) == before and _ids(store) == ["a", "b"]
    assert _stray(tmp_path) == []


@pytest.mark.parametrize("method", WRITES)
def test_each_write_refuses_to_overwrite_a_file_it_cannot_read(tmp_path: Path, method: str) -> None:
    store, path = _store_ab(tmp_path)
    broken = b'{"type": "FeatureCollection", "features": ['
    atomic_write_bytes(path, broken)  # changed by hand, or by another program
    with pytest.raises(StoreWriteFailed, match="not overwritten"):
        _write(store, method)
    assert path.read_bytes() == broken


# --- Files the service writes: mode, owner, symlinks, no stray files, the truth after a rename ---

def _stray(*folders: Path) -> list[str]:
    """Temporary and lock files left in these folders."""
    return sorted(p.name for folder in folders for p in folder.iterdir()
                  if p.name.endswith((".tmp", ".lock")))


def test_mode_and_owner_survive_writes_and_compaction(tmp_path: Path) -> None:
    path = tmp_path / "p.geojson"
    first = GeoJSONFileStore(path)
    first.add(_feature("a"))
    first.close()
    os.chmod(path, 0o640)
    # As root the owner can be anyone: give the file away and check a write gives it back the same.
    owner = (4321, 4322) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    os.chown(path, *owner)
    store = GeoJSONFileStore(path)
    store.add(_feature("b"))
    store.replace("a", _feature("a"))
    journal = os.stat(store.journal_path)  # the journal is started with the file's mode and owner
    assert (stat.S_IMODE(journal.st_mode), journal.st_uid, journal.st_gid) == (0o640, *owner)
    assert store.compact()
    store.add(_feature("c"))
    store.close()
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert (st.st_uid, st.st_gid) == owner
    assert _stray(tmp_path) == []


def test_a_new_store_file_gets_the_usual_mode_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "p.geojson"
        store = GeoJSONFileStore(path)
        store.add(_feature("a"))
        store.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644  # 0o666 minus the umask, like any new file


def test_a_symlinked_store_stays_a_symlink_and_its_target_gets_the_write(tmp_path: Path,
                                                                       settings: Settings) -> None:
    volume, checkout = tmp_path / "volume", tmp_path / "checkout"
    volume.mkdir()
    checkout.mkdir()
    real = volume / "projects.geojson"
    real.write_bytes(settings.projects.read_bytes())
    link = checkout / "projects.geojson"
    link.symlink_to(real)
    with TestClient(create_app(settings.model_copy(update={"projects": link}))) as client:
        created = client.post("/collections/projects/items", json=point_feature(), headers=AUTH)
        assert created.status_code == 201
        fid = created.json()["id"]
        patched = client.patch(f"/collections/projects/items/{fid}", headers=AUTH,
                               json={"properties": {"status": "planned"}})
        assert patched.status_code == 200
    assert link.is_symlink() and os.readlink(link) == str(real)
    stored = {f["id"]: f for f in orjson.loads(real.read_bytes())["features"]}
    assert stored[fid]["properties"]["status"] == "planned"
    assert len(stored) == 3  # the two shipped projects and the new one
    assert _stray(volume, checkout) == []


def test_no_temporary_or_lock_file_is_left_after_writes_or_a_failed_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.geojson"
    store = GeoJSONFileStore(path)
    store.add(_feature("a"))
    store.replace("a", _feature("a"))
    store.add(_feature("c"))
    store.delete("c")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".p.geojson.journal", "p.geojson.ledger.sqlite"]
    assert store.compact()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".p.geojson.journal", *AT_REST]
    before = _files(tmp_path)

    def disk_full(fd: int, old: os.stat_result) -> None:
        # Fails after the temporary file exists and before the rename.
        raise OSError(28, "No space left on device")

    store.add(_feature("d"))
    monkeypatch.setattr("geo.fsutil._adopt_ownership", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        store.compact()  # a compaction that fails leaves the file, the journal and nothing else
    monkeypatch.undo()
    _disk_fills_mid_write(monkeypatch)
    with pytest.raises(StoreWriteFailed, match="No space left on device"):
        store.add(_feature("b"))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".p.geojson.journal", *AT_REST]
    assert _files(tmp_path)["p.geojson"] == before["p.geojson"] and _ids(store) == ["a", "d"]
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == AT_REST


def test_a_failed_folder_fsync_after_the_rename_is_reported_as_the_success_it_is(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken_fsync_dir(folder: Path) -> None:
        raise OSError(5, "Input/output error")

    with TestClient(create_app(settings)) as client:
        monkeypatch.setattr("geo.fsutil.fsync_dir", broken_fsync_dir)
        with caplog.at_level(logging.ERROR, logger="geo.fsutil"):
            response = client.post("/collections/projects/items", json=point_feature(), headers=AUTH)
        # The rename happened: the client must not be told "nothing was changed" and retry into a duplicate.
        assert response.status_code == 201, response.text
        fid = response.json()["id"]
        assert client.get(f"/collections/projects/items/{fid}").status_code == 200
        assert "Input/output error" in caplog.text and "was written" in caplog.text
    assert fid in [f["id"] for f in orjson.loads(settings.projects.read_bytes())["features"]]


def test_folding_the_journal_in_changes_no_version(tmp_path: Path) -> None:
    """Versions agree between processes and change with every write (tests/test_store_contract.py);
    compaction, which only moves changes from the journal into the file, changes none."""
    path = tmp_path / "p.geojson"
    writer = GeoJSONFileStore(path)
    writer.add(_feature("a1"))
    reader = GeoJSONFileStore(path)  # another process's view
    writer.replace("a1", _renamed("a1", "b2"))
    version = writer.snapshot().version
    assert writer.compact()
    assert writer.snapshot().version == reader.snapshot().version == version
    assert GeoJSONFileStore(path).snapshot().version == version


def test_a_held_lock_times_out_as_a_503_with_retry_after(settings: Settings) -> None:
    quick = settings.model_copy(update={"store_lock_timeout_s": 0.2})
    before = settings.projects.read_bytes()
    with TestClient(create_app(quick)) as client:
        lock = client.app.state.catalogue.store.lock_path  # type: ignore[attr-defined]
        with exclusive_lock(lock, timeout=1):  # another process is writing, for too long
            response = client.post("/collections/projects/items", json=point_feature(), headers=AUTH)
            deleted = client.delete("/collections/projects/items/salang-tunnel-2", headers=AUTH)
        for answer in (response, deleted):
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.headers["retry-after"] == "2"
            assert answer.json()["type"].endswith("store-busy")
        assert settings.projects.read_bytes() == before
        again = client.post("/collections/projects/items", json=point_feature(), headers=AUTH)
        assert again.status_code == 201
    assert _stray(settings.projects.parent) == []


def test_a_held_lock_times_out_as_a_503_through_a_real_server(settings: Settings, tmp_path: Path) -> None:
    quick = settings.model_copy(update={"store_lock_timeout_s": 0.3})
    before = settings.projects.read_bytes()
    log = tmp_path / "server.log"
    with live_server(quick, log=log) as base:
        with exclusive_lock(GeoJSONFileStore(settings.projects).lock_path, timeout=1):
            response = httpx.post(f"{base}/collections/projects/items", json=point_feature(), headers=AUTH,
                                  timeout=10)
            read = httpx.get(f"{base}/collections/projects/items", timeout=10)
        assert response.status_code == 503 and response.headers["retry-after"] == "2"
        assert response.json()["type"].endswith("store-busy")
        assert read.status_code == 200 and read.json()["numberMatched"] == 2  # reads went on meanwhile
        assert settings.projects.read_bytes() == before
    assert "Traceback" not in log.read_text()


# --- Reads never wait for a writer ---

def test_a_read_is_served_while_a_writer_is_inside_the_lock(client: TestClient,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    store = client.app.state.catalogue.store  # type: ignore[attr-defined]
    inside, release = threading.Event(), threading.Event()
    real_append = geojson_file.append_durably

    def slow_append(fd: int, data: bytes, size: int) -> None:
        # The store appends to the journal while it holds the cross-process lock.
        inside.set()
        release.wait(30)
        real_append(fd, data, size)

    monkeypatch.setattr(geojson_file, "append_durably", slow_append)
    url = "/collections/projects/items/salang-tunnel-2"
    body = client.get(url).json()
    body["properties"] = {k: v for k, v in body["properties"].items() if k != "status_history"}
    body["properties"]["name"] = "Renamed while others read"
    result: dict[str, int] = {}
    writer = threading.Thread(target=lambda: result.update(
        status=client.put(url, json=body, headers=AUTH).status_code))
    writer.start()
    try:
        assert inside.wait(10), "the write never reached the file"
        assert store.lock_path.exists()  # the writer holds the lock now
        read = client.get(url)  # must not wait for the writer
        assert writer.is_alive() and not release.is_set()
        assert read.status_code == 200
        assert read.json()["properties"]["name"] != "Renamed while others read"  # the last complete version
    finally:
        release.set()
        writer.join(30)
    assert result == {"status": 200}
    assert client.get(url).json()["properties"]["name"] == "Renamed while others read"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_a_write_checks_its_feature_without_holding_the_lock(client: TestClient, method: str) -> None:
    """Validation and province assignment run before the store's lock is taken: while one write is in
    its checks, another process can take the lock (the writer holds it only to compare and write)."""
    catalogue = client.app.state.catalogue  # type: ignore[attr-defined]
    store = catalogue.store
    place = catalogue.place
    checking, release = threading.Event(), threading.Event()

    def slow_place(geom: Any) -> Any:
        checking.set()
        release.wait(30)
        return place(geom)

    url = "/collections/projects/items" + ("" if method == "POST" else "/salang-tunnel-2")
    body: dict[str, Any] = ({"geometry": {"type": "Point", "coordinates": [69.2, 34.6]}} if method == "PATCH"
                            else point_feature())
    catalogue.place = slow_place
    result: dict[str, int] = {}
    writer = threading.Thread(target=lambda: result.update(
        status=client.request(method, url, json=body, headers=AUTH).status_code))
    writer.start()
    try:
        assert checking.wait(10), "the write never reached its checks"
        with exclusive_lock(store.lock_path, timeout=0.5):  # another process takes the lock meanwhile
            assert writer.is_alive()
    finally:
        release.set()
        writer.join(30)
    assert result == {"status": 201 if method == "POST" else 200}


def test_another_process_write_is_read_while_a_local_writer_waits_for_the_lock(
        client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The old failure: a local writer held the snapshot's mutex while it waited for the file lock."""
    store = client.app.state.catalogue.store  # type: ignore[attr-defined]
    waiting = threading.Event()
    real_lock = geojson_file.exclusive_lock

    def observed_lock(path: Path, timeout: float) -> Any:
        waiting.set()  # the local writer is about to wait for the lock the test holds
        return real_lock(path, timeout)

    monkeypatch.setattr(geojson_file, "exclusive_lock", observed_lock)
    result: dict[str, int] = {}
    with exclusive_lock(store.lock_path, timeout=1):
        # "Another process" writes a third project while holding the lock.
        features = orjson.loads(settings.projects.read_bytes())["features"]
        atomic_write_bytes(settings.projects, encode_store([*features, _feature("from-elsewhere")]))
        writer = threading.Thread(target=lambda: result.update(status=client.post(
            "/collections/projects/items", json=point_feature(), headers=AUTH).status_code))
        writer.start()
        assert waiting.wait(10)
        read = client.get("/collections/projects/items")
        assert writer.is_alive()
        assert read.status_code == 200 and read.json()["numberMatched"] == 3
    writer.join(30)
    assert result == {"status": 201}
    assert client.get("/collections/projects/items").json()["numberMatched"] == 4


def test_another_process_write_is_reloaded_off_the_event_loop(client: TestClient, settings: Settings,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    store = client.app.state.catalogue.store  # type: ignore[attr-defined]
    calls: list[bool] = []
    real_refresh = store.refresh

    def recorded_refresh() -> Any:
        try:
            asyncio.get_running_loop()
            calls.append(True)
        except RuntimeError:
            calls.append(False)
        return real_refresh()

    monkeypatch.setattr(store, "refresh", recorded_refresh)
    features = orjson.loads(settings.projects.read_bytes())["features"]
    atomic_write_bytes(settings.projects, encode_store([*features, _feature("from-elsewhere")]))
    assert client.get("/collections/projects/items/from-elsewhere").status_code == 200
    assert calls and not any(calls), "the store was re-read on the event loop"
    assert client.get("/collections/projects/items").json()["numberMatched"] == 3


def test_a_store_corrupted_by_hand_is_neither_served_broken_nor_overwritten(
        client: TestClient, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    good = settings.projects.read_bytes()
    broken = b'{"type": "FeatureCollection", "features": ['
    atomic_write_bytes(settings.projects, broken)
    with caplog.at_level(logging.ERROR, logger="geo.store.geojson_file"):
        for _ in range(5):
            read = client.get("/collections/projects/items")
            assert read.status_code == 200 and read.json()["numberMatched"] == 2  # the last good version
        written = client.post("/collections/projects/items", json=point_feature(), headers=AUTH)
    assert written.status_code == 503 and "not overwritten" in written.json()["detail"]
    assert str(settings.projects) not in written.json()["detail"]
    assert settings.projects.read_bytes() == broken
    # Parsed and logged once for the reads (and once for the refused write), not once per request.
    assert sum("could not be re-read" in r.getMessage() for r in caplog.records) == 1
    atomic_write_bytes(settings.projects, good)
    assert client.post("/collections/projects/items", json=point_feature(), headers=AUTH).status_code == 201
    assert client.get("/collections/projects/items").json()["numberMatched"] == 3


def test_a_waiter_left_holding_a_removed_lock_file_tries_again(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock file is removed on release, so a waiter may lock a file that no longer has a name.

    Constructed: the waiter has opened the old file and is about to flock it, the holder releases (and
    removes it), a third party takes the lock on a new file. The waiter must not enter too.
    """
    lock = tmp_path / ".p.geojson.lock"
    opened, go = threading.Event(), threading.Event()
    third_holds, third_release, waiter_inside = threading.Event(), threading.Event(), threading.Event()

    class PausingFcntl:
        LOCK_EX, LOCK_NB = fcntl.LOCK_EX, fcntl.LOCK_NB

        @staticmethod
        def flock(fd: int, op: int) -> None:
            if threading.current_thread().name == "waiter" and not go.is_set():
                opened.set()
                go.wait(10)
            fcntl.flock(fd, op)

    monkeypatch.setattr(fsutil, "fcntl", PausingFcntl)

    def waiter() -> None:
        with exclusive_lock(lock, timeout=10):
            waiter_inside.set()

    def third() -> None:
        with exclusive_lock(lock, timeout=10):
            third_holds.set()
            third_release.wait(10)

    waiting = threading.Thread(target=waiter, name="waiter")
    with exclusive_lock(lock, timeout=1):
        waiting.start()
        assert opened.wait(10)  # the waiter holds a descriptor of the first lock file
    assert not lock.exists()  # released and removed
    other = threading.Thread(target=third)
    other.start()
    assert third_holds.wait(10)
    go.set()  # the waiter now locks the removed file, which nobody holds
    assert not waiter_inside.wait(0.5), "two holders at once"
    third_release.set()
    assert waiter_inside.wait(10)
    waiting.join(10)
    other.join(10)
    assert not lock.exists()
