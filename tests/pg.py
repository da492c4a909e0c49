"""The PostgreSQL+PostGIS the PostGIS store's tests run on: one fresh schema per test.

The database is GEO_TEST_DATABASE_URL (default: the cluster `scripts/system-deps.sh` sets up on
loopback). Each test gets a schema of its own, `t_<hex>`, and a URL whose `search_path` starts with it
(PostGIS stays in `public`), so tests run side by side on one database and leave nothing behind: the
schema is dropped afterwards, with whatever connections a test left open. A schema, not a database:
creating a database takes a second, a schema a millisecond.

Without a reachable database the tests skip, saying how to get one; in CI (GEO_REQUIRE_ALL=1) they fail.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import psycopg
from psycopg import sql

DEFAULT_URL = "postgresql://geo:geo@127.0.0.1:5432/geo_test"
HOW = ("run `bash scripts/system-deps.sh` as root (installs and starts PostgreSQL 15 + PostGIS 3 on "
       "loopback), or set GEO_TEST_DATABASE_URL to a database with the postgis extension")


def database_url() -> str:
    """The test database (GEO_TEST_DATABASE_URL, or the loopback cluster of scripts/system-deps.sh)."""
    return os.environ.get("GEO_TEST_DATABASE_URL") or DEFAULT_URL


@functools.cache
def unreachable() -> str | None:
    """Why the test database cannot be used (None when it can); asked once per session."""
    try:
        with psycopg.connect(database_url(), connect_timeout=3, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'").fetchone() is None:
                return "the test database has no postgis extension"
    except psycopg.Error as exc:
        return f"the test database cannot be reached ({str(exc).strip().splitlines()[0]})"
    return None


def require_database() -> None:
    """Skip (or fail in CI) when there is no test database, saying how to get one."""
    from tests.conftest import require  # here: conftest imports this module's users

    reason = unreachable()
    if reason is not None:
        require(f"PostGIS tests: {reason}; {HOW}")


def with_schema(url: str, schema: str, application_name: str | None = None) -> str:
    """`url` with its search_path set to `schema`, then public (where PostGIS lives)."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k not in ("options",)]
    query.append(("options", f"-c search_path={schema},public"))
    if application_name is not None:
        query = [(k, v) for k, v in query if k != "application_name"]
        query.append(("application_name", application_name))
    encoded = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)  # libpq reads no `+` as a space
    return urllib.parse.urlunsplit(parts._replace(query=encoded))


def admin() -> psycopg.Connection[tuple[object, ...]]:
    """A connection to the test database itself (autocommit), to set up or inspect a test's schema."""
    return psycopg.connect(database_url(), connect_timeout=3, autocommit=True)


@contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh, empty schema for one test: yields a URL that uses it; drops it (and ends the sessions
    still on it) afterwards. Skips (fails in CI) without a test database."""
    require_database()
    name = f"t_{secrets.token_hex(6)}"
    with admin() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        # The application_name marks the test's sessions, so that leftovers can be ended before the drop.
        yield with_schema(database_url(), name, application_name=name)
    finally:
        with admin() as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE application_name = %s AND pid <> pg_backend_pid()", (name,))
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def schema_of(url: str) -> str:
    """The test schema a `pg_schema` URL uses."""
    options = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))["options"]
    return options.split("=", 1)[1].split(",", 1)[0]


class Outage:
    """A TCP proxy to the test database on a loopback port of its own, that can cut the database off.

    `url(u)` is `u` through the proxy. `cut()` closes every connection through it and closes new ones
    as soon as they are accepted (as a database that went away: connections fail at once, not after a
    timeout); `restore()` lets them through again, on the same port.
    """

    def __init__(self) -> None:
        target = urllib.parse.urlsplit(database_url())
        self._target = (target.hostname or "127.0.0.1", target.port or 5432)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._down = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, url: str) -> str:
        """`url` with its host and port replaced by the proxy's."""
        parts = urllib.parse.urlsplit(url)
        user, _, _ = parts.netloc.rpartition("@")
        return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{self.port}"))

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self._down.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            src.close()  # each socket is the source of one pump: closed once

    def cut(self) -> None:
        """The database goes away: every connection through the proxy is closed, new ones too."""
        self._down.set()
        with self._lock:
            opened, self._open = self._open, []
        for s in opened:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        """The database is back."""
        self._down.clear()

    def close(self) -> None:
        """Stop the proxy (and cut what goes through it)."""
        self.cut()
        self._listener.close()


def wait_for(check: Callable[[], bool], within_s: float) -> float:
    """Seconds until `check()` held (asked every 5 ms); fails past `within_s`."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < within_s, f"not within {within_s} s"
        time.sleep(0.005)
    return time.monotonic() - start


def waiting_on_the_lock(url: str) -> int:
    """How many of this test's sessions (its schema is their application name) wait on an advisory lock."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND "
                           "wait_event_type = 'Lock' AND wait_event = 'advisory'", (schema_of(url),)
                           ).fetchone()
    return int(row[0]) if row else 0


def behind_the_lock(url: str, lock_key: int, calls: Sequence[Callable[[], None]]) -> None:
    """Run each of `calls` in a thread of its own while advisory lock `lock_key` (a store's write lock) is
    held, let it go once every one of them waits on it (so they contend by construction, not by luck),
    and wait for them to end."""
    with psycopg.connect(url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
        threads = [threading.Thread(target=call) for call in calls]
        for thread in threads:
            thread.start()
        wait_for(lambda: waiting_on_the_lock(url) == len(calls), within_s=10)
        holder.rollback()
    for thread in threads:
        thread.join(30)
