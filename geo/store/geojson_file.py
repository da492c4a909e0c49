"""The embedded store: one human-readable GeoJSON FeatureCollection on disk.

Reads are served from an immutable in-memory snapshot and never wait for a writer: a write builds
its new snapshot aside and swaps it in when the file is in place. Every write takes an inter-process
file lock, re-reads the file if another process changed it, writes a complete new file atomically and
durably (temporary file, fsync, rename, fsync of the folder) and only then acknowledges. A file that
cannot be read is refused, never overwritten.

Noticing another process's write: a stat of the path compared with the file this store last read.
The store keeps that file open, so its inode cannot be freed and reused by a later version: a new
version of the file is always a new inode (writers rename), even when its size and mtime repeat. The
version clients see (ETags) is a hash of the file's bytes, the same in every process.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from geo.errors import StoreBusy, StoreCorrupt, StoreWriteFailed
from geo.fsutil import LockTimeout, atomic_write_bytes, exclusive_lock, real_target
from geo.query.featuretable import FeatureTable
from geo.schema import PROJECT_FILTERS, PROJECT_TEMPORAL
from geo.store.base import RETRY_AFTER_S, Feature, check_write

log = logging.getLogger(__name__)

HEAD = b'{"type":"FeatureCollection","name":"projects","features":[\n'
# (device, inode, size, mtime_ns) of one version of the file; None when there is no file.
Identity = tuple[int, int, int, int] | None


def _identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _identity_of(path: Path) -> Identity:
    """The identity of what `path` names now (through symlinks); None when absent."""
    try:
        return _identity(os.stat(path))
    except FileNotFoundError:
        return None


def content_version(data: bytes) -> str:
    """The version of a store file's bytes: a digest, so it changes whenever the content does."""
    return hashlib.blake2b(data, digest_size=10).hexdigest()


def encode_store(features: list[Feature]) -> bytes:
    """A store file's bytes: one feature per line keeps the file readable and its diffs small."""
    return HEAD + b",\n".join(orjson.dumps(f) for f in features) + b"\n]}\n"


def parse_store(data: bytes, path: Path) -> list[Feature]:
    """Read and check a store file's bytes, saying where and why when it is corrupt."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise StoreCorrupt(f"{path}: not valid JSON ({exc}). The file was left untouched; restore it "
                           "from a backup or fix it by hand.") from exc
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(
            doc.get("features"), list):
        raise StoreCorrupt(f"{path}: not a GeoJSON FeatureCollection with a 'features' list. "
                           "The file was left untouched.")
    seen: set[str] = set()
    for n, feat in enumerate(doc["features"]):
        where = f"{path}: features[{n}]"
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            raise StoreCorrupt(f"{where} is not a GeoJSON Feature. The file was left untouched.")
        fid = feat.get("id")
        if not isinstance(fid, str) or not fid:
            raise StoreCorrupt(f"{where} has no string 'id'. The file was left untouched.")
        if fid in seen:
            raise StoreCorrupt(f"{where} repeats the id {fid!r}. The file was left untouched.")
        seen.add(fid)
        if not isinstance(feat.get("geometry"), dict) or not isinstance(feat.get("properties"), dict):
            raise StoreCorrupt(f"{where} ({fid}) lacks a geometry or properties object. "
                               "The file was left untouched.")
    features: list[Feature] = doc["features"]
    return features


@dataclass(frozen=True)
class _State:
    """One complete version: its table, the identity of its file, and that file held open."""

    table: FeatureTable
    identity: Identity
    # Holding the file open pins its inode (see the module docstring); None for a missing file.
    fd: int | None


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class GeoJSONFileStore:
    """A `ProjectStore` kept in one GeoJSON file, shared safely between processes."""

    editable = True

    def __init__(self, path: Path, lock_timeout_s: float = 10.0) -> None:
        self.path = path
        self.lock_timeout_s = lock_timeout_s
        self._install_lock = threading.Lock()  # held only to swap states, never across I/O
        self._reload_lock = threading.Lock()  # one re-read at a time; the others then find it done
        self._state = _State(FeatureTable.empty(), None, None)
        self._unreadable: Identity | bool = False  # the identity of a version that could not be read
        self._sweep()
        state = self._read()
        self._install(state)

    @property
    def lock_path(self) -> Path:
        """The cross-process lock file: hidden, beside the real file, present only during a write."""
        target = real_target(self.path)
        return target.parent / f".{target.name}.lock"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the cross-process write lock, or answer 503 (busy, or the folder is not writable)."""
        with ExitStack() as stack:
            try:
                stack.enter_context(exclusive_lock(self.lock_path, self.lock_timeout_s))
            except LockTimeout:
                raise StoreBusy(
                    f"Another write held the project store for more than {self.lock_timeout_s:g} s; "
                    "nothing was changed. Try again shortly.",
                    headers={"Retry-After": RETRY_AFTER_S}) from None
            except OSError as exc:
                raise StoreWriteFailed(
                    f"The project store cannot be locked for writing ({exc.strerror or exc}); nothing was "
                    "changed. Try again later; if it persists, tell the operator.") from exc
            yield

    def _sweep(self) -> None:
        """Remove temporary files left by a writer that was killed before its rename."""
        target = real_target(self.path)
        if not target.parent.is_dir():
            return
        # Under the lock no write is in flight, so every temporary file of this store is an orphan.
        try:
            with self._locked():
                for orphan in target.parent.glob(f".{target.name}.*.tmp"):
                    orphan.unlink(missing_ok=True)
        except (StoreBusy, StoreWriteFailed, OSError) as exc:
            # Housekeeping only: a read-only folder or a busy lock must not stop the service from reading.
            log.warning("temporary files of %s were not swept: %s", self.path, exc)

    def _read(self) -> _State:
        """Read the file as it is now into a new state (not yet installed); a missing file is empty."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return _State(FeatureTable.empty(), None, None)
        try:
            # fstat and read through one descriptor: the identity is exactly that of the bytes read.
            st = os.fstat(fd)
            with os.fdopen(os.dup(fd), "rb") as fh:
                data = fh.read()
            table = self._table(parse_store(data, self.path), data, st.st_mtime_ns)
        except BaseException:
            os.close(fd)
            raise
        return _State(table, _identity(st), fd)

    @staticmethod
    def _table(features: list[Feature], data: bytes, mtime_ns: int | None) -> FeatureTable:
        modified = None if mtime_ns is None else datetime.fromtimestamp(mtime_ns / 1e9, UTC)
        return FeatureTable(tuple(features), version=content_version(data), filter_columns=PROJECT_FILTERS,
                            temporal=PROJECT_TEMPORAL, modified=modified)

    def _install(self, state: _State, *, if_current: bool = False) -> None:
        """Make `state` the one reads see. With `if_current`, only if its file is still the one on disk
        (a background reload must not undo a write that landed while it was reading)."""
        with self._install_lock:
            if if_current and _identity_of(self.path) != state.identity:
                dropped = state
            else:
                dropped, self._state = self._state, state
        if dropped.fd is not None and dropped is not self._state:
            os.close(dropped.fd)

    def stale(self) -> bool:
        """Whether the file on disk is not the one the current snapshot was read from (one stat).

        A version that failed to read is not stale again until the file changes once more, so a corrupt
        file is parsed (and logged) once, not on every request.
        """
        try:
            on_disk = _identity_of(self.path)
        except OSError:
            return False  # cannot tell (a permission or I/O error): keep serving the last good version
        return on_disk != self._state.identity and on_disk != self._unreadable

    def refresh(self) -> FeatureTable:
        """Bring the snapshot up to date with the file; blocking I/O, so call it off the event loop.

        Takes no write lock: the file is only ever replaced whole, so any version read is complete.
        A file that became unreadable is logged and the last good snapshot kept.
        """
        with self._reload_lock:
            if self.stale():
                on_disk: Identity | bool = False
                try:
                    on_disk = _identity_of(self.path)
                    self._install(self._read(), if_current=True)
                except (StoreCorrupt, OSError) as exc:
                    self._unreadable = on_disk
                    log.error("the project store could not be re-read; serving the last good version until "
                              "the file changes: %s", exc)
        return self._state.table

    def snapshot(self) -> FeatureTable:
        """The last complete version; never waits for a writer.

        Off the event loop a changed file is re-read first. On the event loop nothing is checked:
        `StoreRefresh` stats the file once per request and re-reads it in a thread before the request
        goes on, so the parts of one request (the response cache, the route) see one version, and a
        change that lands during the request is seen by the next one.
        """
        if _on_event_loop() or not self.stale():
            return self._state.table
        return self.refresh()

    def _current_locked(self) -> _State:
        """Under the write lock: the state of the file on disk (re-read if another process changed it)."""
        state = self._state
        try:
            if _identity_of(self.path) == state.identity:
                return state
            fresh = self._read()
        except StoreCorrupt as exc:
            log.error("a write was refused: %s", exc)  # the path and the fault, for the operator only
            raise StoreWriteFailed("The project store on disk cannot be read, so it was not overwritten. "
                                   "Nothing was changed; tell the operator.") from exc
        except OSError as exc:
            raise StoreWriteFailed(f"The project store cannot be read ({exc.strerror or exc}); nothing was "
                                   "changed. Try again later; if it persists, tell the operator.") from exc
        self._install(fresh)
        return fresh

    def _write(self, features: list[Feature]) -> None:
        """Under the write lock: replace the file with `features` and install the new snapshot."""
        data = encode_store(features)
        try:
            atomic_write_bytes(self.path, data)
        except OSError as exc:
            raise StoreWriteFailed(
                f"The project store could not be written ({exc.strerror or exc}); nothing was changed. "
                "Try again later; if it persists, tell the operator.") from exc
        # From here on the write has happened (a failed folder fsync is logged by atomic_write_bytes):
        # nothing below may report failure. No re-parse: under the lock, what is on disk is `data`.
        fd: int | None = None
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            st = os.fstat(fd)
            identity: Identity = _identity(st)
            mtime_ns: int | None = st.st_mtime_ns
        except OSError as exc:
            log.error("the project store was written but could not be reopened (%s); it will be re-read", exc)
            if fd is not None:
                os.close(fd)
            fd, identity, mtime_ns = None, None, None
        self._install(_State(self._table(features, data, mtime_ns), identity, fd))

    def add(self, feature: Feature) -> Feature:
        """Append a new feature (see `ProjectStore.add`: StoreBusy, StoreWriteFailed, ValueError)."""
        fid = feature["id"]
        with self._locked():
            table = self._current_locked().table
            if fid in table.position:
                raise ValueError(f"id {fid!r} exists")
            self._write([*table.features, feature])
        return feature

    def replace(self, fid: str, feature: Feature, if_match: str | None = None) -> Feature:
        """Replace one feature in place, keeping the order of the others.

        See `ProjectStore.replace`: NotFound, PreconditionFailed, StoreBusy, StoreWriteFailed, and
        ValueError when `feature["id"]` is not `fid`.
        """
        if feature.get("id") != fid:
            raise ValueError(f"a replacement for {fid!r} has the id {feature.get('id')!r}")
        with self._locked():
            table = self._current_locked().table  # the file as it is now, not the snapshot a caller read
            check_write(fid, table.get(fid), if_match)
            features = list(table.features)
            features[table.position[fid]] = feature
            self._write(features)
        return feature

    def delete(self, fid: str, if_match: str | None = None) -> None:
        """Remove one feature, keeping the order of the others (see `ProjectStore.delete`: NotFound,
        PreconditionFailed, StoreBusy, StoreWriteFailed)."""
        with self._locked():
            table = self._current_locked().table
            check_write(fid, table.get(fid), if_match)
            self._write([f for f in table.features if f["id"] != fid])

    def close(self) -> None:
        """Let go of the file held open for the current snapshot."""
        with self._install_lock:
            state, self._state = self._state, _State(self._state.table, None, None)
        if state.fd is not None:
            os.close(state.fd)
