"""The PostgreSQL+PostGIS the PostGIS store's tests run on: one fresh schema per test.

The database is GEO_TEST_DATABASE_URL (default: the cluster `scripts/system-deps.sh` sets up on
loopback). Each test gets a schema of its own, `t_<hex>`, and a URL whose `search_path` starts with it
(PostGIS stays in `public`), so tests run side by side on one database and leave nothing behind: the
schema is dropped afterwards, with whatever connections a test left open. A schema, not a database:
creating a database takes a second, a schema a millisecond.

Without a reachable database the tests skip, saying how to get one; in CI (GEO_REQUIRE_ALL=1) they fail.
"""

from __future__ import annotations

import functools
import os
import secrets
import urllib.parse
from collections.abc import Iterator
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
