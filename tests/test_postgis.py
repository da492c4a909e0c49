"""What only the PostGIS store has: its schema and migrations, following other servers through
LISTEN/NOTIFY and the poll, If-Match across servers, and how it refuses to start.

The behaviour it shares with the file store is in tests/test_store_contract.py. Each test has a schema
of its own (tests/pg.py `pg_url`); without a database they skip (fail in CI).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient

from geo.app import create_app
from geo.cli import main
from geo.errors import (
    DatabaseUnavailable,
    PreconditionFailed,
    StoreCorrupt,
    StoreUnavailable,
    StoreWriteFailed,
)
from geo.schema import PROJECT_FILTERS, PROJECT_TEMPORAL
from geo.settings import Settings
from geo.store.base import etag_of
from geo.store.migrate import masked, migrations
from geo.store.postgis import PostGISStore
from tests.pg import Outage, behind_the_lock, schema_of, wait_for, waiting_on_the_lock


def _feature(fid: str, name: str | None = None, **props: object) -> dict[str, object]:
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [69.1, 34.5]},
            "properties": {"name": name or fid, "category": "water", "status": "planned", **props}}


# --- the schema ---

def test_the_migration_makes_the_tables_indexes_and_typed_columns_of_the_schema(
        stores: Callable[..., PostGISStore], pg_url: str) -> None:
    stores()
    with psycopg.connect(pg_url) as conn:
        columns = dict(conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'projects'").fetchall())
        geometry = conn.execute(
            "SELECT type, srid FROM geometry_columns WHERE f_table_schema = current_schema() "
            "AND f_table_name = 'projects' AND f_geometry_column = 'geom'").fetchone()
        indexes = dict(conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = current_schema() AND tablename = 'projects'").fetchall())
        log = dict(conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'project_changes'").fetchall())
        log_indexes = [d for (d,) in conn.execute(
            "SELECT indexdef FROM pg_indexes "
            "WHERE schemaname = current_schema() AND tablename = 'project_changes'").fetchall()]
    # The typed columns are geo.schema's: the name, each filter field as text, the temporal pair as dates.
    typed = {"name": "text", **dict.fromkeys(PROJECT_FILTERS, "text"),
             **dict.fromkeys(PROJECT_TEMPORAL or (), "date")}
    assert set(PROJECT_FILTERS) == {"status", "category", "province"}
    assert columns == {"id": "text", "position": "bigint", "doc": "json", "geom": "USER-DEFINED",
                       "row_version": "bigint", "updated_at": "timestamp with time zone", **typed}
    assert geometry == ("GEOMETRY", 4326)
    defs = list(indexes.values())
    assert any("USING gist (geom)" in d for d in defs)
    for column in PROJECT_FILTERS:
        assert any(f"USING btree ({column})" in d for d in defs), column
    # Migration 0002: who, what kind, and an add's Idempotency-Key with its request hash.
    assert log == {"seq": "bigint", "at": "timestamp with time zone", "op": "text", "fid": "text",
                   "doc": "json", "by": "text", "kind": "text", "idem": "text", "request_hash": "text"}
    assert any("USING btree (fid, seq)" in d for d in log_indexes)
    assert any("USING btree (at, seq)" in d for d in log_indexes)
    assert any("USING btree (idem, at) WHERE (idem IS NOT NULL)" in d for d in log_indexes)


def test_geo_db_init_then_migrate_twice_is_idempotent(pg_url: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    labels = [m.label for m in migrations()]
    assert labels[0] == "0001_projects"
    assert main(["db", "status", "--url", pg_url]) == 0
    assert capsys.readouterr().out.splitlines() == [f"pending {label}" for label in labels]
    assert main(["db", "init", "--url", pg_url]) == 0
    out = capsys.readouterr().out
    applied = [line for line in out.splitlines() if line.startswith("applied")]
    assert applied == [f"applied {label}" for label in labels]
    for _ in range(2):
        assert main(["db", "migrate", "--url", pg_url]) == 0
        out = capsys.readouterr().out
        assert "0 migration(s) applied" in out and "applied 0" not in out
    assert main(["db", "status", "--url", pg_url]) == 0
    status = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in status] == [f"applied {label}" for label in labels]
    # The password is never printed.
    assert main(["db", "migrate", "--url", pg_url]) == 0
    assert ":geo@" not in capsys.readouterr().out


def test_each_write_is_one_row_in_the_change_log_and_the_log_replays_to_the_table(
        stores: Callable[..., PostGISStore], pg_url: str) -> None:
    store = stores()
    store.add(_feature("a", start_date="2027-03-01", end_date="not a date"))
    store.add(_feature("b"))
    store.replace("a", _feature("a", "A2"))
    store.delete("b")
    with psycopg.connect(pg_url) as conn:
        log = conn.execute("SELECT op, fid, doc::text FROM project_changes ORDER BY seq").fetchall()
        row = conn.execute("SELECT doc::text, name, status, start_date, end_date, row_version, "
                           "ST_AsText(geom) FROM projects").fetchall()
    ops = [(op, fid) for op, fid, _ in log]
    assert ops == [("add", "a"), ("add", "b"), ("replace", "a"), ("delete", "b")]
    assert log[-1][2] is None
    # The exact bytes the service encodes (json keeps the text), and typed columns derived from them.
    a2 = _feature("a", "A2")
    assert row == [(orjson.dumps(a2).decode(), "A2", "planned", None, None, 2, "POINT(69.1 34.5)")]
    first = _feature("a", start_date="2027-03-01", end_date="not a date")
    assert orjson.loads(log[0][2]) == first
    # A new server replays nothing: it reads the table, and agrees on the version (store id, last seq).
    again = stores()
    assert list(again.snapshot().ids) == ["a"] and again.snapshot().get("a") == a2
    assert again.snapshot().version == store.snapshot().version
    assert again.snapshot().version.endswith(".4")
    with psycopg.connect(pg_url) as conn:
        typed = conn.execute("SELECT start_date FROM projects WHERE id = 'a'").fetchone()
    assert typed == (None,)
    store.replace("a", _feature("a", start_date="2027-03-01"))
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT start_date FROM projects").fetchone() == (date(2027, 3, 1),)


# --- following other servers ---

def test_a_write_on_another_server_is_seen_through_notify_within_a_second(
        stores: Callable[..., PostGISStore]) -> None:
    # The poll is 60 s: only the notification can bring the change within the second.
    watcher = stores(poll_s=60)
    writer = stores(poll_s=60)
    writer.add(_feature("a"))
    took = wait_for(lambda: "a" in watcher.snapshot().position, within_s=1.0)
    assert watcher.snapshot().version == writer.snapshot().version
    writer.replace("a", _feature("a", "renamed"))
    wait_for(lambda: watcher.snapshot().get("a")["properties"]["name"] == "renamed", within_s=1.0)
    print(f"seen through NOTIFY after {took * 1000:.1f} ms")


def test_a_change_whose_notification_was_missed_is_read_by_the_poll(
        stores: Callable[..., PostGISStore], pg_url: str) -> None:
    polling = stores(poll_s=0.2)
    deaf = stores(poll_s=60)
    doc = orjson.dumps(_feature("x")).decode()
    with psycopg.connect(pg_url) as conn:  # as a writer would, but without the NOTIFY
        conn.execute("INSERT INTO projects (id, position, doc, geom) VALUES ('x', 1, %s::json, "
                     "ST_SetSRID(ST_MakePoint(69.1, 34.5), 4326))", (doc,))
        conn.execute("INSERT INTO project_changes (op, fid, doc) VALUES ('add', 'x', %s::json)", (doc,))
    wait_for(lambda: "x" in polling.snapshot().position, within_s=1.0)
    time.sleep(0.3)
    assert "x" not in deaf.snapshot().position  # no notification came: the 60 s poll has not run
    assert "x" in deaf.refresh().position


def test_a_change_that_is_not_a_feature_is_logged_once_and_the_last_snapshot_kept(
        stores: Callable[..., PostGISStore], pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    store = stores(poll_s=0.05)
    store.add(_feature("a"))
    version = store.snapshot().version
    with psycopg.connect(pg_url) as conn:
        conn.execute("""INSERT INTO project_changes (op, fid, doc) VALUES ('add', 'y', '{"type": "Nope"}')""")
    wait_for(lambda: "not a GeoJSON Feature" in caplog.text, within_s=2)
    time.sleep(0.3)  # several polls
    assert caplog.text.count("could not be applied") == 1
    assert store.snapshot().version == version and list(store.snapshot().ids) == ["a"]


@pytest.mark.parametrize("method", ["replace", "delete"])
def test_a_write_that_collides_installs_the_version_it_collided_with(
        stores: Callable[..., PostGISStore], pg_url: str, method: str) -> None:
    """The PUT/PATCH route reads the snapshot again after a PreconditionFailed and rebuilds on it
    (geo.routers.transactions._rewrite): the store must have installed the newer version by then, even
    when no notification brought it (here: written without NOTIFY; the poll is a minute away)."""
    store = stores(poll_s=60)
    store.add(_feature("a"))
    etag = etag_of(store.snapshot().get("a"))
    newer = orjson.dumps(_feature("a", "newer")).decode()
    with psycopg.connect(pg_url) as conn:  # another server's write, whose notification was lost
        conn.execute("UPDATE projects SET doc = %s::json WHERE id = 'a'", (newer,))
        conn.execute("INSERT INTO project_changes (op, fid, doc) VALUES ('replace', 'a', %s::json)", (newer,))
    assert store.snapshot().get("a")["properties"]["name"] == "a"  # not seen yet
    with pytest.raises(PreconditionFailed):
        if method == "replace":
            store.replace("a", _feature("a", "mine"), if_match=etag)
        else:
            store.delete("a", if_match=etag)
    assert store.snapshot().get("a")["properties"]["name"] == "newer"


def test_reads_never_touch_the_database(stores: Callable[..., PostGISStore], pg_url: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    store = stores(poll_s=60)
    store.add(_feature("a"))

    def no_connection(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a read asked for a connection")

    monkeypatch.setattr(store._pool, "connection", no_connection)
    assert list(store.snapshot().ids) == ["a"] and not store.stale()


# --- If-Match across servers ---

def test_two_servers_with_the_same_etag_exactly_one_wins(stores: Callable[..., PostGISStore],
                                                         pg_url: str) -> None:
    """Both writes are made to wait on the write lock, held by a third session, so that both are in
    flight at once by construction; then the lock is let go and they go one after the other."""
    first, second = stores(lock_timeout_s=30), stores(lock_timeout_s=30)
    first.add(_feature("a"))
    second.refresh()
    etag = etag_of(first.snapshot().get("a"))
    assert etag == etag_of(second.snapshot().get("a"))
    outcome: dict[str, str] = {}

    def write(store: PostGISStore, name: str) -> None:
        try:
            store.replace("a", _feature("a", name), if_match=etag)
            outcome[name] = "won"
        except PreconditionFailed:
            outcome[name] = "412"

    behind_the_lock(pg_url, first.lock_key, [functools.partial(write, first, "one"),
                                             functools.partial(write, second, "two")])
    assert sorted(outcome.values()) == ["412", "won"]
    winner = next(name for name, result in outcome.items() if result == "won")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM project_changes WHERE op = 'replace'").fetchone() == (1,)
        assert conn.execute("SELECT doc->'properties'->>'name', row_version FROM projects").fetchone() == (
            winner, 2)
    assert first.refresh().get("a")["properties"]["name"] == winner


# --- refusing to start ---

@pytest.mark.parametrize("doc, fault", [
    ('{"type": "Nope", "id": "bad"}', "is not a GeoJSON Feature"),
    ('{"type": "Feature", "id": "bad", "properties": {}}', "lacks a geometry or properties object"),
    ('[1, 2]', "is not a GeoJSON Feature"),
])
def test_a_row_that_is_not_a_feature_refuses_the_start(stores: Callable[..., PostGISStore], pg_url: str,
                                                       settings: Settings, doc: str, fault: str) -> None:
    stores().add(_feature("good"))
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO projects (id, position, doc, geom) VALUES ('bad', 2, %s::json, "
                     "ST_SetSRID(ST_MakePoint(69.1, 34.5), 4326))", (doc,))
    with pytest.raises(StoreCorrupt, match=f"projects row 'bad' \\(position 2\\).*{fault}") as raised:
        PostGISStore(pg_url)
    assert ":geo@" not in str(raised.value) and ":***@" in str(raised.value)
    with pytest.raises(StoreCorrupt):
        create_app(settings.model_copy(update={"database_url": pg_url}))


@pytest.mark.parametrize("url, secret", [
    ("postgresql://geo:s3cret-pw@127.0.0.1:1/geo_test", "s3cret-pw"),  # nothing listens: refused
    ("postgresql://geo@127.0.0.1:1/geo_test?password=s3cret-pw&connect_timeout=2", "s3cret-pw"),
    ("host=127.0.0.1 port=1 dbname=geo_test user=geo password=s3cret-pw", "s3cret-pw"),
])
def test_an_unreachable_database_refuses_the_start_with_the_password_masked(
        url: str, secret: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(StoreUnavailable, match="cannot connect") as raised:
        PostGISStore(url, connect_timeout_s=2)
    message = str(raised.value)
    assert secret not in message and "***" in message and "Connection refused" in message
    assert secret not in masked(url)
    # `geo serve` says why and stops, without a traceback or the password.
    monkeypatch.setenv("GEO_DATABASE_URL", url)
    monkeypatch.setenv("GEO_DATABASE_CONNECT_TIMEOUT_S", "2")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "refusing to start" in err and secret not in err and "Traceback" not in err


def test_a_wrong_password_is_named_but_not_shown(pg_url: str) -> None:
    wrong = pg_url.replace("geo:geo@", "geo:not-the-password@")
    assert wrong != pg_url
    with pytest.raises(StoreUnavailable) as raised:
        PostGISStore(wrong, connect_timeout_s=2)
    message = str(raised.value)
    assert "not-the-password" not in message and "password authentication failed" in message


def test_a_service_on_postgis_answers_reads_and_writes(pg_url: str, settings: Settings) -> None:
    from tests.conftest import AUTH, point_feature

    with TestClient(create_app(settings.model_copy(update={"database_url": pg_url}))) as client:
        assert client.get("/collections/projects/items").json()["features"] == []
        created = client.post("/collections/projects/items", json=point_feature(), headers=AUTH)
        assert created.status_code == 201
        fid = created.json()["id"]
        got = client.get(f"/collections/projects/items/{fid}")
        assert got.status_code == 200 and got.headers["last-modified"]
        assert isinstance(client.app.state.catalogue.store, PostGISStore)  # type: ignore[attr-defined]


# --- outages ---

@pytest.fixture
def outage() -> Iterator[Outage]:
    """A proxy to the test database that a test can cut off (tests/pg.py)."""
    proxy = Outage()
    yield proxy
    proxy.close()


def _retrying(write: Callable[[], object], within_s: float) -> None:
    """`write` until it stops answering DatabaseUnavailable (the pool reconnects by itself)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            write()
            return
        except DatabaseUnavailable:
            assert time.monotonic() < deadline, f"writes did not come back within {within_s} s"
            time.sleep(0.1)


def test_a_database_outage_is_a_503_for_writes_reads_go_on_and_it_recovers_without_restart(
        pg_url: str, settings: Settings, outage: Outage, stores: Callable[..., PostGISStore]) -> None:
    from tests.conftest import AUTH, point_feature

    other = stores()  # another server, which keeps its database
    quick = {"database_url": outage.url(pg_url), "database_connect_timeout_s": 1.0, "database_poll_s": 0.1}
    with TestClient(create_app(settings.model_copy(update=quick))) as client:
        items = "/collections/projects/items"
        first = client.post(items, json=point_feature(name="before"), headers=AUTH)
        assert first.status_code == 201
        outage.cut()
        refused = client.post(items, json=point_feature(name="during"), headers=AUTH)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["type"].endswith("database-unavailable") and "Reads go on" in problem["detail"]
        assert "geo:geo@" not in refused.text
        # Reads go on from the last snapshot.
        listed = client.get(items).json()["features"]
        assert [f["properties"]["name"] for f in listed] == ["before"]
        other.add(_feature("meanwhile"))  # a write on another server while this one is cut off
        outage.restore()
        # Back without a restart: the listener reads what it missed, and writes succeed again.
        store = client.app.state.catalogue.store  # type: ignore[attr-defined]
        wait_for(lambda: "meanwhile" in store.snapshot().position, within_s=15)
        _retrying(lambda: store.add(_feature("after")), within_s=15)
        names = [f["properties"]["name"] for f in client.get(items).json()["features"]]
        assert names == ["before", "meanwhile", "after"]
    assert list(other.refresh().ids)[1:] == ["meanwhile", "after"]


def test_after_a_long_outage_writes_come_back_as_soon_as_the_database_does(
        pg_url: str, outage: Outage, stores: Callable[..., PostGISStore]) -> None:
    """The pool's own reconnection waits 1, 2, 4, 8 s... after failures: cut for 8 s, with writes
    trying meanwhile, it would next try about 7 s after the database is back. Writes must come back
    within 3 s of the restore (the listener's backoff is at most 1 s, then the pool is renewed)."""
    store = stores(connect_timeout_s=1, poll_s=0.1, url=outage.url(pg_url))
    store.add(_feature("before"))
    outage.cut()
    cut_at = time.monotonic()
    while time.monotonic() - cut_at < 8:  # writes keep the pool reconnecting, and backing off
        with pytest.raises(DatabaseUnavailable):
            store.add(_feature("during"))
        time.sleep(0.2)
    outage.restore()
    restored_at = time.monotonic()
    _retrying(lambda: store.add(_feature("after")), within_s=3)
    assert time.monotonic() - restored_at < 3
    assert list(store.snapshot().ids) == ["before", "after"]


def test_a_connection_lost_during_the_commit_is_a_503_that_does_not_claim_nothing_was_written(
        pg_url: str, outage: Outage, stores: Callable[..., PostGISStore]) -> None:
    """The database may commit a write whose answer never arrives: the 503 says it is not known, and
    the write is indeed there afterwards. The COMMIT is held by a deferred trigger waiting on a lock
    this test holds; the connection is cut while it waits; then the lock is let go."""
    store = stores(connect_timeout_s=1, poll_s=0.1, url=outage.url(pg_url))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("""
            CREATE FUNCTION held_commit() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NULL; END $$;
            CREATE CONSTRAINT TRIGGER held AFTER INSERT ON project_changes DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION held_commit();""")
    failure: list[BaseException] = []

    def write() -> None:
        try:
            store.add(_feature("x"))
        except DatabaseUnavailable as exc:
            failure.append(exc)

    with psycopg.connect(pg_url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(4242)")
        writer = threading.Thread(target=write)
        writer.start()
        wait_for(lambda: waiting_on_the_lock(pg_url) == 1, within_s=10)  # in the COMMIT, held
        outage.cut()
        holder.rollback()
    writer.join(30)
    message = str(failure[0]) if failure else ""
    assert "not known" in message and "nothing was written" not in message
    outage.restore()
    wait_for(lambda: "x" in store.snapshot().position, within_s=15)  # it was committed after all


def test_a_write_over_a_row_that_is_not_a_feature_is_refused(stores: Callable[..., PostGISStore],
                                                             pg_url: str) -> None:
    store = stores()
    store.add(_feature("a"))
    with psycopg.connect(pg_url) as conn:  # broken by hand after the server read it
        conn.execute("""UPDATE projects SET doc = '{"type": "Nope"}' WHERE id = 'a'""")
    for write in (lambda: store.replace("a", _feature("a", "new")), lambda: store.delete("a")):
        with pytest.raises(StoreWriteFailed, match="not overwritten") as raised:
            write()
        assert raised.value.status == 503
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT doc::text FROM projects").fetchone() == ('{"type": "Nope"}',)
        assert conn.execute("SELECT count(*) FROM project_changes").fetchone() == (1,)


def test_geo_serve_on_postgis_starts_writes_and_stops_cleanly(pg_url: str, settings: Settings,
                                                              tmp_path: Path) -> None:
    """A real server (uvicorn, tests/server.py): the store opened at start-up, a POST stored in the
    database, and at shutdown the listener and the pool closed without a traceback."""
    import httpx

    from tests.conftest import AUTH, point_feature
    from tests.server import live_server

    log = tmp_path / "server.log"
    with live_server(settings.model_copy(update={"database_url": pg_url}), log=log) as base:
        created = httpx.post(f"{base}/collections/projects/items", json=point_feature(), headers=AUTH)
        assert created.status_code == 201
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT id FROM projects").fetchall() == [(created.json()["id"],)]

        def sessions_left() -> bool:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                               "AND pid <> pg_backend_pid()", (schema_of(pg_url),)).fetchone()
            return row == (0,)

        wait_for(sessions_left, within_s=5)  # the server's sessions end with it (a backend exits soon after)
    assert "Traceback" not in log.read_text()
