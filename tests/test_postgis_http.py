"""The PostGIS store through real servers: `geo serve` subprocesses (tests/server.py) on one database.

- two servers on one database: a POST, a PATCH and a DELETE on one are seen by the other within 1 s;
- 200 concurrent POSTs spread over both servers: exactly 200 stored, unique ids, the same order on both;
- an If-Match race across servers: both PATCH with the same ETag, while a third session holds the row,
  so that both writes are in flight at once by construction: exactly one 200 and one 412, also when the
  loser's listener has just lost its connection (the loser learns of the winner only from its collision);
- a database outage (tests/pg.py Outage cuts the server's connections): writes answer 503 problem+json
  with Retry-After and change nothing, reads go on from the last snapshot, and after the database comes
  back writes succeed and what another server wrote meanwhile shows, without a restart;
- the database restarted for real in the middle of a stream of POSTs: no acknowledged write lost, every
  answer a 201 or a 503 with Retry-After, and writes acknowledged again within a bound.

Each test has a schema of its own (tests/pg.py); without a database they skip (fail in CI). Every server's
stderr goes to a log, which must hold no traceback.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from geo.settings import Settings
from tests.conftest import AUTH, point_feature, require
from tests.pg import Outage, schema_of
from tests.server import live_server

ITEMS = "/collections/projects/items"
PATCH = {**AUTH, "Content-Type": "application/merge-patch+json"}
# The bound: a write on one server is visible on the others within a second.
VISIBLE_S = 1.0


@pytest.fixture
def db_settings(settings: Settings, pg_url: str) -> Settings:
    """The test's settings on the PostGIS store of a fresh schema; no per-key write limit (the tests
    write faster than a client would), and a lock wait longer than any test holds a lock."""
    return settings.model_copy(update={"database_url": pg_url, "write_rate_per_key": 0,
                                       "store_lock_timeout_s": 30.0})


class Servers:
    """Live servers started for one test; each logs to its own file, checked for tracebacks at the end."""

    def __init__(self, stack: ExitStack, folder: Path) -> None:
        self._stack = stack
        self._folder = folder
        self.logs: list[Path] = []

    def start(self, settings: Settings) -> httpx.Client:
        """A server on `settings`, and a client for it (closed with the server)."""
        log = self._folder / f"server-{len(self.logs)}.log"
        self.logs.append(log)
        base = self._stack.enter_context(live_server(settings, log=log))
        return self._stack.enter_context(httpx.Client(base_url=base, timeout=30))

    def tracebacks(self) -> list[str]:
        """The logs that hold a traceback, with their text."""
        texts = [(log, log.read_text(errors="replace")) for log in self.logs if log.exists()]
        return [f"{log.name}:\n{text}" for log, text in texts if "Traceback" in text]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    """Starts live servers for a test; stops them after it and fails it if a log holds a traceback."""
    with ExitStack() as stack:
        started = Servers(stack, tmp_path)
        yield started
    assert not started.tracebacks(), "\n".join(started.tracebacks())


def _within(check: Callable[[], bool], limit_s: float, what: str) -> float:
    """Seconds until `check()` held, asked again and again; fails the test past `limit_s`."""
    start = time.monotonic()
    while not check():
        elapsed = time.monotonic() - start
        if elapsed > limit_s:
            pytest.fail(f"{what}: not within {limit_s:g} s")
        time.sleep(0.01)
    return time.monotonic() - start


def _ids(client: httpx.Client) -> list[str]:
    """The ids of every project a server lists, in its order."""
    response = client.get(ITEMS, params={"limit": 10_000})
    assert response.status_code == 200
    return [f["id"] for f in response.json()["features"]]


def _name(client: httpx.Client, fid: str) -> str | None:
    """A project's name on a server (None when the server has no such project, or it was deleted)."""
    response = client.get(f"{ITEMS}/{fid}")
    if response.status_code in (404, 410):
        return None
    assert response.status_code == 200
    name: str = response.json()["properties"]["name"]
    return name


def _database(url: str, query: str, *args: object) -> list[tuple[Any, ...]]:
    """The rows of `query` on the test's schema, read directly (not through a server)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(query, args).fetchall()


def _unavailable(response: httpx.Response) -> None:
    """`response` is a database-unavailable problem: 503, problem+json, Retry-After, no password."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["type"].endswith("database-unavailable"), response.text
    assert "geo:geo@" not in response.text


# --- two servers on one database ---

def test_a_write_on_one_server_is_seen_on_the_other_within_a_second(db_settings: Settings,
                                                                     servers: Servers) -> None:
    a, b = servers.start(db_settings), servers.start(db_settings)
    created = a.post(ITEMS, json=point_feature(name="Made on A"), headers=AUTH)
    assert created.status_code == 201
    fid = created.json()["id"]
    _within(lambda: _name(b, fid) == "Made on A" and fid in _ids(b), VISIBLE_S, "a POST on A, seen on B")
    # The same version on both: the same ETag, so a client may read on one and write on the other.
    assert b.get(f"{ITEMS}/{fid}").headers["etag"] == created.headers["etag"]

    patched = a.patch(f"{ITEMS}/{fid}", json={"properties": {"name": "Patched on A"}}, headers=PATCH)
    assert patched.status_code == 200
    _within(lambda: b.get(f"{ITEMS}/{fid}").headers["etag"] == patched.headers["etag"], VISIBLE_S,
            "a PATCH on A, seen on B")
    listed = b.get(ITEMS).json()["features"]
    assert [(f["id"], f["properties"]["name"]) for f in listed] == [(fid, "Patched on A")]

    assert a.delete(f"{ITEMS}/{fid}", headers=AUTH).status_code == 204
    _within(lambda: _name(b, fid) is None and _ids(b) == [], VISIBLE_S, "a DELETE on A, seen on B")
    # And the other way round: B writes, A sees it.
    other = b.post(ITEMS, json=point_feature(name="Made on B"), headers=AUTH)
    assert other.status_code == 201
    _within(lambda: _ids(a) == [other.json()["id"]], VISIBLE_S, "a POST on B, seen on A")


def test_200_concurrent_posts_over_two_servers_are_all_stored_once(db_settings: Settings,
                                                                    servers: Servers, pg_url: str) -> None:
    """20 clients, 10 on each server, released together by a barrier, 10 POSTs each."""
    a, b = servers.start(db_settings), servers.start(db_settings)
    clients, per_client = 20, 10
    start = threading.Barrier(clients)
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def post(index: int) -> None:
        with httpx.Client(base_url=str((a, b)[index % 2].base_url), timeout=60) as client:
            start.wait()
            for n in range(per_client):
                response = client.post(ITEMS, json=point_feature(name=f"c{index}-{n}"), headers=AUTH)
                with lock:
                    answers.append((response.status_code, response.json().get("id", response.text)))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert [status for status, _ in answers] == [201] * 200
    acknowledged = {fid for _, fid in answers}
    assert len(acknowledged) == 200
    stored = [fid for (fid,) in _database(pg_url, "SELECT id FROM projects ORDER BY position")]
    assert len(stored) == 200 and set(stored) == acknowledged
    assert _database(pg_url, "SELECT op, count(*) FROM project_changes GROUP BY op") == [("add", 200)]
    # Both servers hold all of them, in the database's order (the order of addition).
    _within(lambda: _ids(a) == stored and _ids(b) == stored, VISIBLE_S, "all 200 on both servers")


# --- If-Match across servers ---

def _waiting_on_locks(pg_url: str) -> int:
    """How many of the test's sessions wait for a lock."""
    rows = _database(pg_url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND "
                             "wait_event_type = 'Lock'", schema_of(pg_url))
    return int(rows[0][0])


def _listeners(pg_url: str) -> list[int]:
    """The backends idle after a LISTEN or a read of the change log: the servers' listener threads (and
    any pooled connection whose last statement read the log)."""
    rows = _database(pg_url, "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND state = "
                             "'idle' AND (query LIKE 'LISTEN %%' OR query LIKE 'SELECT seq, at, fid, %%')",
                     schema_of(pg_url))
    return [int(pid) for (pid,) in rows]


def _race(a: httpx.Client, b: httpx.Client, pg_url: str,
          before_release: Callable[[], None] = lambda: None) -> None:
    """Both servers PATCH one project with the ETag both hold; exactly one 200 and one 412, and the
    winner's version is the one stored and served."""
    fid = a.post(ITEMS, json=point_feature(name="Original"), headers=AUTH).json()["id"]
    _within(lambda: _name(b, fid) == "Original", VISIBLE_S, "the POST on A, seen on B")
    etag = a.get(f"{ITEMS}/{fid}").headers["etag"]
    assert b.get(f"{ITEMS}/{fid}").headers["etag"] == etag
    answers: dict[str, httpx.Response] = {}

    def patch(client: httpx.Client, name: str) -> None:
        answers[name] = client.patch(f"{ITEMS}/{fid}", json={"properties": {"name": name}},
                                     headers={**PATCH, "If-Match": etag})

    # A third session holds the row: each write's transaction waits (one for the row, the other for the
    # write lock the first holds), so both are in flight at once whatever the threads' timing.
    with psycopg.connect(pg_url) as holder:
        holder.execute("SELECT 1 FROM projects WHERE id = %s FOR UPDATE", (fid,))
        threads = [threading.Thread(target=patch, args=(client, name))
                   for client, name in ((a, "Written by A"), (b, "Written by B"))]
        for thread in threads:
            thread.start()
        _within(lambda: _waiting_on_locks(pg_url) == 2, 20, "both writes waiting on the database")
        before_release()
        holder.rollback()
    for thread in threads:
        thread.join(60)
    statuses = {name: response.status_code for name, response in answers.items()}
    assert sorted(statuses.values()) == [200, 412], {n: r.text for n, r in answers.items()}
    winner = next(name for name, status in statuses.items() if status == 200)
    loser = answers[next(name for name in statuses if name != winner)]
    assert loser.headers["content-type"] == "application/problem+json"
    # The stored feature is the winner's, in the database and on both servers, and it was written once.
    assert _database(pg_url, "SELECT doc->'properties'->>'name', row_version FROM projects WHERE id = %s",
                     fid) == [(winner, 2)]
    assert _database(pg_url, "SELECT count(*) FROM project_changes WHERE op = 'replace'") == [(1,)]
    new_etag = answers[winner].headers["etag"]
    for client in (a, b):
        _within(lambda c=client: c.get(f"{ITEMS}/{fid}").headers["etag"] == new_etag,  # type: ignore[misc]
                5, "the winner's version on both servers")
        assert _name(client, fid) == winner


def test_an_if_match_race_across_two_servers_has_exactly_one_winner(db_settings: Settings,
                                                                     servers: Servers, pg_url: str) -> None:
    _race(servers.start(db_settings), servers.start(db_settings), pg_url)


def test_an_if_match_race_is_a_412_even_when_the_losers_listener_lags(db_settings: Settings,
                                                                       servers: Servers, pg_url: str) -> None:
    """The loser must answer 412 whether or not its listener has read the winner's change yet: here the
    listeners' connections are ended just before the writes go ahead (a network blip), so each server
    knows of the other's write only through its own write's collision."""
    slow = db_settings.model_copy(update={"database_poll_s": 30.0})
    a, b = servers.start(slow), servers.start(slow)

    def drop_the_listeners() -> None:
        pids = _listeners(pg_url)  # both listeners (and any pooled connection that last read the log)
        assert len(pids) >= 2, pids
        _database(pg_url, "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", pids)

    _race(a, b, pg_url, drop_the_listeners)


# --- outages ---

@pytest.fixture
def outage() -> Iterator[Outage]:
    """A proxy to the test database that a test can cut off (tests/pg.py)."""
    proxy = Outage()
    yield proxy
    proxy.close()


ROWS = "SELECT id, doc::text, row_version FROM projects ORDER BY position"
# What a server answers from memory while its database is away: the reads a client and the web map make.
READS = ("/collections", "/collections/projects", ITEMS, f"{ITEMS}?limit=1000&f=json", "/map",
         "/layers/projects.geojson")


def _reads(client: httpx.Client, fid: str) -> dict[str, bytes]:
    """The bodies of the reads (all 200), and of the one project."""
    bodies: dict[str, bytes] = {}
    for path in (*READS, f"{ITEMS}/{fid}"):
        response = client.get(path)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
        bodies[path] = response.content
    return bodies


def _until_written(write: Callable[[], httpx.Response], expected: int, limit_s: float) -> float:
    """Seconds until `write` answered `expected`, tried again on each 503 (with Retry-After, the only
    other answer allowed); fails past `limit_s`."""
    start = time.monotonic()
    while True:
        response = write()
        if response.status_code == expected:
            return time.monotonic() - start
        _unavailable(response)
        if time.monotonic() - start > limit_s:
            pytest.fail(f"writes did not come back within {limit_s:g} s")
        time.sleep(0.1)


def test_a_database_outage_is_a_503_for_writes_reads_go_on_and_the_server_recovers(
        db_settings: Settings, pg_url: str, outage: Outage, servers: Servers) -> None:
    quick = {"database_url": outage.url(pg_url), "database_connect_timeout_s": 1.0, "database_poll_s": 0.2}
    cut_off = servers.start(db_settings.model_copy(update=quick))
    other = servers.start(db_settings)  # another server, which keeps its database
    fid = cut_off.post(ITEMS, json=point_feature(name="Before"), headers=AUTH).json()["id"]
    _within(lambda: _name(other, fid) == "Before", VISIBLE_S, "the first POST, seen on the other server")
    before = _reads(cut_off, fid)
    rows_before = _database(pg_url, ROWS)
    etag = cut_off.get(f"{ITEMS}/{fid}").headers["etag"]

    outage.cut()
    replacement = point_feature(name="During", status="planned")
    refused = [cut_off.post(ITEMS, json=point_feature(name="During"), headers=AUTH),
               cut_off.patch(f"{ITEMS}/{fid}", json={"properties": {"name": "During"}},
                             headers={**PATCH, "If-Match": etag}),
               cut_off.put(f"{ITEMS}/{fid}", json=replacement, headers=AUTH),
               cut_off.delete(f"{ITEMS}/{fid}", headers=AUTH)]
    for response in refused:
        _unavailable(response)
    # Reads go on from the last snapshot, byte for byte, and nothing was written anywhere.
    assert _reads(cut_off, fid) == before
    assert _database(pg_url, ROWS) == rows_before
    assert _database(pg_url, "SELECT count(*) FROM project_changes") == [(1,)]
    # Meanwhile another server writes.
    meanwhile = other.post(ITEMS, json=point_feature(name="Meanwhile"), headers=AUTH)
    assert meanwhile.status_code == 201
    assert _ids(cut_off) == [fid]

    outage.restore()
    # No restart: the server follows the database again (its listener backs off at most 5 s) ...
    followed = _within(lambda: _ids(cut_off) == [fid, meanwhile.json()["id"]], 15,
                       "the other server's write, seen")
    # ... and takes writes again (the pool reconnects by itself).
    recovered = _until_written(lambda: cut_off.post(ITEMS, json=point_feature(name="After"), headers=AUTH),
                               201, 15)
    assert cut_off.patch(f"{ITEMS}/{fid}", json={"properties": {"name": "Patched after"}},
                         headers={**PATCH, "If-Match": etag}).status_code == 200
    names = {"Before": 0, "Meanwhile": 0, "After": 0, "Patched after": 0}
    for (name,) in _database(pg_url, "SELECT doc->'properties'->>'name' FROM projects"):
        names[name] += 1
    assert names == {"Before": 0, "Meanwhile": 1, "After": 1, "Patched after": 1}
    expected = _ids(cut_off)
    _within(lambda: _ids(other) == expected, VISIBLE_S, "the recovered server's writes, seen on the other")
    waits = ", ".join(f"{r.request.method} {r.elapsed.total_seconds():.2f} s" for r in refused)
    print(f"outage: 503s after {waits}; after the restore, the other server's write seen in "
          f"{followed:.2f} s, writes back after {recovered:.2f} s more")


# --- the database restarted ---

CLUSTER = ("15", "main")
# Acknowledged writes before the restart, and after it (the writes must come back).
BEFORE_RESTART, AFTER_RESTART = 20, 20
# Clients writing at once: as many as a server's pool has connections (the default 4), all broken at once.
WRITERS = 4
# How long after the restart command returned writes may take to be acknowledged again.
RECOVERY_S = 15.0


STARTED = "SELECT pg_postmaster_start_time()"


def _cluster(action: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *CLUSTER, action, *options],
                          capture_output=True, text=True, timeout=120)


def _can_restart_the_cluster() -> str | None:
    """Why the test cannot restart the database itself (None when it can)."""
    if shutil.which("pg_ctlcluster") is None:
        return "pg_ctlcluster is not installed"
    if os.geteuid() != 0:
        return "restarting the cluster needs root"
    status = _cluster("status")
    if status.returncode != 0:
        return f"the cluster {' '.join(CLUSTER)} is not running here ({status.stdout.strip()})"
    return None


def test_the_database_restarted_mid_load_loses_no_acknowledged_write(
        db_settings: Settings, servers: Servers, pg_url: str) -> None:
    """WRITERS clients POST without pause; after BEFORE_RESTART acknowledged writes the cluster is
    restarted (`-m fast`: every session ended, as in a failover); the same server, not restarted, must
    acknowledge writes again within RECOVERY_S, and every write it acknowledged must be stored."""
    reason = _can_restart_the_cluster()
    if reason is not None:
        require(f"the database restart test: {reason} (run the tests as root on the cluster of "
                "scripts/system-deps.sh)")
    server = servers.start(db_settings.model_copy(update={"database_connect_timeout_s": 2.0,
                                                          "database_poll_s": 0.2}))
    acknowledged: list[str] = []
    acknowledged_at: list[float] = []
    refused: list[tuple[float, str, str]] = []  # when each 503 (with Retry-After) came, its name, its detail
    wrong: list[str] = []  # any other answer, or a transport error
    lock = threading.Lock()
    reached, restarted, stop = threading.Event(), threading.Event(), threading.Event()

    def load(writer: int) -> None:
        with httpx.Client(base_url=str(server.base_url), timeout=60) as client:
            n = 0
            while not stop.is_set():
                n += 1
                name = f"load {writer}-{n}"  # each POST's own name: what a 503 said can be checked
                try:
                    response = client.post(ITEMS, json=point_feature(name=name), headers=AUTH)
                except httpx.HTTPError as exc:
                    response, error = None, f"POST {name}: {exc!r}"
                with lock:
                    if response is None:
                        wrong.append(error)
                    elif response.status_code == 201:
                        acknowledged.append(response.json()["id"])
                        acknowledged_at.append(time.monotonic())
                    elif response.status_code == 503 and int(response.headers.get("retry-after", "0")) > 0:
                        refused.append((time.monotonic(), name, response.json()["detail"]))
                    else:
                        wrong.append(f"POST {name}: {response.status_code} {response.text}")
                    if len(acknowledged) >= BEFORE_RESTART:
                        reached.set()
                    if restarted.is_set() and len(acknowledged) >= BEFORE_RESTART + AFTER_RESTART:
                        stop.set()

    writers = [threading.Thread(target=load, args=(i,)) for i in range(WRITERS)]
    try:
        for writer in writers:
            writer.start()
        assert reached.wait(60), f"not {BEFORE_RESTART} acknowledged writes: {wrong[:3]}"
        began = _database(pg_url, STARTED)
        done = _cluster("restart", "-m", "fast")
        assert done.returncode == 0, done.stderr
        assert _database(pg_url, STARTED) != began, "the database was not restarted"
        with lock:
            before = len(acknowledged)
            restarted.set()
        recovery = _within(lambda: len(acknowledged) > before or bool(wrong), RECOVERY_S,
                           "writes acknowledged again after the restart")
        assert stop.wait(60), "the writes after the restart did not finish"
    finally:
        stop.set()
        for writer in writers:
            writer.join(60)
        if _cluster("status").returncode != 0:  # whatever happened, later tests need the database
            _cluster("start")
    assert wrong == []
    assert len(acknowledged) >= BEFORE_RESTART + AFTER_RESTART
    # Nothing acknowledged was lost: each once in the database, and on the server, which lists exactly
    # what the database holds.
    stored = _database(pg_url, "SELECT id, doc->'properties'->>'name' FROM projects ORDER BY position")
    assert len(set(acknowledged)) == len(acknowledged)
    assert set(acknowledged) <= {fid for fid, _ in stored}
    _within(lambda: _ids(server) == [fid for fid, _ in stored], 5, "every stored write on the server")
    # A write whose COMMIT went out as the connection dropped may be stored though it answered 503: the
    # answer must then not say that nothing was written.
    denied = {name for _, name, detail in refused if "nothing was written" in detail}
    assert [name for _, name in stored if name in denied] == []
    gap = max(later - earlier for earlier, later in itertools.pairwise(acknowledged_at))
    print(f"restart: {len(acknowledged)} acknowledged, {len(refused)} answered 503 ({len(denied)} said "
          f"nothing was written), {len(stored) - len(acknowledged)} stored unacknowledged; longest time "
          f"without a 201: {gap:.2f} s; first 201 {recovery:.2f} s after the restart command returned")
