"""The embedded store: one human-readable GeoJSON FeatureCollection on disk.

Reads are served from memory. Every write takes an inter-process file lock, re-reads the file if
another process changed it, writes a complete new file atomically and durably (temporary file,
fsync, rename, fsync of the folder) and only then acknowledges. A file that cannot be read is
refused, never overwritten.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import orjson
from filelock import FileLock

from geo.errors import NotFound, StoreCorrupt, StoreWriteFailed
from geo.featuretable import FeatureTable
from geo.fsutil import atomic_write_bytes
from geo.store.base import PROJECT_FILTERS, PROJECT_TEMPORAL, Change, Feature

Signature = tuple[int, int, int] | None
HEAD = b'{"type":"FeatureCollection","name":"projects","features":[\n'


def _signature(path: Path) -> Signature:
    """What identifies one version of the file on disk (inode, size, mtime); None when absent."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


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


class GeoJSONFileStore:
    """A `ProjectStore` kept in one GeoJSON file, shared safely between processes."""

    editable = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = FileLock(str(path) + ".lock", timeout=30)
        self._mutex = threading.Lock()
        self._signature: Signature = None
        self._table = FeatureTable.empty()
        self._sweep()
        self._load()

    def _sweep(self) -> None:
        """Remove temporary files left by a writer that was killed before its rename."""
        if not self.path.parent.is_dir():
            return
        # Under the lock no write is in flight, so every temporary file of this store is an orphan.
        with self._lock:
            for orphan in self.path.parent.glob(f".{self.path.name}.*.tmp"):
                orphan.unlink(missing_ok=True)

    def _load(self) -> None:
        """(Re)read the file into memory; a missing file is an empty store."""
        signature = _signature(self.path)
        features = [] if signature is None else parse_store(self.path.read_bytes(), self.path)
        self._install(features, signature)

    def _install(self, features: list[Feature], signature: Signature) -> None:
        modified = None if signature is None else datetime.fromtimestamp(signature[2] / 1e9, UTC)
        self._table = FeatureTable(tuple(features), version=self._version(signature),
                                   filter_columns=PROJECT_FILTERS, temporal=PROJECT_TEMPORAL,
                                   modified=modified)
        self._signature = signature

    @staticmethod
    def _version(signature: Signature) -> str:
        return "0" if signature is None else f"{signature[0]:x}-{signature[1]:x}-{signature[2]:x}"

    def snapshot(self) -> FeatureTable:
        """The current features; a stat() per call notices writes by other processes."""
        if _signature(self.path) != self._signature:
            with self._mutex:
                if _signature(self.path) != self._signature:
                    self._load()
        return self._table

    def _write(self, features: list[Feature]) -> None:
        try:
            atomic_write_bytes(self.path, encode_store(features))
        except OSError as exc:
            raise StoreWriteFailed(
                f"The project store could not be written ({exc.strerror or exc}); nothing was changed. "
                "Try again later; if it persists, tell the operator.") from exc
        # No re-read: every writer holds the file lock, so what is on disk is exactly `features`.
        self._install(features, _signature(self.path))

    def add(self, feature: Feature) -> Feature:
        """Append a new feature."""
        with self._mutex, self._lock:
            self._refresh_locked()
            if self._table.get(feature["id"]) is not None:
                raise ValueError(f"id {feature['id']!r} exists")
            self._write([*self._table.features, feature])
        return feature

    def change(self, fid: str, change: Change) -> Feature | None:
        """Replace or delete one feature, keeping the order of the others."""
        with self._mutex, self._lock:
            self._refresh_locked()
            features = list(self._table.features)
            i = self._table.position.get(fid)
            if i is None:
                raise NotFound(f"There is no project {fid!r}.")
            new = change(features[i])
            if new is None:
                del features[i]
            else:
                features[i] = new
            self._write(features)
        return new

    def _refresh_locked(self) -> None:
        if _signature(self.path) != self._signature:
            self._load()

    def close(self) -> None:
        """Nothing to release: the lock is held only during writes."""
