"""The PostGIS store: projects in PostgreSQL, shared by any number of servers, read from memory.

- **Schema** (geo/store/migrations, applied at start-up by geo.store.migrate): `projects`, one row per
  feature with its exact JSON (`doc`), its geometry (SRID 4326, GiST index) and typed columns of the
  filterable fields for SQL and QGIS users; `project_changes`, one row per write; `store_meta`, the
  store's random id.
- **Writes** are one transaction each (`add_many` too: all its rows, a log row each, one NOTIFY), on a
  pooled connection. A transaction-level advisory lock (one per schema) comes first: writers are
  serialised, so change-log rows commit in the order of their `seq`, and a server that has read up to
  seq n never misses a smaller one later. `replace` and `delete`
  read the row `FOR UPDATE` and compare If-Match with its ETag inside the transaction
  (geo.store.base.check_write): two servers holding one ETag cannot both succeed. The row, its
  change-log row and a NOTIFY are committed together; then the writer brings its own snapshot up to
  that change before it returns, so a read after a write on the same server sees it.
- **Reads never touch the database.** Each server keeps the embedded store's in-memory table
  (FeatureTable), filled at start-up and updated with `FeatureTable.apply` from the change log: a
  listener thread LISTENs on its own connection and reads the log past the last seq applied when
  notified, and every `poll_s` when no notification comes (a missed notification costs at most that).
  The version is `<store id>.<last seq>`: the same on every server for the same state.
- **The record of changes** (geo.store.changes) is the same change log, kept for ever: each row also
  holds who (`by`, the key's name), its `kind` (create, update, status, delete, restore; rows from before
  migration 0002 have none and get theirs from `op` when read), and an add's Idempotency-Key (`idem`,
  scoped by the key's name) with its `request_hash`. `history`, `deleted`, `changes` and `seq_before`
  read it on a pooled connection (indexes on (fid, seq) and (at, seq)). A delete removes the row from
  `projects` only; `restore` re-inserts the fid's last logged document after the others, logged as an
  `add` (what other servers replay) of kind `restore`. `add` looks the key up (a partial index, the
  last IDEMPOTENCY_WINDOW_S of the database's clock) and refuses an id the log knows in the same
  statement as its insert, under the lock: two servers adding with one key store one project.
- **Outages.** A write that cannot reach the database is a DatabaseUnavailable (503, Retry-After);
  reads go on from the last snapshot. The pool checks a connection before lending it and replaces
  broken ones; the listener reconnects with a backoff and then reads every change it missed. At
  start-up an unreachable database, or a row that is not a feature, refuses the start. Passwords are
  masked in every message (geo.store.migrate.masked).
"""

from __future__ import annotations

import hashlib
import logging
import os
import select
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, cast

import orjson
import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from geo.errors import (
    Conflict,
    DatabaseUnavailable,
    NotFound,
    PreconditionFailed,
    StoreBusy,
    StoreCorrupt,
    StoreUnavailable,
    StoreWriteFailed,
)
from geo.query.featuretable import FeatureTable, to_day
from geo.schema import PROJECT_FILTERS, PROJECT_TEMPORAL
from geo.store import migrate
from geo.store.base import RETRY_AFTER_S, Feature, check_write
from geo.store.changes import IDEMPOTENCY_WINDOW_S, OPS, Change, Op, Replayed, WriteMeta, op_of, scoped_key
from geo.store.journal import checked, feature_fault
from geo.store.storefile import no_gc, project_table

__all__ = ["TYPED_COLUMNS", "PostGISStore"]

log = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[Any, ...]]
# The typed columns derived from each feature's properties, and their SQL types: the name and the
# filterable fields as text, the temporal fields as dates (tests/test_postgis.py compares them with the
# migration, so the schema and the table cannot drift apart).
TYPED_COLUMNS: dict[str, str] = {"name": "text", **dict.fromkeys(PROJECT_FILTERS, "text"),
                                 **dict.fromkeys(PROJECT_TEMPORAL or (), "date")}
# Rows read at a time at start-up (a server-side cursor: the whole store is never in memory as rows).
LOAD_BATCH = 2000
# The listener's reconnection backoff: from the first to the longest wait, in seconds. Short at the top,
# because the listener is also what notices that the database is back (see `_renew_pool`).
BACKOFF_S = (0.1, 1.0)

_GEOM = sql.SQL("ST_SetSRID(ST_Force2D(ST_GeomFromGeoJSON({})), 4326)")
_NAMES = sql.SQL(", ").join(sql.Identifier(c) for c in TYPED_COLUMNS)
_VALUES = sql.SQL(", ").join(sql.Placeholder() * len(TYPED_COLUMNS))
_SETS = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in TYPED_COLUMNS)
_INSERT = sql.SQL(
    "INSERT INTO projects (id, position, doc, geom, {names}) "
    "VALUES (%s, (SELECT coalesce(max(position), 0) + 1 FROM projects), %s::json, {geom}, {values}) "
    "ON CONFLICT (id) DO NOTHING RETURNING 1").format(names=_NAMES, values=_VALUES,
                                                      geom=_GEOM.format(sql.Placeholder()))
# The project an Idempotency-Key made within the window, and its request hash.
_SEEN = ("SELECT fid, request_hash FROM project_changes WHERE idem = %s "
         "AND at >= now() - make_interval(secs => %s) ORDER BY at DESC LIMIT 1")
# An add in one statement (one round trip): the Idempotency-Key looked up within the window (`seen`), and
# the row inserted only when the key was not seen and the id is neither a project nor in the change log
# (ids are never reused). Answers the project the key made (and its request hash), and whether it inserted.
_ADD = sql.SQL(
    "WITH seen AS (" + _SEEN + "), "
    "ins AS (INSERT INTO projects (id, position, doc, geom, {names}) "
    "SELECT %s, (SELECT coalesce(max(position), 0) + 1 FROM projects), %s::json, {geom}, {values} "
    "WHERE NOT EXISTS (SELECT 1 FROM seen) "
    "AND NOT EXISTS (SELECT 1 FROM project_changes WHERE fid = %s) "
    "ON CONFLICT (id) DO NOTHING RETURNING 1) "
    "SELECT (SELECT fid FROM seen), (SELECT request_hash FROM seen), EXISTS (SELECT 1 FROM ins)"
).format(names=_NAMES, values=_VALUES, geom=_GEOM.format(sql.Placeholder()))
_UPDATE = sql.SQL(
    "UPDATE projects SET doc = %s::json, geom = {geom}, {sets}, row_version = row_version + 1, "
    "updated_at = clock_timestamp() WHERE id = %s").format(sets=_SETS, geom=_GEOM.format(sql.Placeholder()))
# The change-log row and its notification in one statement (one round trip).
_LOG = sql.SQL(
    "WITH c AS (INSERT INTO project_changes (op, fid, doc, by, kind, idem, request_hash) "
    "VALUES (%s, %s, %s::json, %s, %s, %s, %s) RETURNING seq, at) "
    "SELECT seq, at, pg_notify(%s, seq::text) FROM c")
_CHANGES = "SELECT seq, at, fid, doc::text FROM project_changes WHERE seq > %s ORDER BY seq"
# A change's kind (geo.store.changes.Op). Rows written before migration 0002 have none: it is derived from
# `op`, a replace being a `status` change when the status differs from the fid's change before it (what
# op_of decides for new rows; a correlated lookup on the (fid, seq) index, for old rows only).
_KIND = ("coalesce(c.kind, CASE c.op WHEN 'add' THEN 'create' WHEN 'delete' THEN 'delete' "
         "ELSE CASE WHEN (SELECT p.doc->'properties'->>'status' FROM project_changes p "
         "WHERE p.fid = c.fid AND p.seq < c.seq ORDER BY p.seq DESC LIMIT 1) "
         "IS DISTINCT FROM c.doc->'properties'->>'status' THEN 'status' ELSE 'update' END END)")
_RECORD = f"SELECT c.seq, c.at, {_KIND}, c.fid, c.by, c.doc::text FROM project_changes c"


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _day(value: object) -> date | None:
    """A date property's day as the service reads it for `datetime` filters (geo.query.featuretable
    to_day: a datetime's UTC day); None when it is missing or not a date."""
    day: date | None = to_day(value).astype("datetime64[D]").item()
    return day


def _typed(feature: Feature) -> list[object]:
    """The typed columns' values of a feature, in TYPED_COLUMNS' order."""
    props = feature["properties"]
    return [_day(props.get(c)) if kind == "date" else _text(props.get(c))
            for c, kind in TYPED_COLUMNS.items()]


def _parsed(doc: str, where: str) -> Feature:
    """A row's or a change's feature, checked as a store file's are; StoreCorrupt says where and why."""
    try:
        feature = orjson.loads(doc)
    except orjson.JSONDecodeError as exc:
        raise StoreCorrupt(f"{where}: not valid JSON ({exc})") from exc
    fault = feature_fault(feature)
    if fault is not None:
        raise StoreCorrupt(f"{where}: the feature {fault}")
    result: Feature = feature
    return result


def _reason(exc: BaseException, url: str) -> str:
    """An error's message on one line, without the password of `url`."""
    return migrate.scrub(" ".join(str(exc).split()) or type(exc).__name__, url)


def _when(at: datetime | None) -> datetime | None:
    return None if at is None else at.astimezone(UTC)


@dataclass(frozen=True)
class _State:
    """What reads see: the table, and the last change-log seq applied to it."""

    table: FeatureTable
    applied: int


@dataclass(frozen=True)
class _Logged:
    """What a write logs: the replay op (add, replace, delete), the change's kind (geo.store.changes.Op),
    the document, the feature as stored, and an add's Idempotency-Key (scoped) with its request hash."""

    op: str
    kind: Op
    doc: str | None
    feature: Feature | None
    idem: str | None = None
    request_hash: str | None = None


def _change(row: tuple[Any, ...], where: str) -> Change:
    """A change-log row of `_RECORD` as a Change; StoreCorrupt when its kind or document is not one."""
    seq, at, kind, fid, by, doc = row
    if kind not in OPS:
        raise StoreCorrupt(f"{where}: change {seq} has the kind {kind!r}")
    feature = None if doc is None else _parsed(doc, f"{where}: change {seq}")
    return Change(int(seq), at.astimezone(UTC), cast(Op, kind), str(fid), _text(by), feature)


class PostGISStore:
    """A `ProjectStore` in a PostgreSQL+PostGIS database, shared by any number of servers."""

    editable = True

    def __init__(self, url: str, *, lock_timeout_s: float = 10.0, pool_max: int = 4, poll_s: float = 0.5,
                 connect_timeout_s: float = 5.0) -> None:
        """Connect, migrate the schema, read every project, and start following the change log.

        Raises StoreUnavailable (the database cannot be reached or set up: the masked URL and why) or
        StoreCorrupt (a row or change is not a feature: which one and why).
        """
        self.url = url
        self.where = migrate.masked(url)
        self.lock_timeout_s = lock_timeout_s
        self.poll_s = poll_s
        self.connect_timeout_s = connect_timeout_s
        self._apply_lock = threading.Lock()  # one catch-up at a time: each installs on the last one
        self._stop = threading.Event()
        self._closed = False
        try:
            with migrate.connect(url, connect_timeout_s) as conn:
                migrate.migrate(conn)
                schema, store_id = self._identity(conn)
                self._state = self._read_all(conn, store_id)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the PostGIS database {self.where} could not be set up: "
                                   f"{_reason(exc, url)} (is the postgis extension "
                                   "installed? `geo db init` creates it)") from exc
        self.schema, self.store_id = schema, store_id
        # Per schema: the servers of one store share the lock and the channel, other stores do not.
        digest = hashlib.blake2b(f"geo.projects.{schema}".encode(), digest_size=8).digest()
        self.lock_key = int.from_bytes(digest, "big", signed=True)
        # A channel name is at most 63 bytes: a long schema name is replaced by its digest.
        channel = f"geo_projects_{schema}"
        self.channel = channel if len(channel.encode()) <= 63 else f"geo_projects_{digest.hex()}"
        self.pool_max = pool_max
        self._pool = self._new_pool()
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout as exc:
            self._pool.close()
            raise StoreUnavailable(f"the PostGIS database {self.where} accepted no pooled connection within "
                                   f"{connect_timeout_s:g} s") from exc
        self._wake_r, self._wake_w = os.pipe()
        self._listener = threading.Thread(target=self._listen, name=f"geo-listen-{schema}", daemon=True)
        self._listener.start()

    # --- connections ---

    def _new_pool(self) -> ConnectionPool[Conn]:
        """A pool of write connections (not yet open), each checked before it is lent."""
        return ConnectionPool(
            self.url, min_size=1, max_size=self.pool_max, open=False, name=f"geo-{self.schema}",
            kwargs={"autocommit": True, "connect_timeout": max(2, round(self.connect_timeout_s))},
            configure=self._configure, check=ConnectionPool.check_connection, timeout=self.connect_timeout_s)

    def _renew_pool(self) -> None:
        """Swap in a fresh pool once the listener finds the database back after an outage.

        psycopg_pool retries a lost connection after 1 s, 2 s, 4 s... with no cap, so after an outage of
        40 s the old pool would keep writes at 503 for about 20 s more (measured); a new pool connects
        at once. Writes waiting on the old pool get PoolClosed (a 503, as they would have anyway);
        connections still lent from it are closed when they come back.
        """
        fresh = self._new_pool()
        fresh.open(wait=False)
        old, self._pool = self._pool, fresh
        old.close(timeout=0)

    def _configure(self, conn: Conn) -> None:
        # Past this a waiting lock raises LockNotAvailable: the write answers StoreBusy.
        timeout = sql.Literal(f"{int(self.lock_timeout_s * 1000)}ms")
        conn.execute(sql.SQL("SET lock_timeout = {}").format(timeout))

    @staticmethod
    def _identity(conn: Conn) -> tuple[str, str]:
        row = conn.execute("SELECT current_schema(), (SELECT value FROM store_meta WHERE key = 'store_id')"
                           ).fetchone()
        if row is None or row[1] is None:
            raise StoreCorrupt("the store_meta table has no store_id")
        return str(row[0]), str(row[1])

    def _version(self, seq: int) -> str:
        return f"{self.store_id[:8]}.{seq}"

    def _unavailable(self, exc: BaseException) -> DatabaseUnavailable:
        return DatabaseUnavailable(
            f"The project database cannot be reached ({_reason(exc, self.url)}); nothing was written. Reads "
            "go on from the last copy this server holds. Try again shortly.",
            headers={"Retry-After": RETRY_AFTER_S})

    def _uncertain(self, exc: BaseException) -> DatabaseUnavailable:
        return DatabaseUnavailable(
            f"The connection to the project database was lost while the write was committed "
            f"({_reason(exc, self.url)}), so whether it was stored is not known: read the project before "
            "trying again. Reads go on from the last copy this server holds.",
            headers={"Retry-After": RETRY_AFTER_S})

    def _busy(self) -> StoreBusy:
        return StoreBusy(f"Another write held the project store for more than {self.lock_timeout_s:g} s; "
                         "nothing was changed. Try again shortly.", headers={"Retry-After": RETRY_AFTER_S})

    @contextmanager
    def _connection(self, reading: bool = False) -> Iterator[Conn]:
        """A pooled connection; the database's failures as the store's errors (503s). `reading`: for a
        read of the change log (the messages do not speak of a write)."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.errors.LockNotAvailable as exc:  # an OperationalError: first
            raise self._busy() from exc
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout, PoolClosed) as exc:
            if reading:
                raise DatabaseUnavailable(
                    f"The project database cannot be reached ({_reason(exc, self.url)}), so the record of "
                    "changes cannot be read. Try again shortly.", headers={"Retry-After": RETRY_AFTER_S}
                ) from exc
            raise self._unavailable(exc) from exc
        except psycopg.Error as exc:
            # The database refused a statement (a geometry PostGIS will not read?): the service's bug or
            # the database's state, not the client's; nothing was written.
            what = "a read of the record of changes" if reading else "a write"
            log.error("the PostGIS database %s refused %s: %s", self.where, what, _reason(exc, self.url))
            if reading:
                raise StoreWriteFailed(f"The project database refused to read the record of changes "
                                       f"({_reason(exc, self.url)}). Tell the operator.") from exc
            raise StoreWriteFailed(f"The project database refused the write ({_reason(exc, self.url)}); "
                                   "nothing was changed. Tell the operator.") from exc

    # --- reading ---

    def _read_all(self, conn: Conn, store_id: str) -> _State:
        """Every project, in order, and the last seq, as of one snapshot of the database."""
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            last = conn.execute("SELECT seq, at FROM project_changes ORDER BY seq DESC LIMIT 1").fetchone()
            seq, at = (0, None) if last is None else (int(last[0]), last[1])
            if at is None:
                at = (conn.execute("SELECT max(updated_at) FROM projects").fetchone() or (None,))[0]
            with conn.cursor(name="geo_projects_load") as cur, no_gc():
                cur.itersize = LOAD_BATCH
                cur.execute("SELECT id, position, doc::text FROM projects ORDER BY position")
                features = (_parsed(doc, f"{self.where}: projects row {fid!r} (position {pos})")
                            for fid, pos, doc in cur)
                table = project_table(features, f"{store_id[:8]}.{seq}", _when(at))
        finally:
            with suppress(psycopg.Error):  # read only: what matters was read, or has failed already
                conn.execute("COMMIT")
        return _State(table, seq)

    def _catch_up(self, conn: Conn) -> FeatureTable:
        """Apply the changes past the last one applied, in order, and install the new table."""
        with self._apply_lock:
            s = self._state
            rows = conn.execute(_CHANGES, (s.applied,)).fetchall()
            if not rows:
                return s.table
            changes = [(str(fid), None if doc is None else _parsed(doc, f"{self.where}: change {seq}"))
                       for seq, _at, fid, doc in rows]
            last, at = int(rows[-1][0]), rows[-1][1]
            try:
                table = s.table.apply(changes, version=self._version(last), modified=_when(at))
            except (KeyError, ValueError) as exc:
                # The log does not fit the table (rows edited by hand?): read everything again.
                log.warning("the change log of %s does not fit this server's table (%r); re-reading the "
                            "store", self.where, exc)
                self._state = self._read_all(conn, self.store_id)
                return self._state.table
            self._state = _State(table, last)
            return table

    def _own_change(self, conn: Conn, seq: int, at: datetime, change: tuple[str, Feature | None]) -> None:
        """After a write committed as `seq`: bring the table up to it (the write applied without a query
        when no other change came in between; else the log read), so a read after it sees it."""
        self._own_changes(conn, seq, seq, at, [change])

    def _own_changes(self, conn: Conn, first: int, last: int, at: datetime,
                     changes: list[tuple[str, Feature | None]]) -> None:
        """After a write committed as seqs `first`..`last` (one per change): bring the table up to it,
        as one version (`_own_change`)."""
        with self._apply_lock:
            s = self._state
            if s.applied >= last:
                return  # the listener was quicker
            if s.applied == first - 1 and last - first + 1 == len(changes):
                table = s.table.apply(changes, version=self._version(last), modified=_when(at))
                self._state = _State(table, last)
                return
        self._quietly_catch_up(conn)  # the write is committed: a failure here is the listener's to mend

    def _quietly_catch_up(self, conn: Conn) -> None:
        """Catch up, logging (not raising) a failure: the caller has a result or an error of its own."""
        try:
            self._catch_up(conn)
        except (psycopg.Error, StoreCorrupt) as exc:
            log.warning("this server's table could not be brought up to date: %s", _reason(exc, self.url))

    def stale(self) -> bool:
        """Always False: the listener thread keeps the snapshot current, no request needs to."""
        return False

    def refresh(self) -> FeatureTable:
        """Read the change log now (blocking) and return the snapshot; the last one when unreachable."""
        try:
            with self._connection() as conn:
                return self._catch_up(conn)
        except (StoreWriteFailed, StoreBusy, StoreCorrupt) as exc:
            log.warning("the project store could not be re-read; serving the last snapshot: %s", exc)
            return self._state.table

    def snapshot(self) -> FeatureTable:
        """The last table installed; never waits, never touches the database."""
        return self._state.table

    # --- following other servers ---

    def _listen(self) -> None:
        """The listener thread: LISTEN, and read the log when notified or every `poll_s`; reconnect
        with a backoff when the database goes away, then read everything missed."""
        conn: Conn | None = None
        delay, down, corrupt = BACKOFF_S[0], False, ""
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = migrate.connect(self.url, self.connect_timeout_s)
                    conn.add_notify_handler(lambda _n: None)  # delivered while a query runs; nothing kept
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self._catch_up(conn)
                    if down:
                        self._renew_pool()
                        log.warning("the PostGIS database %s answers again; changes followed", self.where)
                    delay, down = BACKOFF_S[0], False
                ready, _, _ = select.select([conn.fileno(), self._wake_r], [], [], self.poll_s)
                if self._wake_r in ready:
                    break
                self._catch_up(conn)  # notified, or the poll: either way, whatever is past the last seq
            except (psycopg.Error, StoreUnavailable, OSError, ValueError) as exc:
                if not down and not self._stop.is_set():
                    log.warning("lost the PostGIS database %s (%s); reads go on from the last snapshot, "
                                "reconnecting", self.where, _reason(exc, self.url))
                down = True
                conn = self._discard(conn)
                self._stop.wait(delay)
                delay = min(delay * 2, BACKOFF_S[1])
            except StoreCorrupt as exc:
                if str(exc) != corrupt:  # once per fault, not once per poll
                    corrupt = str(exc)
                    log.error("a change could not be applied; serving the last snapshot until it is "
                              "fixed: %s", exc)
                self._stop.wait(self.poll_s)
        self._discard(conn)

    @staticmethod
    def _discard(conn: Conn | None) -> None:
        if conn is not None:
            with suppress(psycopg.Error):
                conn.close()

    # --- writing ---

    def _write(self, fid: str, write: Callable[[Conn], _Logged], meta: WriteMeta | None) -> _Logged:
        """One transaction: the lock, `write` (which checks, writes the row and says what to log), the
        log row (with `meta.by`) and its NOTIFY; then this server's table brought up to it.

        In pipeline mode: statements go out without waiting for each other's answers, so a write costs
        two round trips (the lock with the row's first statement, whose answer `write` needs; the rest
        with the COMMIT), not one per statement (a bare three-statement transaction on loopback took
        0.7 ms so, 2.4 ms without).
        """
        with self._connection() as conn:
            committing = False
            try:
                with conn.pipeline(), conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key,))
                    done = write(conn)
                    logged = conn.execute(_LOG, (done.op, fid, done.doc, meta.by if meta else None, done.kind,
                                                 done.idem, done.request_hash, self.channel))
                    committing = True
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if committing:  # the COMMIT went out: the database may have done it before it went away
                    raise self._uncertain(exc) from exc
                raise
            except (PreconditionFailed, NotFound, Conflict, Replayed, ValueError):
                # As the file store does: the version this write collided with is installed before the
                # error goes up, so a caller that reads again (the PUT/PATCH route's retry; a replayed
                # POST reading the project another server made) builds on it, not on a stale snapshot.
                self._quietly_catch_up(conn)
                raise
            row = logged.fetchone()  # answered with the COMMIT
            assert row is not None
            self._own_change(conn, int(row[0]), row[1], (fid, done.feature))
        return done

    def _columns(self, feature: Feature) -> list[object]:
        return [orjson.dumps(feature["geometry"]).decode(), *_typed(feature)]

    def add(self, feature: Feature, meta: WriteMeta | None = None) -> Feature:
        """Append a new feature (see `ProjectStore.add`: Replayed, StoreBusy, StoreWriteFailed, ValueError).

        The Idempotency-Key lookup, the known-id test and the insert are one statement under the lock:
        two servers adding with one key at once store one project (the second finds the first's row).
        """
        fid = feature["id"]
        doc = orjson.dumps(feature).decode()
        idem = scoped_key(meta)
        request_hash = meta.request_hash if meta is not None and idem is not None else None

        def insert(conn: Conn) -> _Logged:
            row = conn.execute(_ADD, (idem, IDEMPOTENCY_WINDOW_S, fid, doc, *self._columns(feature), fid)
                               ).fetchone()
            assert row is not None
            if row[0] is not None:
                raise Replayed(str(row[0]), _text(row[1]))
            if not row[2]:
                raise ValueError(f"id {fid!r} exists or existed (ids are never reused)")
            return _Logged("add", "create", doc, feature, idem, request_hash)

        self._write(fid, insert, meta)
        return feature

    def idempotent(self, meta: WriteMeta) -> Replayed | None:
        """What `add` with `meta` would raise as Replayed now, else None (a read, without the lock)."""
        idem = scoped_key(meta)
        if idem is None:
            return None
        with self._connection(reading=True) as conn:
            row = conn.execute(_SEEN, (idem, IDEMPOTENCY_WINDOW_S)).fetchone()
        return None if row is None else Replayed(str(row[0]), _text(row[1]))

    def _current(self, conn: Conn, fid: str) -> Feature | None:
        """The row of `fid` as it is now, locked until the transaction ends (None: there is none)."""
        row = conn.execute("SELECT doc::text FROM projects WHERE id = %s FOR UPDATE", (fid,)).fetchone()
        if row is None:
            return None
        return self._writable(row[0], f"{self.where}: projects row {fid!r}")

    @staticmethod
    def _writable(doc: str, where: str) -> Feature:
        """`doc` parsed; a StoreWriteFailed when it is not a feature (the write is refused)."""
        try:
            return _parsed(doc, where)
        except StoreCorrupt as exc:
            log.error("a write was refused: %s", exc)  # which row and why, for the operator only
            raise StoreWriteFailed("The project's row in the database is not a feature, so it was not "
                                   "overwritten. Nothing was changed; tell the operator.") from exc

    def replace(self, fid: str, feature: Feature, if_match: str | None = None,
                meta: WriteMeta | None = None) -> Feature:
        """Replace one feature in place (see `ProjectStore.replace`); If-Match is compared with the row
        as it is inside the transaction, locked, and the change's kind (`status` or `update`) decided
        from that row."""
        if feature.get("id") != fid:
            raise ValueError(f"a replacement for {fid!r} has the id {feature.get('id')!r}")
        doc = orjson.dumps(feature).decode()

        def update(conn: Conn) -> _Logged:
            before = check_write(fid, self._current(conn, fid), if_match)
            conn.execute(_UPDATE, (doc, *self._columns(feature), fid))
            return _Logged("replace", op_of(before, feature), doc, feature)

        self._write(fid, update, meta)
        return feature

    def delete(self, fid: str, if_match: str | None = None, meta: WriteMeta | None = None) -> None:
        """Remove one feature (see `ProjectStore.delete`); If-Match compared inside the transaction. The
        change log keeps it: `deleted`, `history` and `restore` read it there."""

        def remove(conn: Conn) -> _Logged:
            check_write(fid, self._current(conn, fid), if_match)
            conn.execute("DELETE FROM projects WHERE id = %s", (fid,))
            return _Logged("delete", "delete", None, None)

        self._write(fid, remove, meta)

    def restore(self, fid: str, meta: WriteMeta | None = None) -> Feature:
        """Bring deleted `fid` back as its last logged version, after the others (see
        `ProjectStore.restore`: NotFound, Conflict, StoreBusy, StoreWriteFailed); logged as an `add` (what
        other servers replay) of kind `restore`."""

        def bring_back(conn: Conn) -> _Logged:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM projects WHERE id = %s), (SELECT doc::text FROM "
                "project_changes WHERE fid = %s AND doc IS NOT NULL ORDER BY seq DESC LIMIT 1)",
                (fid, fid)).fetchone()
            assert row is not None
            if row[0]:
                raise Conflict(f"Project {fid!r} is not deleted, so there is nothing to restore.")
            if row[1] is None:
                raise NotFound(f"There is no project {fid!r}, and there never was.")
            doc = str(row[1])
            feature = self._writable(doc, f"{self.where}: the last change of {fid!r}")
            conn.execute(_INSERT, (fid, doc, *self._columns(feature)))
            return _Logged("add", "restore", doc, feature)

        done = self._write(fid, bring_back, meta)
        assert done.feature is not None
        return done.feature

    def _stage(self, conn: Conn, features: Iterable[Feature]) -> int:
        """In the caller's transaction: `features` COPYed, checked as they go (ValueError: an item is no
        feature, or an id repeats), into `geo_load`, a temporary table dropped at commit; return how many.
        Its `position` counts from 1, in their order."""
        typed = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
                                   for c, t in TYPED_COLUMNS.items())
        conn.execute(sql.SQL("CREATE TEMP TABLE geo_load (position bigint, id text, doc text, "
                             "geojson text, {}) ON COMMIT DROP").format(typed))
        count = 0
        with conn.cursor().copy(sql.SQL("COPY geo_load (position, id, doc, geojson, {}) FROM STDIN"
                                        ).format(_NAMES)) as copy:
            for feature in checked(features):
                count += 1
                doc = orjson.dumps(feature).decode()
                copy.write_row((count, feature["id"], doc, *self._columns(feature)))
        return count

    def load(self, features: Iterable[Feature]) -> int:
        """Store `features` (ids and order kept) into this EMPTY store in one transaction; return how
        many. Raises ValueError when the store is not empty, an id repeats, an id is in the change log
        (a deleted project's: ids are never reused) or an item is no feature (then nothing is stored).
        COPY into a staging table, then one INSERT..SELECT, and one change-log `create` per feature, so
        that the log replays to the table and each project's history starts."""
        with self._connection() as conn:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key,))
                if (conn.execute("SELECT EXISTS (SELECT 1 FROM projects)").fetchone() or (False,))[0]:
                    raise ValueError(f"the PostGIS store {self.where} is not empty: a load fills an empty "
                                     "one")
                count = self._stage(conn, features)
                self._refuse_known(conn)
                conn.execute(sql.SQL("INSERT INTO projects (id, position, doc, geom, {names}) SELECT id, "
                                     "position, doc::json, {geom}, {names} FROM geo_load ORDER BY position"
                                     ).format(names=_NAMES, geom=_GEOM.format(sql.Identifier("geojson"))))
                conn.execute("INSERT INTO project_changes (op, fid, doc, kind) "
                             "SELECT 'add', id, doc::json, 'create' FROM geo_load ORDER BY position")
                conn.execute("SELECT pg_notify(%s, 'load')", (self.channel,))
            self._quietly_catch_up(conn)  # the load is committed: a failure here is the listener's to mend
        return count

    @staticmethod
    def _refuse_known(conn: Conn) -> None:
        """ValueError when an id staged in `geo_load` is a project's or is in the change log (a deleted
        project's id is never used again)."""
        taken = conn.execute(
            "SELECT g.id FROM geo_load g WHERE EXISTS (SELECT 1 FROM projects p WHERE p.id = g.id) "
            "OR EXISTS (SELECT 1 FROM project_changes c WHERE c.fid = g.id) ORDER BY g.position LIMIT 1"
        ).fetchone()
        if taken is not None:
            raise ValueError(f"id {taken[0]!r} exists or existed (ids are never reused)")

    def add_many(self, features: Sequence[Feature], meta: WriteMeta | None = None) -> list[Feature]:
        """Append new features, in order, in one transaction (see `ProjectStore.add_many`: all or none;
        StoreBusy, DatabaseUnavailable, StoreWriteFailed, ValueError when an id exists, existed or
        repeats); each logged as a `create` by `meta.by`.

        The advisory lock, the rows COPYed into a staging table and inserted after the others, one
        change-log `add` per feature and one NOTIFY; committed together, so another server reads the
        whole batch from the log or none of it. Then this server's table is brought up to it.
        """
        batch = list(checked(features))  # checked before the database: a bad one writes nothing
        if not batch:
            return []
        with self._connection() as conn:
            committing = False
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key,))
                    self._stage(conn, batch)
                    self._refuse_known(conn)
                    conn.execute(sql.SQL(
                        "INSERT INTO projects (id, position, doc, geom, {names}) SELECT id, position + "
                        "(SELECT coalesce(max(position), 0) FROM projects), doc::json, {geom}, {names} "
                        "FROM geo_load ORDER BY position"
                    ).format(names=_NAMES, geom=_GEOM.format(sql.Identifier("geojson"))))
                    logged = conn.execute(
                        "WITH c AS (INSERT INTO project_changes (op, fid, doc, by, kind) SELECT 'add', id, "
                        "doc::json, %s, 'create' FROM geo_load ORDER BY position RETURNING seq, at) "
                        "SELECT min(seq), max(seq), (array_agg(at ORDER BY seq DESC))[1], "
                        "pg_notify(%s, max(seq)::text) FROM c",
                        (meta.by if meta else None, self.channel)).fetchone()
                    committing = True
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if committing:  # the COMMIT went out: the database may have done it (all of it)
                    raise self._uncertain(exc) from exc
                raise
            except ValueError:
                self._quietly_catch_up(conn)  # as a refused single write: install what it collided with
                raise
            assert logged is not None
            first, last, at = int(logged[0]), int(logged[1]), logged[2]
            self._own_changes(conn, first, last, at, [(f["id"], f) for f in batch])
        return batch

    # --- the record of changes ---

    def _record(self, query: str, params: tuple[object, ...]) -> list[Change]:
        """The changes `_RECORD` + `query` selects, on a pooled connection (DatabaseUnavailable: 503)."""
        with self._connection(reading=True) as conn:
            rows = conn.execute(f"{_RECORD} {query}".encode(), params).fetchall()
        return [_change(row, self.where) for row in rows]

    def changes(self, since: int = 0, limit: int = 100) -> list[Change]:
        """Up to `limit` changes with `seq > since`, in order (see `ProjectStore.changes`)."""
        return self._record("WHERE c.seq > %s ORDER BY c.seq LIMIT %s", (since, limit))

    def seq_before(self, at: datetime) -> int:
        """The last seq logged before `at` (naive: UTC), 0 when none (see `ProjectStore.seq_before`).
        Writers log under the advisory lock with the clock's time, so `at` grows with `seq`: one probe
        of the (at, seq) index."""
        if at.tzinfo is None:  # else the session's time zone would be assumed
            at = at.replace(tzinfo=UTC)
        with self._connection(reading=True) as conn:
            row = conn.execute("SELECT seq FROM project_changes WHERE at < %s ORDER BY at DESC, seq DESC "
                               "LIMIT 1", (at,)).fetchone()
        return 0 if row is None else int(row[0])

    def history(self, fid: str) -> list[Change]:
        """Every logged change of `fid`, in order; empty when it never existed."""
        return self._record("WHERE c.fid = %s ORDER BY c.seq", (fid,))

    def deleted(self, fid: str) -> Change | None:
        """The change that deleted `fid` when its last change is a delete, else None."""
        last = self._record("WHERE c.fid = %s ORDER BY c.seq DESC LIMIT 1", (fid,))
        return last[0] if last and last[0].op == "delete" else None

    def close(self) -> None:
        """Stop the listener and close the pool (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        os.write(self._wake_w, b"x")
        self._listener.join(timeout=10)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._pool.close()
