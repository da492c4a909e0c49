"""What only the PostGIS store's record of changes has: migration 0002 over a database an older version
wrote, the Idempotency-Key's window in SQL time, two servers adding with one key while both wait on the
write lock, a restore followed by another server, and the record's reads during an outage.

The behaviour both stores share is in tests/test_store_changes.py. Each test has a schema of its own
(tests/pg.py `pg_url`); without a database they skip (fail in CI).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator

import orjson
import psycopg
import pytest

from geo.errors import DatabaseUnavailable
from geo.store.base import etag_of
from geo.store.changes import Replayed, WriteMeta
from geo.store.copy import copy
from geo.store.migrate import migrations
from geo.store.postgis import PostGISStore
from tests.pg import Outage, behind_the_lock, pg_schema, wait_for


def _feature(fid: str, name: str | None = None, status: str = "planned") -> dict[str, object]:
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [69.1, 34.5]},
            "properties": {"name": name or fid, "category": "water", "status": status}}


def _keyed(key: str, by: str = "alice") -> WriteMeta:
    return WriteMeta(by=by, idempotency_key=key, request_hash=f"hash-of-{key}")


# --- migration 0002 over what an older version wrote ---

def _old_database(pg_url: str) -> None:
    """The schema as version 0001 left it, with the rows its writes made: a and b added, a's status
    changed then its name, b deleted; and `h`, a project inserted by hand with no change row."""
    docs = {"a1": _feature("a"), "b": _feature("b"), "a2": _feature("a", status="approved"),
            "a3": _feature("a", "renamed", status="approved"), "h": _feature("h")}
    text = {k: orjson.dumps(v).decode() for k, v in docs.items()}
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(migrations()[0].sql.encode())
        conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                     "applied_at timestamptz NOT NULL DEFAULT now())")
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (1, 'projects')")
        point = "ST_SetSRID(ST_MakePoint(69.1, 34.5), 4326)"
        conn.execute(f"INSERT INTO projects (id, position, doc, geom) VALUES ('a', 1, %s::json, {point}), "
                     f"('h', 3, %s::json, {point})".encode(), (text["a3"], text["h"]))
        conn.cursor().executemany(
            "INSERT INTO project_changes (op, fid, doc) VALUES (%s, %s, %s::json)",
            [("add", "a", text["a1"]), ("add", "b", text["b"]), ("replace", "a", text["a2"]),
             ("replace", "a", text["a3"]), ("delete", "b", None)])


def test_migration_0002_keeps_old_rows_and_derives_their_kinds(stores: Callable[..., PostGISStore],
                                                               pg_url: str) -> None:
    _old_database(pg_url)
    store = stores()  # migrates to 0002
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (len(migrations()),)
        old = conn.execute("SELECT count(*) FROM project_changes WHERE kind IS NULL").fetchone()
    assert old == (5,)  # the old rows are left as they were
    assert list(store.snapshot().ids) == ["a", "h"]
    # Derived from op: an add is a create, a replace whose status differs from the change before is a
    # status change, else an update; the project inserted by hand got a 'create' (seq 6).
    assert [(c.seq, c.op, c.by) for c in store.history("a")] == [(1, "create", None), (3, "status", None),
                                                                 (4, "update", None)]
    assert [(c.seq, c.op) for c in store.history("b")] == [(2, "create"), (5, "delete")]
    assert [(c.seq, c.op) for c in store.history("h")] == [(6, "create")]
    assert store.history("h")[0].feature == _feature("h")
    gone = store.deleted("b")
    assert gone is not None and gone.seq == 5 and gone.feature is None
    assert [c.seq for c in store.changes()] == [1, 2, 3, 4, 5, 6]
    # A deleted id from before the migration is known too: never reused, and restorable.
    with pytest.raises(ValueError, match="'b'"):
        store.add(_feature("b"))
    assert store.restore("b", WriteMeta(by="admin")) == _feature("b")
    assert list(store.snapshot().ids) == ["a", "h", "b"]
    assert [(c.seq, c.op, c.by) for c in store.changes(since=6)] == [(7, "restore", "admin")]
    # Another server reads the same table from scratch (the restore was logged as an add).
    assert list(stores().snapshot().ids) == ["a", "h", "b"]


# --- the feed ---

def _sync(feed: PostGISStore, into: PostGISStore, since: int) -> int:
    """Apply `feed`'s changes past `since` to `into`, 3 at a time, as a client of the feed would (the
    change's feature is all it has); return the last seq applied."""
    while page := feed.changes(since, limit=3):
        for change in page:
            if change.op == "create":
                assert change.feature is not None
                into.add(change.feature)
            elif change.op in ("update", "status"):
                assert change.feature is not None
                into.replace(change.fid, change.feature)
            elif change.op == "delete":
                into.delete(change.fid)
            else:
                assert into.restore(change.fid) == change.feature
        since = page[-1].seq
    return since


def test_a_second_store_synced_from_the_feed_alone_ends_identical(
        stores: Callable[..., PostGISStore]) -> None:
    source = stores()
    source.add_many([_feature("a"), _feature("b"), _feature("c")])
    source.replace("a", _feature("a", status="approved"))
    source.delete("b")
    with pg_schema() as other:
        copy_ = stores(other)
        cursor = _sync(source, copy_, 0)
        assert cursor == 5
        source.restore("b")  # after the others now
        source.replace("c", _feature("c", "renamed"))
        source.add(_feature("d"), _keyed("k"))
        source.delete("a")
        assert _sync(source, copy_, cursor) == 9
        assert list(copy_.snapshot().encoded) == list(source.snapshot().encoded)
        assert list(copy_.snapshot().ids) == ["c", "b", "d"]
        assert [c.op for c in copy_.history("b")] == ["create", "delete", "restore"]
        assert copy_.deleted("a") is not None
        copy_.close()


# --- the Idempotency-Key ---

def test_a_key_older_than_the_window_is_forgotten(stores: Callable[..., PostGISStore], pg_url: str) -> None:
    """24 hours (IDEMPOTENCY_WINDOW_S), on the database's clock: a day-old row is aged in SQL."""
    store = stores()
    store.add(_feature("a"), _keyed("k1"))
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE project_changes SET at = at - interval '23 hours 59 minutes'")
    with pytest.raises(Replayed) as replayed:
        store.add(_feature("b"), _keyed("k1"))
    assert (replayed.value.fid, replayed.value.request_hash) == ("a", "hash-of-k1")
    assert isinstance(store.idempotent(_keyed("k1")), Replayed)
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE project_changes SET at = at - interval '2 minutes'")
    assert store.idempotent(_keyed("k1")) is None
    store.add(_feature("b"), _keyed("k1"))
    assert list(store.snapshot().ids) == ["a", "b"]
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT fid, by, kind, idem, request_hash FROM project_changes ORDER BY seq"
                            ).fetchall()
    # The key is stored scoped by the key's name (geo.store.changes.scoped_key), never the API key.
    assert rows == [("a", "alice", "create", "alice\nk1", "hash-of-k1"),
                    ("b", "alice", "create", "alice\nk1", "hash-of-k1")]


def test_two_servers_adding_with_one_key_while_both_wait_on_the_lock_store_one_project(
        stores: Callable[..., PostGISStore], pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both adds are seen waiting on the write lock (held by a third session) before it is let go: in
    flight at once by construction. One stores its project; the other is told which, and its server
    has that project in its snapshot as it raises (the route reads it from there for the Location):
    the servers' listeners are off, so only the replayed add itself can have brought it."""
    monkeypatch.setattr(PostGISStore, "_listen", lambda self: None)
    first, second = stores(lock_timeout_s=30), stores(lock_timeout_s=30)
    outcome: dict[str, str] = {}
    seen: dict[str, bool] = {}

    def post(store: PostGISStore, fid: str) -> None:
        try:
            store.add(_feature(fid), _keyed("same"))
            outcome[fid] = "stored"
        except Replayed as exc:
            outcome[fid] = f"replayed {exc.fid}"
            seen[fid] = store.snapshot().get(exc.fid) is not None

    behind_the_lock(pg_url, first.lock_key, [functools.partial(post, first, "x"),
                                             functools.partial(post, second, "y")])
    winner = next(fid for fid, result in outcome.items() if result == "stored")
    loser = "y" if winner == "x" else "x"
    assert outcome == {winner: "stored", loser: f"replayed {winner}"}
    assert seen == {loser: True}
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT array_agg(id) FROM projects").fetchone() == ([winner],)
        assert conn.execute("SELECT count(*) FROM project_changes").fetchone() == (1,)


# --- restore, across servers ---

def test_a_restore_is_followed_by_another_server_with_the_same_bytes(
        stores: Callable[..., PostGISStore], pg_url: str) -> None:
    one, two = stores(), stores()
    one.add(_feature("a"))
    one.add(_feature("b", status="approved"))
    one.add(_feature("c"))
    tag = etag_of(one.snapshot().get("b"))
    one.delete("b", meta=WriteMeta(by="admin"))
    wait_for(lambda: list(two.snapshot().ids) == ["a", "c"], within_s=5)
    two.restore("b", WriteMeta(by="admin"))
    wait_for(lambda: list(one.snapshot().ids) == ["a", "c", "b"], within_s=5)  # at the end
    assert etag_of(one.snapshot().get("b")) == tag  # the very document, so the same ETag
    with psycopg.connect(pg_url) as conn:
        log = conn.execute("SELECT op, kind, by, doc IS NULL FROM project_changes WHERE fid = 'b' "
                           "ORDER BY seq").fetchall()
        row = conn.execute("SELECT position, status FROM projects WHERE id = 'b'").fetchone()
    assert log == [("add", "create", None, False), ("delete", "delete", "admin", True),
                   ("add", "restore", "admin", False)]
    assert row == (4, "approved")  # a new position after the others, and its typed columns again


def test_a_load_refuses_an_id_the_record_knows(stores: Callable[..., PostGISStore]) -> None:
    store = stores()
    store.add(_feature("a"))
    store.delete("a")
    with pytest.raises(ValueError, match="'a' exists or existed"):
        store.load([_feature("z"), _feature("a")])
    assert list(store.snapshot().ids) == [] and [c.op for c in store.changes()] == ["create", "delete"]


def test_a_copy_carries_the_current_projects_not_their_record(stores: Callable[..., PostGISStore]) -> None:
    """`geo store copy` (geo/store/copy.py): the destination's record starts with a create per project."""
    src = stores()
    src.add(_feature("a"), WriteMeta(by="alice"))
    src.replace("a", _feature("a", status="approved"), meta=WriteMeta(by="bob"))
    src.add(_feature("gone"))
    src.delete("gone")
    with pg_schema() as other:
        dst = stores(other)
        assert copy(src, dst) == 1
        assert list(dst.snapshot().ids) == ["a"]
        assert dst.snapshot().get("a") == _feature("a", status="approved")
        assert [(c.seq, c.op, c.fid, c.by) for c in dst.changes()] == [(1, "create", "a", None)]
        assert dst.history("gone") == [] and dst.deleted("gone") is None
        dst.close()


# --- outages ---

@pytest.fixture
def outage() -> Iterator[Outage]:
    proxy = Outage()
    yield proxy
    proxy.close()


def test_the_record_is_unavailable_while_the_database_is_and_back_after(
        stores: Callable[..., PostGISStore], pg_url: str, outage: Outage) -> None:
    store = stores(outage.url(pg_url), connect_timeout_s=2)
    store.add(_feature("a"), WriteMeta(by="alice"))
    outage.cut()
    for read in (store.changes, lambda: store.history("a"), lambda: store.deleted("a"),
                 lambda: store.idempotent(_keyed("k"))):
        with pytest.raises(DatabaseUnavailable, match="record of changes cannot be read") as raised:
            read()
        assert raised.value.headers == {"Retry-After": "2"}
        assert ":geo@" not in str(raised.value)
    assert list(store.snapshot().ids) == ["a"]  # reads of the features go on
    outage.restore()
    deadline = time.monotonic() + 10
    while True:
        try:
            changes = store.changes()
            break
        except DatabaseUnavailable:
            assert time.monotonic() < deadline, "the record did not come back within 10 s"
            time.sleep(0.1)
    assert [(c.seq, c.op, c.fid, c.by) for c in changes] == [(1, "create", "a", "alice")]
