"""The embedded store: a GeoJSON FeatureCollection on disk, and a journal of the changes made since.

- **Writes** append one line to the journal (geo.store.journal) and flush it, under an inter-process
  file lock, before they are acknowledged; the in-memory table is then updated with that one change
  (FeatureTable.apply), never rebuilt. Nothing grows with the store but the journal. `add_many` writes
  its adds as one `batch` line: a crash keeps all of them or none.
- **Compaction** folds the journal into the store file in the background (geo.store.compaction) when the
  journal is large or old enough, and at `close`. It writes a complete new file aside and renames it into
  place, so the file at rest is always a plain FeatureCollection that GDAL and QGIS open. Writes go on
  while the new file is written: only the renames hold the lock. The order of the renames (store file,
  then the journal that continues it, each followed by an fsync of the folder) leaves, after a crash at
  any moment, either the old file with the whole old journal, or the new file with the new journal
  waiting beside it (`.journal.next`) for the next holder of the lock to put in place.
- **Recovery** on start-up replays the journal over the store file it extends (its header names that
  file's digest). A torn last line (a crash mid-append: never acknowledged) is dropped, and logged with
  what it was. A corrupt line with lines after it, or a journal that does not fit the file, stops the
  start with the file, the line and the reason; nothing is overwritten.
- **Other processes' writes** are noticed with one stat of the journal per request (`stale`), and read
  from the offset this process stopped at (`refresh`), never by re-reading the store file; after
  another process compacted, the new journal says where the old one was cut, and this process goes on
  from there. Only what cannot be followed (two compactions in between, a file replaced by hand while
  no journal was there) re-reads the file.
- **Reads never wait for writers**: `snapshot()` returns the last installed table.
- **Every change is kept** in the ledger (geo.store.ledger), an SQLite database beside the file that
  compaction never folds: each journal line carries the seq(s) its changes take there, and is inserted
  into the ledger right after it is flushed, under the same lock. A crash between the two is caught up
  from the journal (under the lock: at open, before every write, before a compaction folds the
  journal). At open, projects the ledger does not know (a store made before the ledger, a file edited by
  hand) are recorded as created, at the file's mtime, by nobody.
- **A bulk load** (`load`, for `geo store copy`) fills an empty store with one new store file, written
  aside and renamed in under the lock as a compaction's is; the journal goes with the old file.

Open files are held as `_Open` objects closed when no state refers to them any more: a thread may read
through a state that another thread has just replaced. Holding the store file open also pins its inode,
so its identity (device, inode, size, mtime) cannot be taken by a later version of the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from geo.errors import Conflict, NotFound, StoreBusy, StoreCorrupt, StoreFull, StoreWriteFailed
from geo.fsutil import (
    LockTimeout,
    append_durably,
    durable_rename,
    exclusive_lock,
    fsync_dir,
    real_target,
    write_temporary,
)
from geo.query.featuretable import FeatureTable
from geo.store import journal, ledger
from geo.store.base import RETRY_AFTER_S, Feature, check_write
from geo.store.changes import IDEMPOTENCY_WINDOW_S, Change, Op, Replayed, WriteMeta, op_of, scoped_key
from geo.store.compaction import Compactor
from geo.store.journal import FileStamp, Header, Record
from geo.store.storefile import (
    content_digest,
    content_version,
    encode_store,
    encode_table,
    no_gc,
    parse_store,
    project_table,
    read_table,
)

# The file format's encode_store and parse_store are used from here too (tests, benchmarks).
__all__ = ["GeoJSONFileStore", "content_version", "encode_store", "parse_store"]

log = logging.getLogger(__name__)

# (device, inode, size, mtime_ns) of one version of a file; None when there is no file.
Identity = tuple[int, int, int, int] | None
# One project a write changes: its id, its new version (None: deleted) and what the ledger calls it.
Entry = tuple[str, Feature | None, Op]
# The ledger's ops that a journal line's own op does not tell (written as its `as` member).
_NOT_DERIVABLE = ("update", "status", "restore")
# What one look at the disk says (see `stale`): the journal's identity, or the store file's when there
# is no journal.
Probe = tuple[str, Identity]


def _identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _identity_of(path: Path) -> Identity:
    """The identity of what `path` names now (through symlinks); None when absent."""
    try:
        return _identity(os.stat(path))
    except FileNotFoundError:
        return None


def _stamp(st: os.stat_result) -> FileStamp:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _stamp_of(identity: Identity) -> FileStamp | None:
    """The stamp a journal header records of the store file whose identity this is (None: no file)."""
    return None if identity is None else identity[1:]


def _when(at_ms: int) -> datetime:
    return datetime.fromtimestamp(at_ms / 1000, UTC)


def _last_seq(records: Sequence[Record], default: int) -> int:
    """The seq of the last of `records` that has one (`default` when none has)."""
    for rec in reversed(records):
        if rec.meta is not None:
            return rec.meta.seq
    return default


class _Open:
    """A file descriptor, closed when the last state that holds it is dropped."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    """Up to `size` bytes at `offset` (fewer only at the end of the file)."""
    chunks: list[bytes] = []
    while size > 0:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class _Journal:
    """The journal as this process has read it."""

    file: _Open
    identity: tuple[int, int]  # (device, inode)
    header: Header
    start: int  # where the first change line begins (the header's length)
    end: int  # just past the last complete line read and applied
    line: int  # the line number of the next line
    seen: tuple[int, int]  # (size, mtime_ns) at the last look: `stale` compares the disk with it
    seq: int = 0  # the last ledger seq its lines read so far carry (0: none): what the ledger must hold

    @classmethod
    def read_to(cls, file: _Open, st: os.stat_result, header: Header, start: int, end: int,
                line: int, seq: int = 0) -> _Journal:
        """The journal open as `file` (stat `st`), read up to `end`; `line`: the next line's number;
        `seq`: the last seq in the lines read."""
        return cls(file, (st.st_dev, st.st_ino), header, start, end, line, (st.st_size, st.st_mtime_ns), seq)


@dataclass(frozen=True)
class _State:
    """One complete version: its table, the store file it extends and the journal read over it."""

    table: FeatureTable
    base: Identity
    base_file: _Open | None
    base_version: str
    journal: _Journal | None
    # When (time.monotonic) this process first saw the oldest change not yet folded into the file.
    since: float | None

    def probe(self) -> Probe:
        """What `GeoJSONFileStore._probe` finds on disk while this state is current."""
        j = self.journal
        if j is None:
            return ("b", self.base)
        return ("j", (j.identity[0], j.identity[1], j.seen[0], j.seen[1]))


def _window_start() -> int:
    """The earliest time (Unix ms) of an Idempotency-Key still remembered."""
    return time.time_ns() // 1_000_000 - IDEMPOTENCY_WINDOW_S * 1000


def _record_created(w: ledger.Writer, table: FeatureTable, fids: Iterable[str], at_ms: int) -> None:
    """Record `fids` of `table` as created by nobody, after the ledger's last change (at `at_ms`, or at
    that change's time if later: the record's times never go back)."""
    last, last_at = w.tip()
    at_ms = max(at_ms, last_at)
    w.record(ledger.Row(last + 1 + n, at_ms, "create", fid, None, None, None, table.get(fid))
             for n, fid in enumerate(fids))


def _by(meta: WriteMeta | None) -> WriteMeta | None:
    """`meta` with only who writes: an Idempotency-Key is an add's alone."""
    return None if meta is None else WriteMeta(by=meta.by)


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _failed(exc: OSError, doing: str) -> StoreWriteFailed:
    """The 503 for a write the disk refused (StoreFull when it is full); nothing was changed."""
    retry = {"Retry-After": RETRY_AFTER_S}
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreFull(f"The disk of the project store is full ({exc.strerror or exc}); {doing}. Nothing "
                         "was changed. Try again later; reads go on meanwhile.", headers=retry)
    return StoreWriteFailed(f"The project store could not be written ({exc.strerror or exc}); {doing}. "
                            "Nothing was changed. Try again later; if it persists, tell the operator.",
                            headers=retry)


class GeoJSONFileStore:
    """A `ProjectStore` kept in one GeoJSON file and its journal, shared safely between processes."""

    editable = True

    def __init__(self, path: Path, lock_timeout_s: float = 10.0, journal_max_bytes: int = 8 << 20,
                 journal_max_age_s: float = 300.0) -> None:
        self.path = path
        self.lock_timeout_s = lock_timeout_s
        self.journal_max_bytes = journal_max_bytes
        self.journal_max_age_s = journal_max_age_s
        self._target = real_target(path)
        self.journal_path = journal.journal_path(self._target)
        self.ledger_path = ledger.ledger_path(self._target)
        self._reader = ledger.Reader(self.ledger_path)
        self._writer: ledger.Writer | None = None  # opened under the write lock, used only under it
        self._install_lock = threading.Lock()  # held only to swap states, never across I/O
        self._reload_lock = threading.Lock()  # one refresh at a time; the others then find it done
        self._compact_lock = threading.Lock()  # one compaction at a time in this process
        self._local_lock = threading.Lock()  # this process's writers, one at a time (see _locked)
        self._compactor: Compactor | None = None
        self._closed = False
        self._unreadable: Probe | None = None  # what was on disk when a refresh last failed
        self._state = self._open()
        self._schedule()

    # --- files and locks ---

    @property
    def lock_path(self) -> Path:
        """The cross-process write lock: hidden, beside the real file, present only during a write."""
        return self._target.parent / f".{self._target.name}.lock"

    @property
    def _compacting_path(self) -> Path:
        # Held (not waited for) by the process that compacts, so that two workers do not both do it.
        return self._target.parent / f".{self._target.name}.compacting.lock"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the cross-process write lock, or answer 503 (busy, or the folder is not writable).

        Threads of this process queue on a lock of their own first, so that only one of them at a time
        polls the file lock (which other processes hold for a flush at a time): a thread wakes as soon as
        the one before it is done, not at its next poll.
        """
        deadline = time.monotonic() + self.lock_timeout_s
        with ExitStack() as stack:
            if not self._local_lock.acquire(timeout=self.lock_timeout_s):
                raise self._busy()
            stack.callback(self._local_lock.release)
            try:
                stack.enter_context(exclusive_lock(self.lock_path, max(0.0, deadline - time.monotonic())))
            except LockTimeout:
                raise self._busy() from None
            except OSError as exc:
                raise StoreWriteFailed(
                    f"The project store cannot be locked for writing ({exc.strerror or exc}); nothing was "
                    "changed. Try again later; if it persists, tell the operator.") from exc
            yield

    def _busy(self) -> StoreBusy:
        # Built only when a write times out, not on every write.
        return StoreBusy(f"Another write held the project store for more than {self.lock_timeout_s:g} s; "
                         "nothing was changed. Try again shortly.", headers={"Retry-After": RETRY_AFTER_S})

    def _open_journal(self) -> tuple[_Open, os.stat_result, bytes] | None:
        """The journal opened (for appending where allowed), its stat and its bytes; None when absent."""
        try:
            fd = os.open(self.journal_path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            fd = os.open(self.journal_path, os.O_RDONLY | os.O_CLOEXEC)  # reads only: writes will say why
        file = _Open(fd)
        st = os.fstat(fd)
        return file, st, _pread_all(fd, st.st_size, 0)

    def _read_base(self) -> tuple[_Open | None, os.stat_result | None, bytes]:
        """The store file held open, its stat and its bytes (through one descriptor, so they agree)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None, None, b""
        file = _Open(fd)
        st = os.fstat(fd)
        return file, st, _pread_all(fd, st.st_size, 0)

    def _probe(self) -> Probe:
        """One stat: the journal's identity (two when there is no journal: then the store file's)."""
        try:
            st = os.stat(self.journal_path)
        except FileNotFoundError:
            return ("b", _identity_of(self.path))
        return ("j", _identity(st))

    def _install(self, state: _State, *, expect: _State | None = None) -> bool:
        """Make `state` the one reads see; with `expect`, only if that is still the current one (a
        refresh must not undo a write this process installed meanwhile)."""
        with self._install_lock:
            if expect is not None and self._state is not expect:
                return False
            self._state = state
        return True

    # --- reading: start-up, recovery, and following the journal ---

    def _open(self) -> _State:
        """The state on disk at start-up, repaired under the lock when that can be had."""
        if self._target.parent.is_dir():
            try:
                with self._locked():
                    self._sweep()
                    s = self._load(locked=True)
                    try:
                        self._catch_up(s)
                        self._baseline(s)
                    except sqlite3.Error as exc:
                        # Reads go on (a full disk must not stop the service); writes catch up first.
                        log.error("the ledger %s could not be brought up to date at start (%s); writes are "
                                  "refused until it can", self.ledger_path, exc)
                    return s
            except (StoreBusy, StoreWriteFailed) as exc:
                # A read-only folder or a busy lock must not stop the service from reading.
                log.warning("the project store %s was opened without its lock, so nothing was repaired: %s",
                            self.path, exc.detail)
        self._reader.check()  # a ledger that is not one stops the start, as a corrupt journal does
        return self._load(locked=False)

    def _sweep(self) -> None:
        """Under the lock: remove temporary files left by a writer killed before its rename.

        Not while another process compacts: it writes its new file without the write lock (holding
        the compaction lock), so that temporary file is not an orphan; orphans wait for the next start.
        """
        try:
            with exclusive_lock(self._compacting_path, 0):
                for orphan in self._target.parent.glob(f".{self._target.name}.*.tmp"):
                    with contextlib.suppress(OSError):
                        orphan.unlink()
        except LockTimeout:
            log.info("a compaction of %s is in progress; temporary files are swept at a later start",
                     self.path)

    def _load(self, *, locked: bool) -> _State:
        """Read the store file and replay its journal into a new state (not yet installed).

        Under the lock (`locked`) what a crash left is repaired: a torn last line is cut off, a
        compaction stopped between its renames is finished, a journal without changes written for
        another version of the file is removed. Without the lock nothing is written, and a journal that
        does not fit the file is taken for another process's compaction between its two renames, and
        read again.
        """
        with no_gc():
            return self._load_once(locked=locked)

    def _load_once(self, *, locked: bool) -> _State:
        mismatch = ""
        for attempt in range(4):
            base_file, base_st, data = self._read_base()
            version = content_version(data)
            opened = self._open_journal()
            if opened is not None:
                jfile, jst, jdata = opened
                if locked and b"\n" not in jdata:
                    # Its header was never completely written (it is created by a rename after a flush,
                    # so only a power cut can do this): it holds no change.
                    log.warning("%s has no complete header line; it held no change and is removed",
                                self.journal_path)
                    self._remove_journal()
                    continue
                header, start = journal.read_header(jdata, self.journal_path)
                if header.base != version:
                    mismatch = f"the journal extends version {header.base} of the file, which is {version}"
                    if locked:
                        self._reconcile(header, jdata, start, version)
                    else:
                        time.sleep(0.02 * (attempt + 1))
                    continue
            # The file is parsed once it is known to be the one the journal extends.
            base = None if base_st is None else _identity(base_st)
            base_mtime = None if base_st is None else datetime.fromtimestamp(base_st.st_mtime_ns / 1e9, UTC)
            # A missing file is an empty store (a new one: its file is written by the first compaction).
            if opened is None:
                table, _ = read_table(None if base_file is None else data, self.path,
                                        journal.Overlay(()), version, base_mtime)
                return _State(table, base, base_file, version, None, None)
            lines = journal.read_records(jdata[start:], start, 2, self.journal_path)
            # The journal applied as the file is read: the table is built once, from the final features.
            modified = _when(lines.records[-1].at_ms) if lines.records else base_mtime
            overlay = journal.Overlay(lines.records)
            table, ids = read_table(None if base_file is None else data, self.path, overlay,
                                      header.version(lines.end, start), modified)
            del data
            journal.changes(lines.records, ids.__contains__, self.journal_path)  # the journal fits the file
            # Only now that all of it was read: repairs.
            if lines.rest and locked:
                self._cut(jfile, lines.end, lines.rest, lines.next_line)
                jst = os.fstat(jfile.fd)
            if locked:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(journal.next_path(self._target))  # a compaction stopped before its renames
            j = _Journal.read_to(jfile, jst, header, start, lines.end, lines.next_line,
                                 _last_seq(lines.records, 0))
            since = time.monotonic() if lines.end > start else None
            return _State(table, base, base_file, version, j, since)
        raise StoreCorrupt(f"{self.path} and its journal {self.journal_path} did not agree in four reads "
                           f"({mismatch}; another process stopped between the two renames of a compaction "
                           "leaves them so until the next write). Nothing was overwritten.")

    def _remove_journal(self) -> None:
        os.unlink(self.journal_path)
        fsync_dir(self._target.parent)

    def _reconcile(self, header: Header, jdata: bytes, start: int, version: str) -> None:
        """Under the lock: the journal was written for another version of the store file. Finish a
        compaction stopped between its renames, or remove a journal that holds no change; otherwise
        refuse, with what to do."""
        nxt = journal.next_path(self._target)
        try:
            following, _ = journal.read_header(nxt.read_bytes(), nxt)
        except (FileNotFoundError, StoreCorrupt):
            following = None
        if following is not None and following.base == version:
            log.warning("finishing a compaction that was stopped between its two renames: %s becomes the "
                        "journal of %s", nxt, self.path)
            durable_rename(nxt, self.journal_path)
            return
        held = journal.read_records(jdata[start:], start, 2, self.journal_path).records
        if not held:
            log.warning("%s held no change and was written for another version of %s (the file was replaced "
                        "while the service was stopped); it is removed", self.journal_path, self.path)
            self._remove_journal()
            return
        raise StoreCorrupt(
            f"{self.path} is not the file its journal {self.journal_path} extends: the journal holds "
            f"{len(held)} changes made to version {header.base} of the file, and the file is now version "
            f"{version}. Nothing was overwritten. If the file was restored or edited by hand while the "
            "journal was there, put back the file the journal extends; or move the journal aside to keep "
            "the file as it is (the journal's changes are then not applied).")

    def _cut(self, file: _Open, end: int, rest: bytes, line: int) -> None:
        """Under the lock: cut off a torn last line (a write a crash cut short: never acknowledged)."""
        log.warning("%s: line %d was cut short by a crash and is dropped (%s); its write was never "
                    "acknowledged", self.journal_path, line, journal.describe_torn(rest))
        os.ftruncate(file.fd, end)
        os.fsync(file.fd)

    def _sync(self, s: _State, *, locked: bool) -> _State:
        """`s` brought up to date with the disk, reading only what changed when it can (a new state,
        not yet installed; under the lock a torn tail is also cut off)."""
        try:
            st: os.stat_result | None = os.stat(self.journal_path)
        except FileNotFoundError:
            st = None
        j = s.journal
        if j is not None:
            if st is not None and (st.st_dev, st.st_ino) == j.identity:
                return self._follow(s, st, locked=locked)
            # Replaced (another process compacted) or removed (at rest): finish the old one, go on in the new.
            s = self._follow(s, os.fstat(j.file.fd), locked=False)
            moved = self._moved(s, st, locked=locked)
            return moved if moved is not None else self._load(locked=locked)
        if st is not None:
            adopted = self._adopt(s, locked=locked)
            return adopted if adopted is not None else self._load(locked=locked)
        return s if _identity_of(self.path) == s.base else self._load(locked=locked)

    def _follow(self, s: _State, st: os.stat_result, *, locked: bool) -> _State:
        """`s` with the complete lines appended to its journal since it was read."""
        j = s.journal
        assert j is not None
        size, seen = st.st_size, (st.st_size, st.st_mtime_ns)
        if size < j.end:
            # Lines read here were taken back (a writer's flush failed after they were written).
            return self._load(locked=locked)
        if size == j.end:
            return s if j.seen == seen else replace(s, journal=replace(j, seen=seen))
        lines = journal.read_records(_pread_all(j.file.fd, size - j.end, j.end), j.end, j.line,
                                     self.journal_path)
        table, since = s.table, s.since
        seq = _last_seq(lines.records, j.seq)
        if lines.records:
            table = self._applied(table, lines.records, j.header.version(lines.end, j.start))
            since = time.monotonic() if since is None else since
        if lines.rest and locked:
            self._cut(j.file, lines.end, lines.rest, lines.next_line)
            cut = os.fstat(j.file.fd)
            seen = (cut.st_size, cut.st_mtime_ns)
        return replace(s, table=table, since=since,
                       journal=replace(j, end=lines.end, line=lines.next_line, seen=seen, seq=seq))

    def _applied(self, table: FeatureTable, records: list[Record], version: str) -> FeatureTable:
        """`table` with the changes of `records` (checked against it) and the given version."""

        changes = journal.changes(records, table.position.__contains__, self.journal_path)
        return table.apply(changes, version=version, modified=_when(records[-1].at_ms))

    def _moved(self, s: _State, st: os.stat_result | None, *, locked: bool) -> _State | None:
        """`s` (its old journal read to the end) carried over to the journal that replaced it, when that
        journal continues it (another process compacted); None when it cannot be (read everything again)."""
        j = s.journal
        assert j is not None
        if st is None:
            # Removed: only a journal that holds no change is (at shutdown), so the file is the state.
            if j.end == j.start and _identity_of(self.path) == s.base:
                return replace(s, journal=None, since=None)
            return None
        opened = self._open_journal()
        if opened is None:
            return None
        jfile, jst, jdata = opened
        header, start = journal.read_header(jdata, self.journal_path)
        if header.continues is None or header.continues[0] != j.header.gen:
            return None
        cut = header.continues[1]
        tail = jdata[start:start + j.end - cut]
        if not j.start < cut <= j.end or tail != _pread_all(j.file.fd, j.end - cut, cut):
            return None
        end = start + len(tail)
        if header.version(end, start) != s.table.version:
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        base_file = _Open(fd)
        base_st = os.fstat(fd)
        if _stamp(base_st) != header.file:
            return None
        moved = _Journal.read_to(jfile, jst, header, start, end, 2 + tail.count(b"\n"), j.seq)
        s = replace(s, base=_identity(base_st), base_file=base_file, base_version=header.base, journal=moved,
                    since=s.since if tail else None)
        return self._follow(s, jst, locked=locked)

    def _adopt(self, s: _State, *, locked: bool) -> _State | None:
        """`s` (read without a journal) with the journal another process started over the same file;
        None when that journal is over another file (read everything again)."""
        opened = self._open_journal()
        if opened is None:
            return None
        jfile, jst, jdata = opened
        header, start = journal.read_header(jdata, self.journal_path)
        base_stamp = _stamp_of(s.base)
        if header.continues is not None or header.base != s.base_version or header.file != base_stamp:
            return None
        adopted = _Journal.read_to(jfile, jst, header, start, start, 2)
        return self._follow(replace(s, journal=adopted), jst, locked=locked)

    def stale(self) -> bool:
        """Whether the disk holds changes the current snapshot lacks (one stat; cheap, non-blocking).

        What failed to read is not stale again until the disk changes once more, so a corrupt file is
        parsed (and logged) once, not on every request.
        """
        try:
            on_disk = self._probe()
        except OSError:
            return False  # cannot tell (a permission or I/O error): keep serving the last good version
        return on_disk != self._state.probe() and on_disk != self._unreadable

    def refresh(self) -> FeatureTable:
        """Bring the snapshot up to date with the disk; blocking I/O, so call it off the event loop.

        Takes no write lock: a line is read only once complete, and a store file only ever replaced
        whole. What cannot be read is logged and the last good snapshot kept.
        """
        with self._reload_lock:
            for _attempt in range(3):
                current = self._state
                try:
                    on_disk = self._probe()
                    if on_disk in (current.probe(), self._unreadable):
                        break
                    state = self._sync(current, locked=False)
                except (StoreCorrupt, OSError) as exc:
                    self._unreadable = on_disk
                    log.error("the project store could not be re-read; serving the last good version until "
                              "it changes: %s", exc)
                    break
                if self._install(state, expect=current):
                    break
        self._schedule()
        return self._state.table

    def snapshot(self) -> FeatureTable:
        """The last complete version; never waits for a writer.

        Off the event loop a changed store is read first. On the event loop nothing is checked:
        `StoreRefresh` stats the journal once per request and reads what changed in a thread before
        the request goes on, so the parts of one request (the response cache, the route) see one
        version, and a change that lands during the request is seen by the next one.
        """
        if _on_event_loop() or not self.stale():
            return self._state.table
        return self.refresh()

    # --- writing ---

    def _current_locked(self) -> _State:
        """Under the write lock: the state of the disk (what other processes wrote read first)."""
        try:
            s = self._sync(self._state, locked=True)
            if _identity_of(self.path) != s.base:
                s = self._load(locked=True)  # replaced, by hand or by a compaction this process missed
            if s.journal is not None and os.fstat(s.journal.file.fd).st_size != s.journal.end:
                raise OSError(errno.EIO, "the journal does not end where it was read to")
            self._catch_up(s)
        except sqlite3.Error as exc:
            log.error("a write was refused: the ledger %s: %s", self.ledger_path, exc)
            retry = {"Retry-After": RETRY_AFTER_S}
            if ledger.disk_full(exc):
                raise StoreFull("The disk of the project store is full (its ledger of changes cannot grow). "
                                "Nothing was changed. Try again later; reads go on meanwhile.",
                                headers=retry) from exc
            raise StoreWriteFailed("The project store's ledger of changes cannot be written; nothing was "
                                   "changed. Try again later; if it persists, tell the operator.",
                                   headers=retry) from exc
        except StoreCorrupt as exc:
            log.error("a write was refused: %s", exc)  # the path and the fault, for the operator only
            raise StoreWriteFailed("The project store on disk cannot be read, so it was not overwritten. "
                                   "Nothing was changed; tell the operator.") from exc
        except OSError as exc:
            raise StoreWriteFailed(f"The project store cannot be read ({exc.strerror or exc}); nothing was "
                                   "changed. Try again later; if it persists, tell the operator.") from exc
        self._install(s)
        return s

    # --- the ledger ---

    def _ledger(self) -> ledger.Writer:
        """Under the write lock: the ledger's writing connection (opened, and created, on first use)."""
        if self._writer is None:
            self._writer = ledger.Writer(self.ledger_path)
        return self._writer

    def _known_ledger(self) -> ledger.Writer | None:
        """Under the write lock: the ledger's connection when the ledger exists (None: nothing recorded
        yet). Checks read through this, so that a write refused, or a store only opened, creates no file."""
        if self._writer is None and not self.ledger_path.exists():
            return None
        return self._ledger()

    def _catch_up(self, s: _State) -> None:
        """Under the write lock: insert into the ledger the journal's changes it lacks (a crash came
        between a journal line's flush and its ledger insert). The one place that repairs the ledger."""
        j = s.journal
        if j is None or j.seq == 0:
            return  # no line of the journal carries a seq: nothing for the ledger there
        w = self._ledger()
        last, _ = w.tip()
        if j.seq <= last:
            return
        lines = journal.read_records(_pread_all(j.file.fd, j.end - j.start, j.start), j.start, 2,
                                     self.journal_path)
        rows = [r for r in ledger.rows_of(lines.records) if r.seq > last]
        w.record(rows)
        log.warning("the ledger %s lacked %d changes its journal holds (seq %d to %d: a write stopped "
                    "between the two); they were recorded", self.ledger_path, len(rows), last + 1, j.seq)

    def _baseline(self, s: _State) -> None:
        """Under the write lock, at open: record as created (by nobody, at the store file's mtime) the
        projects the ledger does not know: all of them for a store made before the ledger, those added
        to the file by hand, or by a `load` that stopped before its ledger insert."""
        if not len(s.table):
            return  # nothing to record: an empty store gets its ledger with its first write
        w = self._ledger()
        known = w.all_fids() if w.tip()[0] else set()
        missing = [fid for fid in s.table.ids if fid not in known]
        if not missing:
            return
        _record_created(w, s.table, missing,
                        (s.base[3] // 1_000_000) if s.base is not None else time.time_ns() // 1_000_000)
        log.info("recorded %d projects of %s that its ledger did not know as created", len(missing),
                 self.path)

    def _with_journal(self, s: _State) -> tuple[_State, _Journal]:
        """Under the write lock: `s` with a journal, started over the store file if there is none."""
        if s.journal is not None:
            return s, s.journal
        stamp = _stamp_of(s.base)
        header = Header(base=s.base_version, file=stamp, gen=journal.new_gen(), continues=None,
                        lineage=journal.new_gen(), shift=0)
        data = header.encode()
        try:
            tmp, _ = write_temporary(self._target, data)
            try:
                durable_rename(tmp, self.journal_path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            opened = self._open_journal()
        except OSError as exc:
            raise _failed(exc, "the journal could not be started") from exc
        assert opened is not None
        jfile, jst, _ = opened
        j = _Journal.read_to(jfile, jst, header, len(data), len(data), 2)
        return replace(s, journal=j), j

    def _commit(self, op: str, fid: str, check: Callable[[FeatureTable], list[Entry]],
                meta: WriteMeta | None) -> list[Entry]:
        """Under the write lock: check the change to `fid` (journal op `op`) against the current state,
        append it to the journal and flush it, record it in the ledger, then install the table with that
        one change applied."""
        return self._commit_line(
            check, lambda entries, at_ms, jm: journal.encode_change(op, fid, entries[0][1], at_ms, jm),
            meta, f"the change to {fid!r} was not written")

    def _commit_line(self, check: Callable[[FeatureTable], list[Entry]],
                     encode: Callable[[list[Entry], int, journal.Meta], bytes], meta: WriteMeta | None,
                     doing: str) -> list[Entry]:
        """Under the write lock: `check(table)` says what changes (or raises: nothing written); append
        the one journal line `encode(entries, at_ms, meta)` that holds them (with their seqs) and flush it,
        insert them into the ledger, then install the table with them applied (one version: a crash keeps
        the whole line or none of it, and the ledger is caught up from the line)."""
        with self._locked():
            s = self._current_locked()
            entries = check(s.table)
            w = self._ledger()
            last, last_at = w.tip()
            s, j = self._with_journal(s)
            # Never before the last change: the ledger's times follow its seqs (seq_before relies on it).
            at_ms = max(time.time_ns() // 1_000_000, last_at)
            by, idem = (None, None) if meta is None else (meta.by, scoped_key(meta))
            rh = None if meta is None or idem is None else meta.request_hash
            as_op = entries[0][2] if len(entries) == 1 and entries[0][2] in _NOT_DERIVABLE else None
            line = encode(entries, at_ms, journal.Meta(last + 1, by, as_op, idem, rh))
            end = j.end + len(line)
            # Built before the append: once the line is on disk nothing may fail.
            table = s.table.apply([(fid, feature) for fid, feature, _ in entries],
                                  version=j.header.version(end, j.start), modified=_when(at_ms))
            # The key goes with the first (an add's only) change.
            rows = [ledger.Row(last + 1 + n, at_ms, op, fid, by, *((idem, rh) if n == 0 else (None, None)),
                               feature) for n, (fid, feature, op) in enumerate(entries)]
            try:
                append_durably(j.file.fd, line, j.end)
            except OSError as exc:
                raise _failed(exc, doing) from exc
            try:
                after = os.fstat(j.file.fd)
                seen = (after.st_size, after.st_mtime_ns)
            except OSError:
                seen = (end, -1)  # not known: the next request reads the journal once more
            # The ledger before the table: whoever sees the new table finds its changes (an Idempotency-Key
            # above all) in the ledger too; a concurrent retry never meets its own project as a duplicate.
            try:
                w.record(rows)
            except sqlite3.Error as exc:
                # Acknowledged all the same: the journal holds it, and the next holder of the lock (a write,
                # a compaction, a start) records it from there before doing anything else.
                log.error("the ledger %s could not record seq %d (%s); it is caught up from the journal",
                          self.ledger_path, last + 1, exc)
            since = s.since if s.since is not None else time.monotonic()
            self._install(replace(s, table=table, since=since, journal=replace(
                j, end=end, line=j.line + 1, seen=seen, seq=last + len(entries))))
        self._schedule()
        return entries

    def _fresh(self, fids: Sequence[str]) -> None:
        """Under the write lock: ValueError when the ledger knows one of `fids` (ids are never reused)."""
        w = self._known_ledger()
        known = set() if w is None else w.known(fids)
        if known:
            raise ValueError(f"id {sorted(known)[0]!r} existed (it was deleted; ids are never reused)")

    def add(self, feature: Feature, meta: WriteMeta | None = None) -> Feature:
        """Append a new feature (see `ProjectStore.add`: Replayed, StoreBusy, StoreWriteFailed,
        ValueError)."""
        fid = feature["id"]
        idem = scoped_key(meta)

        def absent(table: FeatureTable) -> list[Entry]:
            w = self._known_ledger()
            if idem is not None and w is not None:
                seen = w.idempotent(idem, _window_start())
                if seen is not None:
                    raise Replayed(*seen)
            if fid in table.position:
                raise ValueError(f"id {fid!r} exists")
            self._fresh([fid])
            return [(fid, feature, "create")]

        self._commit("add", fid, absent, meta)
        return feature

    def add_many(self, features: Sequence[Feature], meta: WriteMeta | None = None) -> list[Feature]:
        """Append new features, in order, in one journal line (see `ProjectStore.add_many`: all or none;
        StoreBusy, StoreWriteFailed, ValueError when an id exists, existed or repeats, or an item is no
        feature)."""
        batch = list(journal.checked(features))  # checked before the lock: a bad one writes nothing
        if not batch:
            return []

        def absent(table: FeatureTable) -> list[Entry]:
            for feature in batch:
                if feature["id"] in table.position:
                    raise ValueError(f"id {feature['id']!r} exists")
            self._fresh([f["id"] for f in batch])
            return [(f["id"], f, "create") for f in batch]

        # The key is not used here (see the Protocol): only `by` is recorded.
        self._commit_line(absent, lambda entries, at_ms, jm: journal.encode_batch(batch, at_ms, jm),
                          _by(meta), f"the {len(batch)} new projects were not written")
        return batch

    def replace(self, fid: str, feature: Feature, if_match: str | None = None,
                meta: WriteMeta | None = None) -> Feature:
        """Replace one feature in place, keeping the order of the others.

        See `ProjectStore.replace`: NotFound, PreconditionFailed, StoreBusy, StoreWriteFailed, and
        ValueError when `feature["id"]` is not `fid`.
        """
        if feature.get("id") != fid:
            raise ValueError(f"a replacement for {fid!r} has the id {feature.get('id')!r}")

        def check(table: FeatureTable) -> list[Entry]:
            # Compared with the disk as it is under the lock, not with the snapshot a caller read.
            before = check_write(fid, table.get(fid), if_match)
            return [(fid, feature, op_of(before, feature))]

        self._commit("replace", fid, check, _by(meta))
        return feature

    def delete(self, fid: str, if_match: str | None = None, meta: WriteMeta | None = None) -> None:
        """Remove one feature, keeping the order of the others; the ledger keeps it (see
        `ProjectStore.delete`: NotFound, PreconditionFailed, StoreBusy, StoreWriteFailed)."""

        def check(table: FeatureTable) -> list[Entry]:
            check_write(fid, table.get(fid), if_match)
            return [(fid, None, "delete")]

        self._commit("delete", fid, check, _by(meta))

    def restore(self, fid: str, meta: WriteMeta | None = None) -> Feature:
        """Add deleted `fid` back, as it was last recorded, after the others (see `ProjectStore.restore`:
        NotFound, Conflict, StoreBusy, StoreWriteFailed)."""

        def check(table: FeatureTable) -> list[Entry]:
            if fid in table.position:
                raise Conflict(f"The project {fid!r} exists: only a deleted project can be restored.")
            w = self._known_ledger()
            last = None if w is None else w.last_doc(fid)
            if last is None:
                raise NotFound(f"There is no project {fid!r}, and there never was.")
            return [(fid, last, "restore")]

        (entry,) = self._commit("add", fid, check, _by(meta))
        restored = entry[1]
        assert restored is not None
        return restored

    # --- the record of changes (read from the ledger; blocking: call from a thread) ---

    def changes(self, since: int = 0, limit: int = 100) -> list[Change]:
        """Up to `limit` recorded changes with `seq > since`, in order."""
        return self._reader.changes(since, limit)

    def seq_before(self, at: datetime) -> int:
        """The last seq recorded before `at` (0: none)."""
        return self._reader.seq_before(at)

    def history(self, fid: str) -> list[Change]:
        """Every recorded change of `fid`, in order (empty when it never existed)."""
        return self._reader.history(fid)

    def idempotent(self, meta: WriteMeta) -> Replayed | None:
        """What an `add` with `meta` would raise as Replayed now, else None (a read, without the lock)."""
        idem = scoped_key(meta)
        if idem is None:
            return None
        seen = self._reader.idempotent(idem, _window_start())
        j = self._state.journal
        if seen is None and j is not None and j.seq > self._reader.tip():
            # This process has read a journal line whose ledger insert is still to come (its writer holds
            # the lock between the two, or stopped there): the key may be in that line. Wait for the
            # lock, where the ledger is caught up, and look again.
            with self._locked():
                self._current_locked()
                seen = self._reader.idempotent(idem, _window_start())
        return None if seen is None else Replayed(*seen)

    def deleted(self, fid: str) -> Change | None:
        """The change that deleted `fid` when it is deleted now, else None."""
        last = self._reader.last(fid)
        return last if last is not None and last.op == "delete" else None

    def load(self, features: Iterable[Feature]) -> int:
        """Store `features` (ids and order kept) into this store, which must be empty, in one atomic
        durable write; return how many. Raises ValueError (nothing written) when the store is not empty,
        a feature is not one a store file may hold, or an id repeats; StoreBusy or StoreWriteFailed as
        the other writes do.

        Under the write lock, a complete new store file is written aside and renamed into place, and the
        journal removed: other processes following the store read the new file at their next look.
        """
        with self._locked():
            s = self._current_locked()
            if len(s.table):
                raise ValueError(f"{self.path} is not empty: it holds {len(s.table)} projects")
            # Checked as they are read into the table; a bad one stops the load before anything is written.
            table = project_table(journal.checked(features), "loading", None)
            self._fresh(table.ids)
            digest = content_digest()

            def chunks() -> Iterator[bytes]:
                for chunk in encode_table(table):
                    digest.update(chunk)
                    yield chunk

            try:
                tmp, st = write_temporary(self._target, chunks())
                try:
                    self._put_in_place(s, tmp, st, digest.hexdigest())
                finally:
                    tmp.unlink(missing_ok=True)  # gone once renamed
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise _failed(exc, "the projects were not loaded") from exc
            base_file = _Open(fd)
            base_st = os.fstat(fd)
            # The version and Last-Modified every other process reads from the new file (see _load_once).
            loaded = table.apply([], version=digest.hexdigest(),
                                 modified=datetime.fromtimestamp(base_st.st_mtime_ns / 1e9, UTC))
            self._install(_State(loaded, _identity(base_st), base_file, digest.hexdigest(), None, None))
            # After the file: a crash between the two leaves projects the ledger does not know, which the
            # next start records as created (`_baseline`).
            if len(loaded):
                _record_created(self._ledger(), loaded, loaded.ids, time.time_ns() // 1_000_000)
        return len(loaded)

    def _put_in_place(self, s: _State, tmp: Path, st: os.stat_result, version: str) -> None:
        """Under the write lock: rename the new store file `tmp` (version `version`) into place and remove
        the journal of the old one, in an order a crash at any moment leaves readable.

        A journal that holds changes (of an empty store: they cancel out) is first replaced, through
        `.journal.next` as a compaction does, by one without changes over the new file: a crash between
        the renames leaves the new file with `.journal.next` (which the next start puts in place),
        never the new file with changes made to the old one (which would stop the next start).
        """
        j = s.journal
        following = None
        if j is not None and j.end > j.start:
            following = Header(base=version, file=_stamp(st), gen=journal.new_gen(), continues=None,
                               lineage=journal.new_gen(), shift=0).encode()
        self._rename_pair(tmp, following)
        if j is not None:
            self._remove_journal()

    def _rename_pair(self, tmp: Path, following: bytes | None) -> None:
        """Under the write lock: rename the new store file `tmp` into place, with the journal that
        continues it (`following`, its bytes; None: none).

        The journal is written aside as `.journal.next` first, then the file is renamed, then the folder
        is fsynced (which orders the two renames on disk), then `.journal.next` becomes the journal. A crash
        between the renames leaves the new file with `.journal.next`, which the next holder of the lock
        puts in place (see _reconcile); a failed rename of the file leaves the old file and no
        `.journal.next`.
        """
        nxt = journal.next_path(self._target)
        if following is not None:
            ntmp, _ = write_temporary(self._target, following, like=self.journal_path)
            try:
                os.replace(ntmp, nxt)
            except BaseException:
                ntmp.unlink(missing_ok=True)
                raise
        try:
            os.replace(tmp, self._target)
        except BaseException:
            nxt.unlink(missing_ok=True)
            raise
        fsync_dir(self._target.parent)
        if following is not None:
            durable_rename(nxt, self.journal_path)

    # --- compaction ---

    def pending(self) -> tuple[int, float | None]:
        """Bytes of changes in the journal not yet folded into the file, and since when (monotonic)."""
        s = self._state
        return (0, None) if s.journal is None else (s.journal.end - s.journal.start, s.since)

    def _schedule(self) -> None:
        """Start the compaction thread once there is something to fold in; wake it when it is large."""
        size, _ = self.pending()
        if size == 0 or self._closed:
            return
        if self._compactor is None:
            with self._install_lock:
                if self._compactor is None and not self._closed:
                    self._compactor = Compactor(self, self.journal_max_bytes, self.journal_max_age_s)
                    return
        if size >= self.journal_max_bytes and self._compactor is not None:
            self._compactor.nudge()

    def compact(self) -> bool:
        """Fold the journal into the store file and start a new journal; False when there was nothing
        to fold in, or another process is compacting or compacted first.

        Raises OSError (nothing changed: the old file and the whole journal are as they were) or a
        store error from the lock. Blocking: the new file is written without holding the write lock.
        """
        with self._compact_lock:
            try:
                with exclusive_lock(self._compacting_path, 0):
                    return self._compact()
            except LockTimeout:
                return False

    def _compact(self) -> bool:
        with self._locked():
            first = self._current_locked()
        if first.journal is None or first.journal.end == first.journal.start:
            return False
        cut = first.journal.end
        digest = content_digest()

        def chunks() -> Iterator[bytes]:
            for chunk in encode_table(first.table):
                digest.update(chunk)
                yield chunk

        tmp, st = write_temporary(self._target, chunks())
        # The new file's mtime is when its last change was made: every process then reads the same
        # Last-Modified from it as from the journal.
        modified = first.table.modified
        if modified is not None:
            ns = int(modified.timestamp() * 1e9)
            os.utime(tmp, ns=(ns, ns))
            st = os.stat(tmp)
        try:
            with self._locked():
                return self._swap(first, cut, tmp, st, digest.hexdigest())
        finally:
            tmp.unlink(missing_ok=True)  # gone after the rename; still there when anything failed before

    def _swap(self, first: _State, cut: int, tmp: Path, st: os.stat_result, version: str) -> bool:
        """Under the write lock: put the new store file in place and the journal that continues it."""
        s = self._current_locked()
        j, j0 = s.journal, first.journal
        assert j0 is not None
        if j is None or j.identity != j0.identity or s.base != first.base:
            return False  # another process compacted meanwhile (without the compaction lock?): leave it
        tail = _pread_all(j.file.fd, j.end - cut, cut)
        header = Header(base=version, file=_stamp(st), gen=journal.new_gen(),
                        continues=(j.header.gen, cut), lineage=j.header.lineage,
                        shift=j.header.shift + cut - j.start)
        head = header.encode()
        self._rename_pair(tmp, head + tail)
        opened = self._open_journal()
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        base_file = _Open(fd)
        assert opened is not None
        jfile, jst, _ = opened
        moved = _Journal.read_to(jfile, jst, header, len(head), len(head) + len(tail), 2 + tail.count(b"\n"),
                                 j.seq)
        assert header.version(moved.end, moved.start) == s.table.version  # folding in changes no version
        self._install(replace(s, base=_identity(os.fstat(fd)), base_file=base_file, base_version=header.base,
                              journal=moved, since=s.since if tail else None))
        log.info("compacted %s: %d bytes of journal folded into a %d-byte file", self.path, cut - j.start,
                 st.st_size)
        return True

    def close(self) -> None:
        """Stop the compaction thread, fold the journal into the file (the file at rest is complete),
        remove the emptied journal, and let go of the files held open."""
        self._closed = True
        compactor, self._compactor = self._compactor, None
        if compactor is not None:
            compactor.stop()
        try:
            if self.pending()[0]:
                self.compact()
            if self._state.journal is None:
                return
            with self._locked():
                s = self._current_locked()
                if s.journal is not None and s.journal.end == s.journal.start:
                    self._remove_journal()
                    self._install(replace(s, journal=None, since=None))
        except (StoreBusy, StoreWriteFailed, StoreCorrupt, OSError) as exc:
            log.warning("the journal of %s was not folded into it at shutdown (%s); the next start reads "
                        "it", self.path, exc)
        finally:
            with self._install_lock:
                self._state = replace(self._state, base_file=None, journal=None)
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.close()
