"""The PostGIS store's schema: versioned migrations, applied in order, each once.

Migrations are SQL files shipped with the package, `geo/store/migrations/NNNN_name.sql`, applied in the
order of NNNN, each in its own transaction, and recorded in `schema_migrations`. The runner holds a
session advisory lock (one per schema) while it works, so two servers starting at once on a new database
do not both apply the same migration. Objects are created unqualified: they land in the first schema of
the connection's `search_path` (tests give each test a schema of its own).

Also here, because `geo db` and the store both need them: connecting with a time limit, and a
database URL with its password masked (what logs and error messages show).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from geo.errors import StoreUnavailable

# NNNN_name.sql: the version (its number) and a name.
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_MASK = "***"
# The migration lock: one per schema (tests migrate their own schemas side by side).
_LOCK_KEY = sql.SQL("hashtext('geo.migrate.' || current_schema())")


@dataclass(frozen=True)
class Migration:
    """One migration file: its version number, its name and its SQL."""

    version: int
    name: str
    sql: str

    @property
    def label(self) -> str:
        """`NNNN_name`, as listed by `geo db status`."""
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class Status:
    """What a database holds: the migrations applied (with when) and those still to apply."""

    applied: list[tuple[Migration, datetime]]
    pending: list[Migration]


def migrations() -> list[Migration]:
    """Every migration shipped with the package, in order (a gap or a repeat in the numbers is a bug)."""
    found: list[Migration] = []
    for entry in resources.files("geo.store").joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"the migrations are not numbered 1..n: {[m.label for m in found]}")
    return found


def masked(url: str) -> str:
    """`url` (a postgresql:// URL or a key=value string) with its password replaced by ***."""
    if "://" in url:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            user, _, host = netloc.rpartition("@")
            if ":" in user:
                user = f"{user.split(':', 1)[0]}:{_MASK}"
            netloc = f"{user}@{host}"
        query = urllib.parse.urlencode(
            [(k, _MASK if k == "password" else v) for k, v in urllib.parse.parse_qsl(parts.query)],
            safe="*", quote_via=urllib.parse.quote)
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(an unreadable connection string)"
    if "password" in params:
        params["password"] = _MASK
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def scrub(text: str, url: str) -> str:
    """`text` (an error message) without the password of `url`, should it quote it."""
    try:
        password = conninfo_to_dict(url).get("password")
    except psycopg.ProgrammingError:
        return text
    return text.replace(str(password), _MASK) if password else text


def connect(url: str, timeout_s: float) -> psycopg.Connection[tuple[object, ...]]:
    """A connection (autocommit) to `url`, or StoreUnavailable naming the masked URL and the reason."""
    try:
        # libpq's connect_timeout is whole seconds, at least 2.
        return psycopg.connect(url, autocommit=True, connect_timeout=max(2, round(timeout_s)))
    except psycopg.Error as exc:
        raise StoreUnavailable(f"cannot connect to the PostGIS database {masked(url)}: "
                               f"{scrub(str(exc).strip(), url)}") from exc


def _applied(conn: psycopg.Connection[tuple[object, ...]]) -> dict[int, datetime]:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute("SELECT version, applied_at FROM schema_migrations").fetchall()
    return {int(str(v)): at for v, at in rows if isinstance(at, datetime)}


def status(conn: psycopg.Connection[tuple[object, ...]]) -> Status:
    """Which migrations the connection's schema has, and which it lacks."""
    done = _applied(conn)
    every = migrations()
    return Status([(m, done[m.version]) for m in every if m.version in done],
                  [m for m in every if m.version not in done])


def migrate(conn: psycopg.Connection[tuple[object, ...]]) -> list[Migration]:
    """Apply the pending migrations in order, each in a transaction; return those applied.

    `conn` must be in autocommit mode (each migration opens its own transaction). Holds the schema's
    migration lock throughout, so a concurrent runner waits and then finds nothing left to do.
    """
    if conn.execute("SELECT current_schema()").fetchone() in (None, (None,)):
        raise StoreUnavailable("no schema of the search_path exists in the database: create it first")
    conn.execute(sql.SQL("SELECT pg_advisory_lock({})").format(_LOCK_KEY))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                     "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        done = _applied(conn)
        applied: list[Migration] = []
        for migration in migrations():
            if migration.version in done:
                continue
            with conn.transaction():
                conn.execute(migration.sql.encode())  # several statements: no parameters
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                             (migration.version, migration.name))
            applied.append(migration)
        return applied
    finally:
        conn.execute(sql.SQL("SELECT pg_advisory_unlock({})").format(_LOCK_KEY))


def init(conn: psycopg.Connection[tuple[object, ...]]) -> list[Migration]:
    """Create the postgis extension where it is missing (when allowed), then migrate."""
    has = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'").fetchone()
    if has is None:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the postgis extension is not installed in this database and could not "
                                   f"be created ({str(exc).strip()}); ask its owner to run "
                                   "CREATE EXTENSION postgis") from exc
    return migrate(conn)
