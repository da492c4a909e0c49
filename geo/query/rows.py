"""The rows behind a lineage of table versions, and how one version's rows relate to another's.

`Rows` holds, by slot, each row's serialised feature, its id and its shapely geometry. Slots are only
ever appended: a new or changed feature gets a new slot and an old slot is never written again, so
every version of a table (old ones that readers still hold included) reads the same bytes at the
same slot, and a version is just an array of slots in layer order. Two versions hold the same row
exactly when they hold the same slot; `Carry` says which rows a version kept from an earlier one, so
that what was computed per row for the earlier one is moved over and only the new rows are computed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import shapely

IntArray = npt.NDArray[np.intp]
ObjectArray = npt.NDArray[np.object_]


def compact(data: bytes) -> bytes:
    """`data` in a bytes object of its own size.

    A bytes object from orjson.dumps keeps orjson's whole output buffer (measured with orjson 3.13:
    about 4 kB for a 400-byte feature, so 100,000 features held 400 MB instead of 40). A copy is
    exactly as long; kept bytes are copied once, when they are stored."""
    return bytes(memoryview(data))


def encode(feature: dict[str, Any]) -> bytes:
    """A feature's GeoJSON bytes, as stored (compact)."""
    return compact(orjson.dumps(feature))


def parse_geometries(features: Sequence[dict[str, Any]]) -> ObjectArray:
    """The features' geometries as shapely objects (None where a feature has none).

    All of them go to GEOS as one GeometryCollection, split again into its members: one parse and
    one transient string, instead of one string (each holding an orjson buffer) per feature."""
    out = np.empty(len(features), dtype=object)
    present = [i for i, f in enumerate(features) if f.get("geometry") is not None]
    if present:
        doc = orjson.dumps({"type": "GeometryCollection",
                            "geometries": [features[i]["geometry"] for i in present]})
        out[present] = shapely.get_parts(shapely.from_geojson(doc))
    return out


class Vocabulary:
    """The distinct string values of one column, each with a small integer code (append only)."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self._lock = threading.Lock()

    def code(self, value: Any) -> int:
        """The code of `value` (given one when first seen); -1 for anything but a string."""
        if not isinstance(value, str):
            return -1
        found = self.codes.get(value)
        if found is not None:
            return found
        with self._lock:
            return self.codes.setdefault(value, len(self.codes))


class Rows:
    """Append-only storage of rows by slot: bytes, id and geometry; shared by a lineage of versions.

    Readers only read slots of their own version, all below `size` when the version was made, so an
    append (which only writes above it) never disturbs them.
    """

    def __init__(self, encoded: list[bytes], ids: list[str], geometries: ObjectArray, next_key: int,
                 vocabularies: dict[str, Vocabulary] | None = None) -> None:
        self.encoded = encoded
        self.ids = ids
        self._geometries = geometries
        self.size = len(encoded)
        # Order keys (see FeatureTable) are drawn from here, so that no two versions share a new one.
        self.next_key = next_key
        self.vocabularies = vocabularies if vocabularies is not None else {}
        # Row key sets (which properties a row has) are shared between rows, not held once per row.
        self._key_sets: dict[frozenset[str], frozenset[str]] = {}
        self._lock = threading.Lock()

    def geometries(self, slots: IntArray) -> ObjectArray:
        """The geometries at these slots."""
        return self._geometries[slots]

    def vocabulary(self, name: str) -> Vocabulary:
        """The vocabulary of column `name` (the same object for the whole lineage)."""
        with self._lock:
            return self.vocabularies.setdefault(name, Vocabulary())

    def key_set(self, keys: frozenset[str]) -> frozenset[str]:
        """One shared copy of this set of property names."""
        return self._key_sets.setdefault(keys, keys)

    def append(self, encoded: list[bytes], ids: list[str], geometries: ObjectArray) -> IntArray:
        """Store new rows; their slots."""
        with self._lock:
            start, count = self.size, len(encoded)
            if start + count > len(self._geometries):
                grown = np.empty(max(2 * len(self._geometries), start + count, 64), dtype=object)
                grown[:start] = self._geometries[:start]
                grown[start:start + count] = geometries
                self._geometries = grown
            else:
                self._geometries[start:start + count] = geometries
            self.encoded.extend(encoded)
            self.ids.extend(ids)
            self.size = start + count
        return np.arange(start, start + count, dtype=np.intp)

    def new_keys(self, count: int) -> IntArray:
        """`count` order keys greater than any given before."""
        with self._lock:
            start = self.next_key
            self.next_key += count
        return np.arange(start, start + count, dtype=np.intp)

    def compacted(self, slots: IntArray) -> tuple[Rows, IntArray]:
        """A new storage holding only the rows at `slots`, in that order, and the renumbering (old slot
        -> new slot, -1 for a row left behind). This storage is left as it is for its readers."""
        listed = slots.tolist()
        encoded, ids = self.encoded, self.ids
        rows = Rows([encoded[s] for s in listed], [ids[s] for s in listed], self._geometries[slots],
                    self.next_key, self.vocabularies)
        rows._key_sets = self._key_sets
        renumber = np.full(self.size, -1, dtype=np.intp)
        renumber[slots] = np.arange(len(slots), dtype=np.intp)
        return rows, renumber


@dataclass(frozen=True)
class Carry:
    """How the rows of a version relate to those of an earlier one: `kept[i]` is the earlier row at
    `source[i]`, unchanged; the rows at `fresh` are new or changed since. Writes keep the order of the
    rows they do not delete, so the kept rows come in runs: a version a few writes later is a few
    slices of the earlier one with the fresh rows between them (`segments`)."""

    size: int
    before: int  # how many rows the earlier version has
    kept: IntArray
    source: IntArray
    fresh: IntArray

    @classmethod
    def between(cls, earlier: IntArray, later: IntArray, slot_count: int) -> Carry:
        """From the slots of two versions of one storage (-1 in `earlier`: a row it no longer has)."""
        where = np.full(slot_count, -1, dtype=np.intp)
        valid = earlier >= 0
        where[earlier[valid]] = np.flatnonzero(valid)
        found = where[later]
        kept = np.flatnonzero(found >= 0)
        return cls(len(later), len(earlier), kept, found[kept], np.flatnonzero(found < 0))

    def order(self) -> IntArray:
        """For each row, where it is in the earlier rows followed by the fresh ones."""
        out = np.empty(self.size, dtype=np.intp)
        out[self.kept] = self.source
        out[self.fresh] = np.arange(self.before, self.before + len(self.fresh), dtype=np.intp)
        return out

    @cached_property
    def segments(self) -> list[tuple[bool, int, int]]:
        """The rows in order as runs: `(False, a, b)` for earlier rows a..b-1, `(True, a, b)` for
        fresh rows a..b-1 (the fresh rows numbered in the order they come)."""
        if not self.size:
            return []
        order = self.order()
        breaks = np.flatnonzero(np.diff(order) != 1) + 1
        out: list[tuple[bool, int, int]] = []
        before = self.before
        for a, b in zip([0, *breaks.tolist()], [*breaks.tolist(), self.size], strict=True):
            lo = int(order[a])
            hi = lo + b - a
            if lo < before < hi:  # a run across the end of the earlier rows: two runs
                out += [(False, lo, before), (True, 0, hi - before)]
            elif lo >= before:
                out.append((True, lo - before, hi - before))
            else:
                out.append((False, lo, hi))
        return out

    def pieces(self, earlier: Any, fresh: Any) -> list[Any]:
        """Slices of `earlier` (anything sliceable, holding the earlier version's rows) and of `fresh`
        (the fresh rows) that make up this version's rows, in order."""
        return [fresh[a:b] if new else earlier[a:b] for new, a, b in self.segments]

    def array(self, earlier: npt.NDArray[Any], fresh: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """A per-row array of this version: the earlier one's values moved over, `fresh`'s for the rest
        (slices copied whole: about a memcpy of the array)."""
        pieces = self.pieces(earlier, fresh)
        if not pieces:
            return earlier[:0]
        return np.concatenate(pieces).astype(earlier.dtype, copy=False)
