"""The store file's format: a GeoJSON FeatureCollection, one feature per line, read and written.

The store writes `HEAD`, then one feature's encoding per line (separated by ",\n"), then `TAIL`: a plain
FeatureCollection GDAL and QGIS open, whose diffs are one line per changed feature. Such a file is read a
line at a time (`read_table`), so that only a chunk of parsed features is in memory at once; a file laid
out otherwise (edited by hand) is parsed whole and reads the same. Every feature is checked (a
Feature, a string id, a geometry and properties objects, ids unique); a file that fails is refused with
where and why, never overwritten.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import orjson

from geo.errors import StoreCorrupt
from geo.query.featuretable import FeatureTable
from geo.schema import PROJECT_FILTERS, PROJECT_TEMPORAL
from geo.store import journal
from geo.store.journal import Feature

HEAD = b'{"type":"FeatureCollection","name":"projects","features":[\n'
TAIL = b"\n]}\n"
# Features encoded per chunk of the new file: a few hundred KB at a time, never the whole file.
CHUNK = 1000
# Where one feature's encoding ends and the next one's begins, as the table joins them (a feature's
# encoding starts with its "type": store files are written so, and a JSON string cannot hold this
# sequence, its quotes would be escaped). A line break there keeps one feature per line.
_BETWEEN, _LINE_BETWEEN = b'},{"type":"Feature",', b'},\n{"type":"Feature",'


def encode_table(table: FeatureTable) -> Iterator[bytes]:
    """A store file's bytes for the features of `table`, in chunks: one feature per line (readable,
    small diffs), each the encoding the table serves. Were a feature's encoding to start otherwise,
    its line break would be missing: the file would still be the same JSON."""
    yield HEAD
    count = len(table)
    for start in range(0, count, CHUNK):
        chunk = table.join(range(start, min(start + CHUNK, count))).replace(_BETWEEN, _LINE_BETWEEN)
        yield chunk if start == 0 else b",\n" + chunk
    yield TAIL


def content_digest() -> hashlib.blake2b:
    """A running digest of a store file's bytes: fed them all, its `hexdigest()` is their
    `content_version` (so a file written in chunks gets its version as the chunks go by)."""
    return hashlib.blake2b(digest_size=10)


def content_version(data: bytes) -> str:
    """The version of a store file's bytes: a digest, so it changes whenever the content does."""
    digest = content_digest()
    digest.update(data)
    return digest.hexdigest()


def encode_store(features: list[Feature]) -> bytes:
    """A store file's bytes: one feature per line keeps the file readable and its diffs small (the
    bytes `encode_table` writes, from plain features)."""
    return HEAD + b",\n".join(orjson.dumps(f) for f in features) + TAIL


def _whole(data: bytes, path: Path) -> list[object]:
    """The features list of a store file's bytes, parsed at once; StoreCorrupt says where and why."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise StoreCorrupt(f"{path}: not valid JSON ({exc}). The file was left untouched; restore it "
                           "from a backup or fix it by hand.") from exc
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(
            doc.get("features"), list):
        raise StoreCorrupt(f"{path}: not a GeoJSON FeatureCollection with a 'features' list. "
                           "The file was left untouched.")
    features: list[object] = doc["features"]
    return features


class _NotLines(Exception):
    """The file is not laid out one feature per line, as the store writes it: parse it whole."""


def _by_line(data: bytes) -> Iterator[object]:
    """The features of a store file laid out as the store writes it (HEAD, one feature per line
    separated by ",\n", TAIL), parsed one line at a time; raises _NotLines at the first line that is
    not so (a file edited by hand), before or after yielding others.

    Line by line, only a chunk of parsed features is in memory at once (FeatureTable reads them a chunk
    at a time), and JSON strings hold no raw line break, so a line is exactly one feature's encoding."""
    if not (data.startswith(HEAD) and data.endswith(TAIL)):
        raise _NotLines
    view = memoryview(data)
    pos, stop = len(HEAD), len(data) - len(TAIL)
    while pos < stop:
        newline = data.find(b"\n", pos, stop)
        last = newline < 0
        end = stop if last else newline
        if last == (data[end - 1] == 0x2C):  # ","
            raise _NotLines  # every line but the last ends with the comma between features
        try:
            yield orjson.loads(view[pos:end if last else end - 1])
        except orjson.JSONDecodeError:
            raise _NotLines from None
        pos = end + 1


def _checked(features: Iterable[object], path: Path, seen: set[str]) -> Iterator[Feature]:
    """`features`, each checked as a store file's must be; `seen` collects their ids (unique)."""
    for n, feat in enumerate(features):
        fault = journal.feature_fault(feat)
        if fault is not None or not isinstance(feat, dict):
            raise StoreCorrupt(f"{path}: features[{n}] {fault}. The file was left untouched.")
        if feat["id"] in seen:
            raise StoreCorrupt(f"{path}: features[{n}] repeats the id {feat['id']!r}. "
                               "The file was left untouched.")
        seen.add(feat["id"])
        yield feat


def parse_store(data: bytes, path: Path) -> list[Feature]:
    """Read and check a store file's bytes, saying where and why when it is corrupt."""
    return list(_checked(_whole(data, path), path, set()))


def read_table(data: bytes | None, path: Path, overlay: journal.Overlay, version: str,
               modified: datetime | None) -> tuple[FeatureTable, set[str]]:
    """The table of a store file's bytes (None: no file) with a journal's overlay, and the file's ids.

    A file laid out as the store writes it is parsed a line at a time (see _by_line), any other whole.
    """
    seen: set[str] = set()
    if data is None:
        return project_table(overlay.over(()), version, modified), seen
    try:
        features = overlay.over(_checked(_by_line(data), path, seen))
        return project_table(features, version, modified), seen
    except _NotLines:
        seen = set()
        features = overlay.over(_checked(_whole(data, path), path, seen))
        return project_table(features, version, modified), seen


def project_table(features: Iterable[Feature], version: str, modified: datetime | None) -> FeatureTable:
    """A table of project features (the store's filter and time columns)."""
    return FeatureTable(features, version=version, filter_columns=PROJECT_FILTERS, temporal=PROJECT_TEMPORAL,
                        modified=modified)


@contextmanager
def no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused: parsing a large store makes a million containers at once, and
    the collections they set off would walk all of them again and again (3x slower at 100,000 projects).
    Nothing made while loading is cyclic garbage; reference counting frees the rest as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


