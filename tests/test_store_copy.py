"""Bulk loads and `geo store copy`: an empty store filled in one write, and stores copied losing nothing.

"Nothing lost" is checked against what the source serves: every feature's bytes (the body GET sends) and
its ETag, in the same order, for the shipped store (2 projects) and 10,000 synthetic ones. "Nothing
changed" means no byte of any file in the folder did (and, in a database, no row).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.synth import synthetic_projects, write_store
from geo.settings import Settings
from geo.store import GeoJSONFileStore, geojson_file
from geo.store.base import etag_of
from geo.store.copy import CopyRefused, CountLine, copy, masked, open_target
from tests.conftest import ROOT, workspace

GEO = Path(sys.executable).with_name("geo")  # the console script the package installs
SYNTHETIC = 10_000
SHIPPED = ["salang-tunnel-2", "salang-highway-reconstruction"]  # projects.geojson, in file order


def _feature(fid: str, lon: float = 69.1) -> dict[str, Any]:
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [lon, 34.5]},
            "properties": {"name": fid, "category": "water", "status": "planned",
                           "status_history": [{"status": "planned", "at": "2026-01-02T03:04:05Z"}]}}


def _files(folder: Path) -> dict[str, bytes]:
    """Every file in `folder` and its bytes (the store file, its journal, anything left behind)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _served(store: Any) -> list[tuple[str, bytes, str]]:
    """(id, the bytes GET serves, the ETag) of every feature of a store, in order."""
    table = store.refresh()
    return [(fid, raw, etag_of(orjson.loads(raw))) for fid, raw in zip(table.ids, table.encoded, strict=True)]


def _served_file(path: Path) -> list[tuple[str, bytes, str]]:
    """What a store newly opened on `path` serves (the file with its journal replayed)."""
    store = GeoJSONFileStore(path)
    try:
        return _served(store)
    finally:
        store.close()


# --- GeoJSONFileStore.load ---------------------------------------------------------------------------


def test_load_fills_an_empty_store_in_order_in_one_file_without_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "new.geojson"
    features = [_feature("c", 61.5), _feature("a", 62.5), _feature("b", 63.5)]  # not in id order
    store = GeoJSONFileStore(path)
    assert store.load(iter(features)) == 3
    assert list(store.snapshot().ids) == ["c", "a", "b"]
    store.close()
    # One store file and its ledger (the loaded projects' creations), nothing else: no journal, lock or
    # temporary file.
    assert list(_files(tmp_path)) == ["new.geojson", "new.geojson.ledger.sqlite"]
    doc = orjson.loads(path.read_bytes())
    assert doc["type"] == "FeatureCollection" and doc["features"] == features
    assert [fid for fid, _, _ in _served_file(path)] == ["c", "a", "b"]


def test_load_is_refused_when_the_store_is_not_empty_and_changes_nothing(settings: Settings) -> None:
    folder = settings.projects.parent
    store = GeoJSONFileStore(settings.projects)
    before = _files(folder)
    with pytest.raises(ValueError, match="not empty: it holds 2 projects"):
        store.load([_feature("x")])
    assert _files(folder) == before
    assert list(store.snapshot().ids) == SHIPPED
    store.close()


def test_load_is_refused_on_a_repeated_id_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "new.geojson"
    store = GeoJSONFileStore(path)
    with pytest.raises(ValueError, match=r"features\[2\] repeats the id 'a'"):
        store.load([_feature("a"), _feature("b"), _feature("a")])
    with pytest.raises(ValueError, match=r"features\[1\] has no string 'id'"):
        store.load([_feature("a"), {**_feature("b"), "id": 7}])
    assert _files(tmp_path) == {}
    assert len(store.snapshot()) == 0
    store.close()


def test_another_store_object_on_the_file_sees_the_load_and_writes_after_it(tmp_path: Path) -> None:
    path = tmp_path / "p.geojson"
    loader, follower = GeoJSONFileStore(path), GeoJSONFileStore(path)
    assert len(follower.snapshot()) == 0
    loader.load([_feature("a"), _feature("b")])
    assert list(follower.snapshot().ids) == ["a", "b"]  # off the event loop: re-read when stale
    follower.add(_feature("c"))
    assert list(loader.snapshot().ids) == ["a", "b", "c"]
    follower.close()
    loader.close()
    assert [fid for fid, _, _ in _served_file(path)] == ["a", "b", "c"]


def test_a_store_emptied_by_its_journal_is_loaded_and_its_journal_removed(tmp_path: Path) -> None:
    # The file holds a feature that the journal deletes: empty, so it may be loaded; the journal's
    # changes were made to the old file and must not outlive it.
    path = tmp_path / "p.geojson"
    write_store(path, [_feature("old")])
    store = GeoJSONFileStore(path, journal_max_age_s=3600)
    store.delete("old")
    assert store.journal_path.is_file()
    store.load([_feature("a")])
    assert not store.journal_path.exists()
    assert list(store.snapshot().ids) == ["a"]
    assert list(_files(tmp_path)) == ["p.geojson", "p.geojson.ledger.sqlite"]
    assert [fid for fid, _, _ in _served_file(path)] == ["a"]
    store.close()


def test_a_crash_between_the_renames_of_a_load_leaves_the_loaded_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The new file is in place, and the journal of the old one (with changes) not yet replaced: the next
    # start must read the loaded features, not refuse the journal or replay it over them.
    path = tmp_path / "p.geojson"
    write_store(path, [_feature("old")])
    store = GeoJSONFileStore(path, journal_max_age_s=3600)
    store.delete("old")

    def crash(tmp: Path, target: Path) -> bool:
        raise OSError(5, "simulated crash")

    monkeypatch.setattr(geojson_file, "durable_rename", crash)
    with pytest.raises(Exception, match="simulated crash"):
        store.load([_feature("a"), _feature("b")])
    monkeypatch.undo()
    assert [fid for fid, _, _ in _served_file(path)] == ["a", "b"]
    assert list(_files(tmp_path)) == ["p.geojson", "p.geojson.ledger.sqlite"]


# --- copy between file stores ---------------------------------------------------------------------


def test_copy_file_to_file_keeps_every_byte_and_etag_in_order(settings: Settings, tmp_path: Path) -> None:
    original = _served_file(settings.projects)
    assert [fid for fid, _, _ in original] == SHIPPED
    dst_path = tmp_path / "copy" / "projects.geojson"
    src = open_target(str(settings.projects), settings, source=True)
    dst = open_target(str(dst_path), settings)
    assert copy(src, dst) == 2
    src.close()
    dst.close()
    assert _served_file(dst_path) == original
    # The properties a client reads (timestamps, status history) are the shipped file's, exactly.
    shipped = orjson.loads((ROOT / "projects.geojson").read_bytes())["features"]
    assert [orjson.loads(raw) for _, raw, _ in _served_file(dst_path)] == shipped


def test_copy_into_a_store_that_is_not_empty_is_refused_and_changes_nothing(settings: Settings,
                                                                            tmp_path: Path) -> None:
    dst_path = tmp_path / "other" / "projects.geojson"
    dst_path.parent.mkdir()
    write_store(dst_path, [_feature("mine")])
    GeoJSONFileStore(dst_path).close()  # a first open records the store's projects in its ledger
    before = _files(dst_path.parent)
    src = open_target(str(settings.projects), settings, source=True)
    dst = open_target(str(dst_path), settings)
    with pytest.raises(CopyRefused, match="no --replace"):
        copy(src, dst)
    src.close()
    dst.close()
    assert _files(dst_path.parent) == before


def test_a_missing_source_is_refused(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(CopyRefused, match="does not exist"):
        open_target(str(tmp_path / "nowhere.geojson"), settings, source=True)
    assert not (tmp_path / "nowhere.geojson").exists()


def test_progress_is_reported_up_to_the_total(tmp_path: Path, synthetic: Path, settings: Settings) -> None:
    seen: list[tuple[int, int]] = []
    src = open_target(str(synthetic), settings, source=True)
    dst = open_target(str(tmp_path / "d.geojson"), settings)
    copy(src, dst, progress=lambda done, total: seen.append((done, total)))
    src.close()
    dst.close()
    assert seen[-1] == (SYNTHETIC, SYNTHETIC)
    assert [done for done, _ in seen] == list(range(500, SYNTHETIC + 1, 500))


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_count_is_rewritten_in_place_on_a_terminal_and_left_out_of_logs() -> None:
    terminal, log = _Terminal(), io.StringIO()
    for stream in (terminal, log):
        show = CountLine(stream)
        show(500, 1200)
        show(1200, 1200)
    assert terminal.getvalue() == "\rcopying: 500/1,200 projects\rcopying: 1,200/1,200 projects\n"
    assert log.getvalue() == ""


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://geo:s3cret@db.example:5432/geo", "postgresql://geo:***@db.example:5432/geo"),
    ("postgres://geo:s3cret@db/geo?sslmode=require", "postgres://geo:***@db/geo?sslmode=require"),
    ("postgresql://db/geo?user=geo&password=s3cret", "postgresql://db/geo?user=geo&password=***"),
    ("postgresql://geo@db/geo", "postgresql://geo@db/geo"),
    ("stores/projects.geojson", "stores/projects.geojson"),
])
def test_database_passwords_are_masked(url: str, shown: str) -> None:
    assert masked(url) == shown


# --- 10,000 synthetic projects ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Iterator[Path]:
    """A store file of 10,000 synthetic projects (bench/synth.py: valid, placed, reproducible)."""
    folder = tmp_path_factory.mktemp("synthetic")
    settings = workspace(folder / "work", provinces_cache)
    path = folder / "synthetic.geojson"
    write_store(path, synthetic_projects(SYNTHETIC, settings))
    yield path


def test_ten_thousand_projects_file_to_file_byte_for_byte(synthetic: Path, tmp_path: Path,
                                                          settings: Settings) -> None:
    original = _served_file(synthetic)
    assert len(original) == SYNTHETIC
    src = open_target(str(synthetic), settings, source=True)
    dst = open_target(str(tmp_path / "copy.geojson"), settings)
    assert copy(src, dst) == SYNTHETIC
    src.close()
    dst.close()
    assert _served_file(tmp_path / "copy.geojson") == original


# --- the command --------------------------------------------------------------------------------------


def _geo(*args: str, settings: Settings) -> subprocess.CompletedProcess[str]:
    """`geo ...` in a subprocess, with only the test's settings in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEO_")}
    env.update({"GEO_LAYERS_DIR": str(settings.layers_dir), "GEO_DATA_MIRROR": str(settings.data_mirror),
                "GEO_ALLOW_DOWNLOAD": "false"})
    return subprocess.run([str(GEO), *args], capture_output=True, text=True, env=env, timeout=120,
                          cwd=settings.projects.parent)


def test_the_command_copies_and_says_what_it_did(settings: Settings, tmp_path: Path) -> None:
    dst = tmp_path / "out" / "copy.geojson"
    done = _geo("store", "copy", str(settings.projects), str(dst), settings=settings)
    assert done.returncode == 0, done.stderr
    assert f"2 projects copied from {settings.projects} to {dst}" in done.stdout
    assert "Traceback" not in done.stderr
    assert _served_file(dst) == _served_file(settings.projects)


def test_the_command_refuses_a_missing_source_and_a_full_destination(settings: Settings,
                                                                    tmp_path: Path) -> None:
    missing = _geo("store", "copy", str(tmp_path / "nowhere.geojson"), str(tmp_path / "d.geojson"),
                   settings=settings)
    assert missing.returncode == 2
    assert "nowhere.geojson does not exist" in missing.stderr
    assert not (tmp_path / "d.geojson").exists()
    GeoJSONFileStore(settings.projects).close()  # a first open records the store's projects in its ledger
    before = _files(settings.projects.parent)
    full = subprocess.run([sys.executable, "-m", "geo.cli", "store", "copy", str(settings.projects),
                           str(settings.projects)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "GEO_ALLOW_DOWNLOAD": "false"})
    assert full.returncode == 2
    assert "not empty" in full.stderr and "no --replace" in full.stderr
    assert "Traceback" not in full.stderr
    assert _files(settings.projects.parent) == before


# --- through PostGIS (tests/pg.py: a fresh schema per test; skipped without a database, failed in CI) ---


def _rows(url: str) -> tuple[int, int]:
    """(projects, change-log rows) in the database schema of `url`."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        projects = conn.execute("SELECT count(*) FROM projects").fetchone()
        changes = conn.execute("SELECT count(*) FROM project_changes").fetchone()
    assert projects is not None and changes is not None
    return int(projects[0]), int(changes[0])


def _through_database(src_path: Path, url: str, dst_path: Path, settings: Settings) -> None:
    """Copy the store file `src_path` into the database at `url`, then from there into `dst_path`."""
    for src_text, dst_text in ((str(src_path), url), (url, str(dst_path))):
        src = open_target(src_text, settings, source=True)
        try:
            dst = open_target(dst_text, settings)
            try:
                copy(src, dst)
            finally:
                dst.close()
        finally:
            src.close()


def test_the_shipped_store_to_postgis_and_back_keeps_every_byte_etag_and_place(
        settings: Settings, pg_url: str, tmp_path: Path) -> None:
    original = _served_file(settings.projects)
    _through_database(settings.projects, pg_url, tmp_path / "back.geojson", settings)
    assert _served_file(tmp_path / "back.geojson") == original
    # One change-log row per feature: replaying the log gives the table.
    assert _rows(pg_url) == (2, 2)


def test_ten_thousand_projects_to_postgis_and_back_byte_for_byte(
        synthetic: Path, settings: Settings, pg_url: str, tmp_path: Path) -> None:
    original = _served_file(synthetic)
    _through_database(synthetic, pg_url, tmp_path / "back.geojson", settings)
    assert _served_file(tmp_path / "back.geojson") == original
    assert _rows(pg_url) == (SYNTHETIC, SYNTHETIC)


def test_copy_into_a_database_that_is_not_empty_is_refused_and_changes_nothing(
        settings: Settings, pg_url: str, tmp_path: Path) -> None:
    _through_database(settings.projects, pg_url, tmp_path / "back.geojson", settings)
    other = tmp_path / "other.geojson"
    write_store(other, [_feature("mine")])
    src, dst = open_target(str(other), settings, source=True), open_target(pg_url, settings)
    with pytest.raises(CopyRefused, match="no --replace"):
        copy(src, dst)
    assert _served(dst) == _served_file(settings.projects)
    src.close()
    dst.close()
    assert _rows(pg_url) == (2, 2)


def test_the_command_copies_into_postgis_with_the_password_masked(settings: Settings, pg_url: str,
                                                                 tmp_path: Path) -> None:
    assert ":geo@" in pg_url  # the test database's password, which must not be printed
    done = _geo("store", "copy", str(settings.projects), pg_url, settings=settings)
    assert done.returncode == 0, done.stderr
    assert f"2 projects copied from {settings.projects} to {masked(pg_url)}" in done.stdout
    assert ":geo@" not in done.stdout + done.stderr
    back = _geo("store", "copy", pg_url, str(tmp_path / "back.geojson"), settings=settings)
    assert back.returncode == 0, back.stderr
    assert _served_file(tmp_path / "back.geojson") == _served_file(settings.projects)
    again = _geo("store", "copy", str(settings.projects), pg_url, settings=settings)
    assert again.returncode == 2
    assert "not empty" in again.stderr and ":geo@" not in again.stderr


def test_the_command_says_when_the_database_cannot_be_reached(settings: Settings, tmp_path: Path) -> None:
    # Nothing listens on port 1 of loopback: refused at once, no database needed.
    url = "postgresql://geo:s3cret@127.0.0.1:1/geo"
    done = _geo("store", "copy", str(settings.projects), url, settings=settings)
    assert done.returncode == 1
    assert "127.0.0.1" in done.stderr and "Traceback" not in done.stderr
    assert "s3cret" not in done.stdout + done.stderr
