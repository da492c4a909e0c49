"""A full disk, for real: the store on a small tmpfs (mounted here, as root) that a filler file fills.

The write that does not fit answers 503 (problem JSON, Retry-After) and leaves no partial line; reads go
on; a compaction that runs out of space leaves the old file and the whole journal; a server killed while
the disk is full restarts on it and finds every acknowledged write.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from geo.settings import Settings
from geo.store.geojson_file import encode_store
from tests.conftest import AUTH, ROOT, point_feature, require
from tests.server import live_server, server_pid

ITEMS = "/collections/projects/items"
# The seed: the shipped projects and 800 copies of one (about 1 MB), so that a compaction needs about
# 1 MB more than the store holds while a journal line needs about 1.3 KB.
COPIES = 800


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs mounted for this test (unmounted afterwards)."""
    folder = tmp_path / "volume"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        require(f"a tmpfs cannot be mounted for the full-disk test: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill_once(filler: Path) -> int:
    """Write to `filler` until the file system is full; how many bytes that took."""
    written = 0
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for chunk in (1 << 16, 4096, 1):
            block = b"\0" * chunk
            while True:
                try:
                    written += os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return written


def _fill(folder: Path) -> Path:
    """Fill the file system of `folder` to the last byte with a filler file, and keep it full until
    nothing more is freed (the server lets go of a replaced store file a moment after a compaction)."""
    filler = folder / "filler"
    _fill_once(filler)
    while _until(lambda: _fill_once(filler) > 0, seconds=0.5):
        pass
    return filler


def _post(base: str) -> httpx.Response:
    # The same project each time: past the duplicate guard (geo/duplicates.py).
    return httpx.post(f"{base}{ITEMS}", json=point_feature(), headers=AUTH, timeout=30,
                      params={"duplicate": "allow"})


def _ids(base: str) -> set[str]:
    page = httpx.get(f"{base}{ITEMS}", params={"limit": 10_000}, timeout=30).json()
    return {f["id"] for f in page["features"]}


def _until(condition: object, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.05)
    return False


def test_a_full_disk_refuses_writes_keeps_reads_and_loses_nothing(volume: Path, settings: Settings,
                                                                   tmp_path: Path) -> None:
    store = volume / "projects.geojson"
    shipped = orjson.loads((ROOT / "projects.geojson").read_bytes())["features"]
    copies = [{**shipped[1], "id": f"copy-{n:04d}"} for n in range(COPIES)]
    store.write_bytes(encode_store([*shipped, *copies]))
    on_volume = settings.model_copy(update={"projects": store, "journal_max_age_s": 0.5})
    journal = volume / ".projects.geojson.journal"
    log = tmp_path / "server.log"
    acknowledged: list[str] = []
    with live_server(on_volume, log=log) as base:
        for _ in range(3):
            created = _post(base)
            assert created.status_code == 201
            acknowledged.append(created.json()["id"])
        # Compaction works while there is room (the file and its new version fit).
        assert _until(lambda: b"\n" not in journal.read_bytes().split(b"\n", 1)[1]), "no compaction"
        filler = _fill(volume)
        before = journal.read_bytes()
        refused = None
        for _ in range(20):  # the journal's last page may hold a few lines more
            answer = _post(base)
            if answer.status_code == 201:
                acknowledged.append(answer.json()["id"])
                before = journal.read_bytes()
                continue
            refused = answer
            break
        assert refused is not None, "the disk never filled"
        assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"].endswith("store-full")
        assert journal.read_bytes() == before and before.endswith(b"\n")  # no partial line left
        # Reads go on.
        assert _ids(base) >= set(acknowledged)
        assert httpx.get(f"{base}{ITEMS}/{acknowledged[0]}", timeout=30).status_code == 200
        # Room for lines, not for a new file: writes go on, compaction fails and leaves everything as it was.
        os.truncate(filler, filler.stat().st_size - (256 << 10))
        file_before = store.read_bytes()
        for _ in range(3):
            created = _post(base)
            assert created.status_code == 201, created.text
            acknowledged.append(created.json()["id"])
        assert _until(lambda: "compaction of the project store failed" in log.read_text()), log.read_text()
        assert "No space left on device" in log.read_text()
        assert store.read_bytes() == file_before
        assert sorted(p.name for p in volume.iterdir()) == [
            ".projects.geojson.journal", "filler", "projects.geojson", "projects.geojson.ledger.sqlite"]
        _fill(volume)
        os.kill(server_pid(base), signal.SIGKILL)  # killed while the disk is full
    # A restart on the full disk reads every acknowledged write.
    with live_server(on_volume, log=log) as base:
        assert set(acknowledged) <= _ids(base)
        assert len(_ids(base)) == 2 + COPIES + len(acknowledged)
        filler.unlink()
        assert _post(base).status_code == 201
    # Stopped with room again: the file at rest holds everything, and the journal is gone.
    at_rest = [f["id"] for f in orjson.loads(store.read_bytes())["features"]]
    assert len(at_rest) == 2 + COPIES + len(acknowledged) + 1 and set(acknowledged) <= set(at_rest)
    assert sorted(p.name for p in volume.iterdir()) == ["projects.geojson", "projects.geojson.ledger.sqlite"]
    assert "Traceback" not in log.read_text()
