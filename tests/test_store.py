"""The GeoJSON-file store: atomic, durable, shared between processes, and never overwriting a bad file."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from geo.app import create_app
from geo.errors import StoreCorrupt, StoreWriteFailed
from geo.settings import Settings
from geo.store import GeoJSONFileStore
from tests.conftest import AUTH, ROOT, point_feature


def _feature(fid: str) -> dict[str, object]:
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [69.1, 34.5]},
            "properties": {"name": fid, "category": "water", "status": "planned"}}


def test_write_then_reopen(tmp_path: Path) -> None:
    path = tmp_path / "p.geojson"
    store = GeoJSONFileStore(path)
    assert len(store.snapshot()) == 0 and not path.exists()
    store.add(_feature("a"))
    store.add(_feature("b"))
    assert GeoJSONFileStore(path).snapshot().ids == ("a", "b")
    # Human-readable: one feature per line; no temporary files left behind.
    assert path.read_text().count("\n") >= 3
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


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


def test_another_process_sees_writes(tmp_path: Path) -> None:
    path = tmp_path / "p.geojson"
    first, second = GeoJSONFileStore(path), GeoJSONFileStore(path)
    first.add(_feature("a"))
    assert second.snapshot().ids == ("a",)
    second.add(_feature("b"))
    assert first.snapshot().ids == ("a", "b")


def _writer(path: str, prefix: str, count: int) -> None:
    store = GeoJSONFileStore(Path(path))
    for n in range(count):
        store.add(_feature(f"{prefix}-{n}"))


def test_concurrent_writers_in_separate_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "p.geojson"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), f"w{i}", 15)) for i in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    ids = GeoJSONFileStore(path).snapshot().ids
    assert len(ids) == 45 and len(set(ids)) == 45


def test_a_failed_write_leaves_the_last_acknowledged_state(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.geojson"
    store = GeoJSONFileStore(path)
    store.add(_feature("a"))
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("geo.fsutil.os.replace", broken_replace)
    with pytest.raises(StoreWriteFailed, match="No space left on device"):
        store.add(_feature("b"))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert store.snapshot().ids == ("a",)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_created_project_is_on_disk_when_acknowledged(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        created = client.post("/collections/projects/items", json=point_feature(), headers=AUTH).json()
    on_disk = orjson.loads(settings.projects.read_bytes())
    assert created["id"] in [f["id"] for f in on_disk["features"]]
    # The shipped seed projects are still there, first, in their order.
    shipped = orjson.loads((ROOT / "projects.geojson").read_bytes())
    assert [f["id"] for f in on_disk["features"][:-1]] == [f["id"] for f in shipped["features"]]


def test_a_disk_fault_during_a_post_is_a_503_and_changes_nothing(settings: Settings,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with TestClient(create_app(settings)) as client:
        before = client.get("/collections/projects/items").json()["numberMatched"]
        on_disk = settings.projects.read_bytes()

        def broken_fsync(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr("geo.fsutil.os.fsync", broken_fsync)
        response = client.post("/collections/projects/items", json=point_feature(), headers=AUTH)
        monkeypatch.undo()
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert "nothing was changed" in response.json()["detail"]
        assert settings.projects.read_bytes() == on_disk
        assert client.get("/collections/projects/items").json()["numberMatched"] == before
        again = client.post("/collections/projects/items", json=point_feature(), headers=AUTH)
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
    ids = GeoJSONFileStore(path).snapshot().ids  # the file still parses
    assert set(acknowledged) <= set(ids)
    assert list(ids) == [f"k-{n}" for n in range(len(ids))]  # in order, nothing torn or repeated
    assert list(tmp_path.glob("*.tmp")) == []  # a killed write's temporary file is swept on opening


def test_orphaned_temporary_files_are_swept_and_others_left(tmp_path: Path) -> None:
    path = tmp_path / "p.geojson"
    GeoJSONFileStore(path).add(_feature("a"))
    orphan = tmp_path / ".p.geojson.abc123.tmp"
    orphan.write_bytes(b'{"type": "FeatureCollection", "features": [')
    unrelated = tmp_path / ".other.geojson.abc123.tmp"
    unrelated.write_bytes(b"keep")
    assert GeoJSONFileStore(path).snapshot().ids == ("a",)
    assert not orphan.exists() and unrelated.exists()
