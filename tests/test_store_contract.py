"""The contract every project store keeps (geo/store/base.py), run on each store: one test body, two stores.

`backend` is the GeoJSON file (with its journal) or a PostGIS schema of its own (tests/pg.py: skipped
without a database, failed in CI). "Durably" means what a store newly opened on the same file or
schema reads; "nothing changed" means the backend's whole state (the folder's bytes; the tables' rows and
the change log) is as it was. What only one store has is tested beside it: tests/test_store.py (the
file), tests/test_postgis.py (the database).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from geo.app import create_app
from geo.errors import NotFound, PreconditionFailed, StoreBusy
from geo.fsutil import exclusive_lock
from geo.http.conditional import feature_etag
from geo.settings import Settings
from geo.store import geojson_file
from geo.store.base import ProjectStore
from geo.store.geojson_file import GeoJSONFileStore
from tests.conftest import AUTH, KEY, ROOT, point_feature, workspace

KINDS = ["file", "postgis"]
# The advisory lock a stalled write waits for (see `Backend.stalled`).
STALL_KEY = 7214
ITEMS = "/collections/projects/items"
WRITES = ["add", "replace", "delete"]


def open_store(kind: str, where: str, lock_timeout_s: float = 0.2) -> ProjectStore:
    """A new store object on the file or database `where` (as another process or server opens it)."""
    if kind == "file":
        return GeoJSONFileStore(Path(where), lock_timeout_s=lock_timeout_s)
    from geo.store.postgis import PostGISStore

    return PostGISStore(where, lock_timeout_s=lock_timeout_s, poll_s=0.1)


@dataclass(frozen=True)
class Stall:
    """A write held halfway (see `Backend.stalled`)."""

    midway: threading.Event
    go: threading.Event


@dataclass
class Backend:
    """One store's location, and what a test asks of it whatever the kind."""

    kind: str
    where: str  # the store file's path, or the schema's URL
    opened: list[ProjectStore] = field(default_factory=list)

    def open(self, lock_timeout_s: float = 0.2) -> ProjectStore:
        """A new store object on this store, closed after the test."""
        store = open_store(self.kind, self.where, lock_timeout_s)
        self.opened.append(store)
        return store

    def durable_ids(self) -> list[str]:
        """The ids a store newly opened here reads."""
        store = open_store(self.kind, self.where)
        try:
            return list(store.snapshot().ids)
        finally:
            store.close()

    def state(self) -> object:
        """Everything the store holds, to show that a refused write changed nothing."""
        if self.kind == "file":
            folder = Path(self.where).parent
            return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        with psycopg.connect(self.where, autocommit=True) as conn:
            rows = conn.execute("SELECT id, position, doc::text, row_version FROM projects ORDER BY position"
                                ).fetchall()
            log = conn.execute("SELECT seq, at, op, fid, doc::text, by, kind, idem, request_hash "
                               "FROM project_changes ORDER BY seq").fetchall()
        return rows, log

    @contextmanager
    def locked(self, store: ProjectStore) -> Iterator[None]:
        """The store's write lock held by someone else (another process; another server)."""
        if self.kind == "file":
            assert isinstance(store, GeoJSONFileStore)
            with exclusive_lock(store.lock_path, timeout=1):
                yield
            return
        with psycopg.connect(self.where) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (store.lock_key,))  # type: ignore[attr-defined]
            yield
            conn.rollback()

    @contextmanager
    def stalled(self, at: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stall]:
        """A write is held as it writes the feature `at`: `midway` is set once it is held there, with
        what comes before that feature on its way to the disk or the database; it goes on once `go` is
        set. A store that wrote a batch a feature (or a line, or a transaction) at a time would have the
        features before `at` stored by then.

        The file: the journal is appended up to that feature (the real append does the rest). The
        database: a trigger on the change log, at that feature's row, waits for a lock this holds.
        """
        stall = Stall(threading.Event(), threading.Event())
        if self.kind == "file":
            real = geojson_file.append_durably
            mark = b'"id":' + orjson.dumps(at)

            def held(fd: int, data: bytes, size: int) -> None:
                cut = data.find(mark)
                if cut < 0:
                    real(fd, data, size)
                    return
                os.write(fd, data[:cut])  # O_APPEND: at the end, where the real one writes
                stall.midway.set()
                stall.go.wait(30)
                real(fd, data[cut:], size)

            monkeypatch.setattr(geojson_file, "append_durably", held)
            yield stall
            return
        with psycopg.connect(self.where, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (STALL_KEY,))
            conn.execute(sql.SQL(
                "CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "PERFORM pg_advisory_xact_lock_shared({key}); RETURN NEW; END $$; "
                "CREATE TRIGGER stall AFTER INSERT ON project_changes FOR EACH ROW WHEN (NEW.fid = {at}) "
                "EXECUTE FUNCTION stall()").format(key=sql.Literal(STALL_KEY), at=sql.Literal(at)))

            def waiting() -> None:
                # A session of this test's schema (its application_name) waiting for the lock: the writer.
                with psycopg.connect(self.where, autocommit=True) as watch:
                    while not stall.go.is_set():
                        row = watch.execute(
                            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE "
                            "l.locktype = 'advisory' AND NOT l.granted AND l.objid = %s AND "
                            "a.application_name = current_setting('application_name')", (STALL_KEY,)
                        ).fetchone()
                        if row is not None and row[0]:
                            stall.midway.set()
                            stall.go.wait(30)
                        time.sleep(0.01)
                conn.execute("SELECT pg_advisory_unlock(%s)", (STALL_KEY,))  # the write goes on

            watcher = threading.Thread(target=waiting)
            watcher.start()
            try:
                yield stall
            finally:
                stall.go.set()
                watcher.join(10)
                conn.execute("DROP TRIGGER stall ON project_changes")

    def close(self) -> None:
        """Close every store object the test opened."""
        for store in self.opened:
            store.close()


@contextmanager
def empty_backend(kind: str, folder: Path) -> Iterator[Backend]:
    """An empty store of `kind` ("file": in `folder`; "postgis": on a fresh schema), closed afterwards."""
    if kind == "file":
        b = Backend("file", str(folder / "p.geojson"))
        yield b
        b.close()
        return
    from tests.pg import pg_schema

    with pg_schema() as url:
        b = Backend("postgis", url)
        yield b
        b.close()


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """An empty store of each kind."""
    with empty_backend(request.param, tmp_path) as b:
        yield b


def _feature(fid: str, name: str | None = None) -> dict[str, object]:
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [69.1, 34.5]},
            "properties": {"name": name or fid, "category": "water", "status": "planned"}}


def _tag(feature: object) -> str:
    """The ETag GET sends for a stored feature (geo.routers.features: the digest of its encoding)."""
    return feature_etag(orjson.dumps(feature))


def _ids(store: ProjectStore) -> list[str]:
    return list(store.snapshot().ids)


@pytest.fixture
def ab(backend: Backend) -> ProjectStore:
    """A store holding features a and b, in that order."""
    store = backend.open()
    store.add(_feature("a"))
    store.add(_feature("b"))
    return store


def _write(store: ProjectStore, method: str, if_match: str | None = None, fid: str = "a") -> None:
    if method == "add":
        store.add(_feature("c"))
    elif method == "replace":
        store.replace(fid, _feature(fid, "new"), if_match=if_match)
    else:
        store.delete(fid, if_match=if_match)


# --- add, replace, delete ---

def test_add_appends_and_returns_the_feature(backend: Backend, ab: ProjectStore) -> None:
    new = _feature("c")
    assert ab.add(new) == new
    assert _ids(ab) == ["a", "b", "c"] and backend.durable_ids() == ["a", "b", "c"]


def test_add_refuses_an_id_that_exists(backend: Backend, ab: ProjectStore) -> None:
    before = backend.state()
    with pytest.raises(ValueError, match="'a' exists"):
        ab.add(_feature("a", "again"))
    assert backend.state() == before and _ids(ab) == ["a", "b"]


def test_replace_keeps_the_feature_in_its_place_and_returns_it(backend: Backend, ab: ProjectStore) -> None:
    new = _feature("a", "A2")
    assert ab.replace("a", new) == new
    assert _ids(ab) == ["a", "b"] and backend.durable_ids() == ["a", "b"]
    assert backend.open().snapshot().features[0]["properties"]["name"] == "A2"


def test_delete_removes_only_that_feature(backend: Backend, ab: ProjectStore) -> None:
    ab.add(_feature("c"))
    assert ab.delete("b") is None
    assert _ids(ab) == ["a", "c"] and backend.durable_ids() == ["a", "c"]
    with pytest.raises(ValueError, match="'b'"):
        ab.add(_feature("b"))  # a deleted id is never used again: the record of changes keeps it
    assert backend.durable_ids() == ["a", "c"]


def test_replace_refuses_a_feature_with_another_id(backend: Backend, ab: ProjectStore) -> None:
    before = backend.state()
    with pytest.raises(ValueError, match="has the id 'b'"):
        ab.replace("a", _feature("b"))
    assert backend.state() == before


# --- If-Match ---

@pytest.mark.parametrize("method", ["replace", "delete"])
@pytest.mark.parametrize("header", ["current", "*", "list", "gzip"])
def test_replace_and_delete_go_ahead_when_if_match_holds(backend: Backend, ab: ProjectStore, method: str,
                                                         header: str) -> None:
    """RFC 9110 13.1.1: If-Match holds for the current strong tag, `*` on an existing feature, or a list
    naming it; the tag of the gzipped representation (geo.http.compression's -gz) names the same data."""
    tag = _tag(_feature("a"))
    if_match = {"current": tag, "*": "*", "list": f'"stale", {tag}', "gzip": tag[:-1] + '-gz"'}[header]
    _write(ab, method, if_match)
    assert backend.durable_ids() == (["a", "b"] if method == "replace" else ["b"])


@pytest.mark.parametrize("method", ["replace", "delete"])
def test_replace_or_delete_of_a_missing_feature_is_not_found(backend: Backend, ab: ProjectStore,
                                                             method: str) -> None:
    before = backend.state()
    with pytest.raises(NotFound, match="no project 'zz'") as raised:
        _write(ab, method, fid="zz")
    assert raised.value.status == 404
    assert backend.state() == before


@pytest.mark.parametrize("method", ["replace", "delete"])
@pytest.mark.parametrize("if_match", ['"abc"', "*"])
def test_with_if_match_a_missing_feature_is_a_precondition_failure(backend: Backend, ab: ProjectStore,
                                                                    method: str, if_match: str) -> None:
    """RFC 9110 13.1.1: If-Match, even `*`, is false when there is no current representation; Part 4
    (/req/create-replace-delete/put-rid-exception B) asks for 412."""
    before = backend.state()
    with pytest.raises(PreconditionFailed) as raised:
        _write(ab, method, if_match, fid="zz")
    assert raised.value.status == 412 and raised.value.errors[0]["field"] == "If-Match"
    assert backend.state() == before


@pytest.mark.parametrize("method", ["replace", "delete"])
@pytest.mark.parametrize("header", ["stale", "weak"])
def test_an_if_match_that_does_not_hold_is_a_precondition_failure_naming_the_current_etag(
        backend: Backend, ab: ProjectStore, method: str, header: str) -> None:
    old = _tag(_feature("a"))
    ab.replace("a", _feature("a", "moved on"))
    current = _tag(_feature("a", "moved on"))
    before = backend.state()
    # A weak tag never matches: If-Match uses the strong comparison (RFC 9110 13.1.1).
    if_match = {"stale": old, "weak": f"W/{current}"}[header]
    with pytest.raises(PreconditionFailed) as raised:
        _write(ab, method, if_match)
    assert raised.value.status == 412 and raised.value.headers["ETag"] == current
    assert raised.value.errors[0]["field"] == "If-Match"
    assert backend.state() == before


@pytest.mark.parametrize("method", ["replace", "delete"])
def test_if_match_is_compared_with_the_store_under_the_lock_not_with_an_old_snapshot(
        backend: Backend, method: str) -> None:
    """Two store objects on one store, as two processes or servers have: the first still holds the
    version it read when the second changes the feature. The first's If-Match (right for its snapshot)
    must fail."""
    first = backend.open()
    first.add(_feature("a"))
    etag = _tag(first.snapshot().get("a"))
    second = backend.open()
    second.replace("a", _feature("a", "by the second"))
    with pytest.raises(PreconditionFailed):
        _write(first, method, etag)
    assert backend.open().snapshot().features[0]["properties"]["name"] == "by the second"
    # The version it collided with is installed: a caller that reads again (the PUT/PATCH route's retry,
    # geo.routers.transactions._rewrite) builds on it, not on the same stale snapshot.
    assert first.snapshot().get("a")["properties"]["name"] == "by the second"


@pytest.mark.parametrize("method", WRITES)
def test_each_write_is_store_busy_while_another_holds_the_lock(backend: Backend, ab: ProjectStore,
                                                               method: str) -> None:
    before = backend.state()
    with backend.locked(ab), pytest.raises(StoreBusy) as raised:
        _write(ab, method)  # a lock timeout of 0.2 s
    assert raised.value.status == 503 and raised.value.headers["Retry-After"] == "2"
    assert backend.state() == before and _ids(ab) == ["a", "b"]


# --- versions, and other processes ---

def test_a_second_store_object_sees_the_first_ones_writes(backend: Backend) -> None:
    first, second = backend.open(), backend.open()
    first.add(_feature("a"))
    assert list(second.refresh().ids) == ["a"]
    second.add(_feature("b"))
    assert list(first.refresh().ids) == ["a", "b"]


def test_versions_agree_between_store_objects_and_change_with_every_write(backend: Backend) -> None:
    """Page ETags and caches key on the version: two store objects at the same point agree on it, and
    every write gives a new one (even one that restores earlier content)."""
    writer = backend.open()
    writer.add(_feature("a1"))
    reader = backend.open()
    seen = [writer.snapshot().version]
    assert reader.snapshot().version == seen[0]
    for name in ("b2", "c3", "b2"):  # equal sizes; the last one puts back earlier content
        writer.replace("a1", _feature("a1", name))
        assert reader.refresh().features[0]["properties"]["name"] == name
        assert reader.snapshot().version == writer.snapshot().version
        seen.append(writer.snapshot().version)
    assert len(set(seen)) == 4
    assert backend.open().snapshot().version == seen[-1]


def _writer(kind: str, where: str, prefix: str, count: int) -> None:
    store = open_store(kind, where, lock_timeout_s=30)
    try:
        for n in range(count):
            store.add(_feature(f"{prefix}-{n}"))
    finally:
        store.close()


def test_concurrent_writers_in_separate_processes_lose_nothing(backend: Backend) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(backend.kind, backend.where, f"w{i}", 15)) for i in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    ids = backend.durable_ids()
    assert len(ids) == 45 and len(set(ids)) == 45
    # Each writer's own adds keep their order.
    for i in range(3):
        assert [x for x in ids if x.startswith(f"w{i}-")] == [f"w{i}-{n}" for n in range(15)]


# --- load ---

def test_load_fills_an_empty_store_keeping_ids_and_order(backend: Backend) -> None:
    store = backend.open()
    features = [_feature(f"p{n:03d}") for n in (5, 1, 3, 2, 4)]
    assert store.load(iter(features)) == 5
    expected = ["p005", "p001", "p003", "p002", "p004"]
    assert _ids(store) == expected and backend.durable_ids() == expected
    assert backend.open().snapshot().get("p003") == _feature("p003")
    store.add(_feature("p006"))  # a load is a store like any other afterwards
    assert backend.durable_ids() == [*expected, "p006"]


def test_load_is_refused_into_a_store_that_is_not_empty(backend: Backend, ab: ProjectStore) -> None:
    before = backend.state()
    with pytest.raises(ValueError, match="not empty"):
        ab.load([_feature("c")])
    assert backend.state() == before


def test_load_with_a_repeated_id_stores_nothing(backend: Backend) -> None:
    store = backend.open()
    with pytest.raises(ValueError, match="'x'"):
        store.load([_feature("x"), _feature("y"), _feature("x")])
    assert backend.durable_ids() == []
    assert store.load([_feature("x")]) == 1  # still empty: a load may follow


# --- add_many ---

def test_add_many_appends_all_in_order_as_one_version(backend: Backend, ab: ProjectStore) -> None:
    reader = backend.open()
    before = reader.snapshot().version
    new = [_feature(f"n{k}") for k in (3, 1, 2)]
    assert ab.add_many(new) == new
    expected = ["a", "b", "n3", "n1", "n2"]
    assert _ids(ab) == expected and backend.durable_ids() == expected
    assert backend.open().snapshot().get("n1") == _feature("n1")
    # Another store object goes from the version before to the one after in one step, as the writer.
    assert list(reader.refresh().ids) == expected
    assert reader.snapshot().version == ab.snapshot().version != before
    ab.add(_feature("c"))  # and writes go on after it
    assert backend.durable_ids() == [*expected, "c"]


@pytest.mark.parametrize("ids, named", [(["c", "a", "d"], "'a' exists"), (["c", "d", "c"], "'c'")])
def test_add_many_with_an_existing_or_repeated_id_stores_nothing(backend: Backend, ab: ProjectStore,
                                                                 ids: list[str], named: str) -> None:
    before, version = backend.state(), ab.snapshot().version
    with pytest.raises(ValueError, match=named):
        ab.add_many([_feature(fid) for fid in ids])
    assert backend.state() == before
    assert _ids(ab) == ["a", "b"] and ab.snapshot().version == version


def test_add_many_of_nothing_writes_nothing(backend: Backend, ab: ProjectStore) -> None:
    before, version = backend.state(), ab.snapshot().version
    assert ab.add_many([]) == []
    assert backend.state() == before and ab.snapshot().version == version


def test_add_many_is_store_busy_while_another_holds_the_lock(backend: Backend, ab: ProjectStore) -> None:
    before = backend.state()
    with backend.locked(ab), pytest.raises(StoreBusy):
        ab.add_many([_feature("c"), _feature("d")])
    assert backend.state() == before and _ids(ab) == ["a", "b"]


def test_another_store_object_sees_all_of_a_batch_or_none(backend: Backend, ab: ProjectStore,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Held in the middle of its write (the features before n150 on their way: part of the journal
    line appended; rows inserted, the transaction open), a batch of 300 is seen by no other store
    object, neither one following the store nor one opened then. Once written, all of it at once, as
    one version."""
    writer = backend.open(lock_timeout_s=30)
    reader = backend.open()
    before = reader.snapshot().version
    batch = [_feature(f"n{k:03d}") for k in range(300)]
    done: list[list[dict[str, Any]]] = []
    with backend.stalled("n150", monkeypatch) as stall:
        thread = threading.Thread(target=lambda: done.append(writer.add_many(batch)))
        thread.start()
        assert stall.midway.wait(30)
        if backend.kind == "file":  # the overlap is real: the batch's first half is on disk
            written = Path(writer.journal_path).read_bytes()  # type: ignore[attr-defined]
            assert b'"id":"n149"' in written and b'"id":"n150"' not in written
        seen = [(len(reader.refresh()), reader.snapshot().version) for _ in range(20)]
        opened = open_store(backend.kind, backend.where)  # a start-up read now (the file: without the lock)
        try:
            seen.append((len(opened.snapshot()), opened.snapshot().version))
        finally:
            opened.close()
        assert thread.is_alive()  # still held: every look above was made during the write
        stall.go.set()
        thread.join(30)
    assert done == [batch]
    assert seen == [(2, before)] * 21
    after = reader.refresh()
    assert list(after.ids) == ["a", "b", *(f["id"] for f in batch)]
    assert after.version == writer.snapshot().version != before
    assert backend.durable_ids() == list(after.ids)


# --- through the HTTP API, on each store ---

@pytest.fixture
def api_settings(request: pytest.FixtureRequest, tmp_path: Path, provinces_cache: Path) -> Iterator[Settings]:
    """Settings of a service on each store, holding the shipped projects."""
    kind = request.param
    if kind == "file":
        yield workspace(tmp_path, provinces_cache, api_keys=KEY)
        return
    from tests.pg import pg_schema

    with pg_schema() as url:
        store = open_store("postgis", url)
        try:
            store.load(orjson.loads((ROOT / "projects.geojson").read_bytes())["features"])
        finally:
            store.close()
        yield workspace(tmp_path, provinces_cache, api_keys=KEY, database_url=url)


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    return problem


@pytest.mark.parametrize("api_settings", KINDS, indirect=True)
def test_the_write_api_on_each_store(api_settings: Settings) -> None:
    """POST, PUT, PATCH and DELETE, with their refusals as problems, behave alike on both stores."""
    with TestClient(create_app(api_settings)) as client:
        plain = {"Accept-Encoding": "identity"}
        ids = [f["id"] for f in client.get(ITEMS).json()["features"]]
        assert ids == ["salang-tunnel-2", "salang-highway-reconstruction"]
        created = client.post(ITEMS, json=point_feature(), headers=AUTH)
        assert created.status_code == 201
        url = f"{ITEMS}/{created.json()['id']}"
        got = client.get(url, headers=plain)
        assert got.json()["properties"]["province"] == "AF-KAB"
        etag = got.headers["etag"]
        patched = client.patch(url, json={"properties": {"status": "planned"}},
                               headers={**AUTH, "If-Match": etag})
        assert patched.status_code == 200
        history = patched.json()["properties"]["status_history"]
        assert [h["status"] for h in history] == ["proposed", "planned"]
        stale = _problem(client.put(url, json=point_feature(), headers={**AUTH, "If-Match": etag}), 412)
        assert stale["errors"][0]["field"] == "If-Match"
        _problem(client.post(ITEMS, json={"type": "Feature"}, headers=AUTH), 422)
        _problem(client.delete(f"{ITEMS}/nope", headers=AUTH), 404)
        current = client.get(url, headers=plain).headers["etag"]
        assert client.put(url, json=point_feature(name="Renamed", status="planned"),
                          headers={**AUTH, "If-Match": current}).status_code == 200
        assert client.get(url).json()["properties"]["name"] == "Renamed"
        assert client.delete(url, headers=AUTH).status_code == 204
        _problem(client.get(url), 410)  # soft delete: gone, its history kept
        assert [f["id"] for f in client.get(ITEMS).json()["features"]] == ids


@pytest.mark.parametrize("api_settings", KINDS, indirect=True)
def test_the_etag_the_store_compares_is_the_one_get_sends(api_settings: Settings) -> None:
    with TestClient(create_app(api_settings)) as client:
        store = client.app.state.catalogue.store  # type: ignore[attr-defined]
        url = f"{ITEMS}/salang-tunnel-2"
        plain = {"Accept-Encoding": "identity"}  # the tag of the representation itself, not of its gzip
        sent = client.get(url, headers=plain).headers["etag"]
        current = store.snapshot().get("salang-tunnel-2")
        renamed = {**current, "properties": {**current["properties"], "name": "Renamed"}}
        store.replace("salang-tunnel-2", renamed, if_match=sent)
        with pytest.raises(PreconditionFailed) as raised:
            store.delete("salang-tunnel-2", if_match=sent)
        assert raised.value.headers["ETag"] == client.get(url, headers=plain).headers["etag"] != sent
