"""The embedded store's ledger: every change ever made, kept for ever in an SQLite database beside the
store file (`projects.geojson.ledger.sqlite` for `projects.geojson`).

The journal (geo.store.journal) is folded into the store file by each compaction; the ledger is what
outlives it: the source of a project's history, the changes feed, soft delete (a deleted project's last
version) and idempotent adds. One row per change:

    seq (1, 2, 3... in commit order, no gaps) | at_ms | op | fid | by | idem | request_hash | doc

`doc` is the feature after the change (NULL for a delete); `idem` is the scoped Idempotency-Key
(geo.store.changes.scoped_key), `request_hash` the digest of the request that sent it.

Why SQLite (the standard library's sqlite3): the ledger must be durable (synchronous=FULL), shared by
several processes (SQLite's own file locking lets readers in other processes read while one writes),
indexed (a project's history, an idempotency key and a time are found without reading everything) and
append-only for ever, which a JSON-lines file would give only with an index of its own; and it adds no
dependency. The rollback journal (journal_mode=DELETE), not WAL: WAL's `-shm` file is written by
readers, and a read must change nothing in the store's folder.

Rules kept by the store (geo.store.geojson_file): every write to the ledger happens under the store's
write lock, after the journal line that holds the same changes (with their seqs) was flushed. The
journal line is the point of acknowledgement; a crash between the two leaves the ledger behind the
journal, and `catch_up` (under the lock, before every write, at open and before a compaction folds the
journal) inserts what it lacks.
"""

from __future__ import annotations

import contextlib
import sqlite3
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson

from geo.errors import StoreCorrupt
from geo.store.changes import Change, Op
from geo.store.journal import Record

# The project an add with a scoped Idempotency-Key made within the window (read by both connections).
_SEEN = "SELECT fid, request_hash FROM changes WHERE idem = ? AND at_ms >= ? ORDER BY seq DESC LIMIT 1"
# PRAGMA user_version of the schema this module writes (0: a new, empty database).
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE changes (
    seq INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    op TEXT NOT NULL,
    fid TEXT NOT NULL,
    by TEXT,
    idem TEXT,
    request_hash TEXT,
    doc TEXT
);
CREATE INDEX changes_fid ON changes (fid);
CREATE INDEX changes_idem ON changes (idem) WHERE idem IS NOT NULL;
CREATE INDEX changes_at ON changes (at_ms);
PRAGMA user_version = 1;
"""
_COLUMNS = "seq, at_ms, op, fid, by, doc"
_INSERT = "INSERT INTO changes (seq, at_ms, op, fid, by, idem, request_hash, doc) VALUES (?,?,?,?,?,?,?,?)"
# How long a reader or the writer waits for the other's lock on the database (it is held for one commit).
BUSY_TIMEOUT_S = 10.0
# Ids asked about per query (SQLite's limit on host parameters is at least 999).
_CHUNK = 500


def disk_full(exc: sqlite3.Error) -> bool:
    """Whether SQLite failed because the disk (or the quota) is full."""
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)


def ledger_path(target: Path) -> Path:
    """The ledger of the store file `target` (its real path, not a symlink): beside it."""
    return target.parent / f"{target.name}.ledger.sqlite"


@dataclass(frozen=True)
class Row:
    """One change to insert: what a journal line holds for one project."""

    seq: int
    at_ms: int
    op: Op
    fid: str
    by: str | None
    idem: str | None
    request_hash: str | None
    feature: dict[str, Any] | None

    def values(self) -> tuple[object, ...]:
        """The INSERT's parameters."""
        doc = None if self.feature is None else orjson.dumps(self.feature).decode()
        return (self.seq, self.at_ms, self.op, self.fid, self.by, self.idem, self.request_hash, doc)


def rows_of(records: Iterable[Record]) -> Iterator[Row]:
    """The ledger's rows of journal records (those written before the ledger, without a seq, have none)."""
    for rec in records:
        meta = rec.meta
        if meta is None:
            continue
        op: Op
        if rec.op == "delete":
            op = "delete"
        elif rec.op == "add":
            op = "restore" if meta.as_op == "restore" else "create"
        else:
            op = "status" if meta.as_op == "status" else "update"
        yield Row(meta.seq, rec.at_ms, op, rec.fid, meta.by, meta.idem, meta.rh, rec.feature)


def _change(row: tuple[Any, ...]) -> Change:
    seq, at_ms, op, fid, by, doc = row
    return Change(seq=seq, at=datetime.fromtimestamp(at_ms / 1000, UTC), op=cast(Op, op), fid=fid, by=by,
                  feature=None if doc is None else orjson.loads(doc))


def _corrupt(path: Path, reason: object) -> StoreCorrupt:
    return StoreCorrupt(f"{path}: the ledger of changes cannot be read ({reason}). Nothing was overwritten; "
                        "restore it from a backup (the store keeps its history there and will not start "
                        "without it).")


def _check_schema(conn: sqlite3.Connection, path: Path) -> bool:
    """Whether the database holds the ledger's table (False: a new, empty database); StoreCorrupt when it
    is not SQLite or holds something else."""
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if version == 0 and tables == 0:
            return False
        if version != SCHEMA_VERSION:
            raise _corrupt(path, f"schema version {version}, this version reads {SCHEMA_VERSION}")
        conn.execute("SELECT seq, at_ms, op, fid, by, idem, request_hash, doc FROM changes LIMIT 0")
    except sqlite3.DatabaseError as exc:
        raise _corrupt(path, exc) from exc
    return True


class Reader:
    """Reads of the ledger: a connection per call (sqlite3 connections are not shared between threads),
    read-only, so that a read writes nothing. A ledger that does not exist yet reads as empty."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection | None]:
        try:
            conn = sqlite3.connect(self._uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.OperationalError:
            if not self.path.exists():
                yield None  # no ledger yet (a store never written, in a folder not writable)
                return
            raise
        with closing(conn):
            yield conn

    def check(self) -> None:
        """StoreCorrupt when the ledger exists and is not one."""
        with self._conn() as conn:
            if conn is not None:
                _check_schema(conn, self.path)

    def _query(self, sql: str, args: Sequence[object]) -> list[tuple[Any, ...]]:
        with self._conn() as conn:
            if conn is None:
                return []
            try:
                return conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []  # created, not yet given its table, by a writer starting now
                raise

    def tip(self) -> int:
        """The last seq recorded (0 when none)."""
        rows = self._query("SELECT coalesce(max(seq), 0) FROM changes", ())
        return int(rows[0][0]) if rows else 0

    def changes(self, since: int, limit: int) -> list[Change]:
        """Up to `limit` changes with seq > `since`, in order."""
        rows = self._query(f"SELECT {_COLUMNS} FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
                           (since, limit))
        return [_change(r) for r in rows]

    def seq_before(self, at: datetime) -> int:
        """The last seq recorded before `at` (0: none). Times never go back along the seqs (the store
        makes each one at least the one before), so this is an index lookup."""
        at_ms = int(at.timestamp() * 1000)
        rows = self._query("SELECT seq FROM changes WHERE at_ms < ? ORDER BY at_ms DESC, seq DESC LIMIT 1",
                           (at_ms,))
        return int(rows[0][0]) if rows else 0

    def history(self, fid: str) -> list[Change]:
        """Every change of `fid`, in order."""
        rows = self._query(f"SELECT {_COLUMNS} FROM changes WHERE fid = ? ORDER BY seq", (fid,))
        return [_change(r) for r in rows]

    def idempotent(self, idem: str, not_before_ms: int) -> tuple[str, str | None] | None:
        """The project (and request hash) an add with scoped key `idem` made at or after `not_before_ms`."""
        rows = self._query(_SEEN, (idem, not_before_ms))
        return (str(rows[0][0]), rows[0][1]) if rows else None

    def last(self, fid: str) -> Change | None:
        """The last change of `fid` (None: it never existed)."""
        rows = self._query(f"SELECT {_COLUMNS} FROM changes WHERE fid = ? ORDER BY seq DESC LIMIT 1", (fid,))
        return _change(rows[0]) if rows else None


class Writer:
    """The ledger's one writing connection in a process, used only under the store's write lock (so by
    one thread at a time: it is opened with check_same_thread=False)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # sqlite3.Error from here on is a failure to write (a full disk, a read-only folder): the caller's
        # to report; only what `_check_schema` reads decides that the ledger is not one (StoreCorrupt).
        self._conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                     check_same_thread=False)
        try:
            if not _check_schema(self._conn, path):
                self._conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
            # DELETE, not WAL (see the module's docstring); FULL: a commit is on disk when it returns.
            mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "delete":
                self._conn.execute("PRAGMA journal_mode = DELETE")
            self._conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def tip(self) -> tuple[int, int]:
        """The last seq and its time (ms); (0, 0) when empty."""
        row = self._conn.execute("SELECT seq, at_ms FROM changes ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def record(self, rows: Iterable[Row]) -> None:
        """Insert `rows` in one transaction (one prepared INSERT, one durable commit)."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_INSERT, (r.values() for r in rows))
            conn.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (a full disk does that): the original error is the one
            # to report, not a failed ROLLBACK.
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    def known(self, fids: Iterable[str]) -> set[str]:
        """Those of `fids` the ledger has a change of (existing or deleted: never to be reused)."""
        found: set[str] = set()
        batch = list(fids)
        for start in range(0, len(batch), _CHUNK):
            chunk = batch[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self._conn.execute(
                f"SELECT DISTINCT fid FROM changes WHERE fid IN ({marks})", chunk))
        return found

    def all_fids(self) -> set[str]:
        """Every id the ledger has a change of (from the fid index)."""
        return {r[0] for r in self._conn.execute("SELECT DISTINCT fid FROM changes")}

    def idempotent(self, idem: str, not_before_ms: int) -> tuple[str, str | None] | None:
        """The project (and request hash) an add with scoped key `idem` made at or after `not_before_ms`."""
        row = self._conn.execute(_SEEN, (idem, not_before_ms)).fetchone()
        return None if row is None else (str(row[0]), row[1])

    def last_doc(self, fid: str) -> dict[str, Any] | None:
        """`fid`'s last recorded version (None: it was never recorded)."""
        doc = self._conn.execute(
            "SELECT doc FROM changes WHERE fid = ? AND doc IS NOT NULL ORDER BY seq DESC LIMIT 1",
            (fid,)).fetchone()
        return None if doc is None else cast(dict[str, Any], orjson.loads(doc[0]))
