"""An immutable, indexed version of one layer's features, built for fast reads and cheap updates.

Reads: each feature is serialised once to bytes and a page of items is a join of those bytes; spatial
queries go through a shapely STRtree and attribute filters through numpy arrays, so no request loops
over features in Python.

Layout (measured with synthetic projects of about 400 bytes: 1 kB a project in memory, 2 kB with
the memos of the usual reads; the tuple of parsed dicts plus orjson's buffers of before took 10 kB):

- The rows live in a `Rows` storage shared by the versions of one lineage (geo/query/rows.py): by
  slot, one `bytes` per feature (the only copy of its content, copied to its own size: see
  `rows.compact`), its id and its shapely geometry. A version is an array of slots in layer order,
  plus sorted integer order keys (a replaced feature keeps its key, a new one gets a larger one) and
  an id -> key map: a base dict shared by many versions and a small overlay of the ids added or
  deleted since. `position[fid]` is a dict lookup and a binary search; `features` and `get` decode a
  feature's bytes on demand (orjson, microseconds), so no parsed dicts are kept.
- Properties are held as columns only where they are indexed: integer codes of the filter columns,
  the start and end instants. Everything else (CQL2 frames, typed columns, stats inputs, key sets,
  per-CRS encodings) is derived on first use and kept with the version (`derived`).
- A version refers to nothing that refers back to it, so it is freed as soon as its last reader lets
  go (a reference cycle would wait for the cyclic garbage collector, and versions pile up meanwhile).

Writes: `apply` makes a new version from a list of changes without touching the old one, whose
readers go on. It serialises and parses only the changed features, appends them to the storage and
copies the slot and key arrays (memcpy of 8 bytes a row: about 25 µs at 100,000 rows; one change
costs about 0.4 ms there, 0.2 ms at 1,000). What was derived per row for the old version is not
recomputed: the new version inherits it as pending, and on first use moves the rows it kept (as
slices: writes keep the order of the rows they do not delete) and computes only the changed ones
(`rows.Carry`); a memo not asked for in `CARRY_GENERATIONS` versions is dropped. The spatial index
is an STRtree over an earlier version's rows plus a brute-force delta (geo/query/spatialindex.py).
When the storage holds more than about twice the live rows (replaced and deleted ones), the next
`apply` compacts it into a new one; the id map's overlay is folded into a new base when it grows past
an eighth of the rows. Both are O(rows), once per O(rows) writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from itertools import islice
from typing import Any, TypeVar, cast, overload

import numpy as np
import numpy.typing as npt
import orjson
import shapely

from geo.lru import SizedLRU
from geo.query.frame import Frame
from geo.query.rows import Carry, ObjectArray, Rows, Vocabulary, encode, parse_geometries
from geo.query.rows import IntArray as IntArray
from geo.query.spatialindex import SpatialIndex, boxes, rebuild_after
from geo.schema import Queryable, ScalarType

T = TypeVar("T")
A = TypeVar("A", bound=npt.NDArray[Any])
Feature = dict[str, Any]
Change = tuple[str, Feature | None]
# Computes one value per feature, for a list of features.
RowCompute = Callable[[list[Feature]], Any]

# Rows decoded at a time when something is computed over a whole version (bounds the transient memory).
CHUNK = 4096
# A memo inherited from an earlier version and not asked for in this many versions is dropped.
CARRY_GENERATIONS = 16
# The storage is compacted when it holds more than twice the live rows plus this many.
COMPACT_SLACK = 1024
# The id map's overlay is folded into a new base when it passes an eighth of the rows, or this many.
FOLD_AT_LEAST = 1024
# Arrays computed for recent requests, kept per version (`FeatureTable.recent`: filter masks, a byte a
# row, and selections, eight bytes a chosen row): this many, within this many bytes, each charged its
# bytes and the array object around them.
RECENT_ENTRIES = 32
RECENT_BYTES = 8 << 20
RECENT_OVERHEAD = 112
_ABSENT = object()


def to_day(value: Any, end: bool = False) -> np.datetime64:
    """Parse a date or datetime property into a numpy instant; missing or bad values are NaT.

    A bare date stands for its first second, or for its last one when it ends an interval
    (`end_date` 2028-06-30 runs through that whole day)."""
    if value in (None, ""):
        return np.datetime64("NaT", "s")
    try:
        text = str(value).replace("Z", "+00:00")
        parsed = datetime.fromisoformat(text) if "T" in text else datetime.combine(
            date.fromisoformat(text[:10]), datetime.max.time() if end else datetime.min.time())
    except ValueError:
        return np.datetime64("NaT", "s")
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            return np.datetime64("NaT", "s")
    return np.datetime64(parsed.replace(microsecond=0), "s")


def _typed(value: Any, kind: ScalarType) -> Any:
    """One property value in its queryable's kind (None when it is missing or of another type)."""
    if kind == "string":
        return value if isinstance(value, str) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind in ("number", "integer"):
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if not isinstance(value, str):
        return None
    if kind == "date":
        day = to_day(value)
        return None if np.isnat(day) else day.astype("datetime64[D]")
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        stamp = stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo is not None else stamp
    except (ValueError, OverflowError):
        return None
    return np.datetime64(stamp, "us")


def _objects(values: list[Any]) -> ObjectArray:
    """An object array of these values (never a 2-D one, whatever they are)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


# Where time has no end: an interval open at either side runs to one of these.
_DAWN = np.datetime64("0001-01-01T00:00:00", "s")
_DUSK = np.datetime64("9999-12-31T23:59:59", "s")


@dataclass(frozen=True)
class _Pending:
    """A memo of an earlier version, waiting to be carried over to this one on first use."""

    value: Any
    slots: IntArray  # the earlier version's slots (what `value` is aligned with)
    generation: int


class _Listed(Sequence[T]):
    """A storage list's entries in one version's order (read-only)."""

    def __init__(self, entries: list[T], slots: IntArray) -> None:
        self._entries = entries
        self._slots = slots

    def __len__(self) -> int:
        return len(self._slots)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        entries = self._entries
        if isinstance(index, slice):
            return [entries[s] for s in self._slots[index].tolist()]
        return entries[int(self._slots[index])]

    def __iter__(self) -> Iterator[T]:
        entries = self._entries
        return (entries[s] for s in self._slots.tolist())

    def __eq__(self, other: object) -> bool:
        """Equal to a list or tuple (or another view) of the same entries in the same order, as the
        tuple this view replaces was."""
        if isinstance(other, _Listed | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class _Features(Sequence[Feature]):
    """A version's features, each decoded from its bytes when asked for (a new dict every time)."""

    def __init__(self, encoded: list[bytes], slots: IntArray) -> None:
        self._encoded = encoded
        self._slots = slots

    def __len__(self) -> int:
        return len(self._slots)

    @overload
    def __getitem__(self, index: int) -> Feature: ...

    @overload
    def __getitem__(self, index: slice) -> list[Feature]: ...

    def __getitem__(self, index: int | slice) -> Feature | list[Feature]:
        encoded = self._encoded
        if isinstance(index, slice):
            return [orjson.loads(encoded[s]) for s in self._slots[index].tolist()]
        feature: Feature = orjson.loads(encoded[int(self._slots[index])])
        return feature

    def __iter__(self) -> Iterator[Feature]:
        encoded = self._encoded
        return (orjson.loads(encoded[s]) for s in self._slots.tolist())


class _Positions(Mapping[str, int]):
    """Feature id -> position in one version: the id's order key (from the overlay of ids added or
    deleted since the base map was made, else from the base map), then a binary search of the keys.

    It holds the version's parts, not the table: a table that refers to itself through its parts
    would be freed only by the cyclic garbage collector, which may run rarely while versions are
    made many a second."""

    def __init__(self, base: dict[str, int], overlay: dict[str, int | None], keys: IntArray,
                 ids: Sequence[str]) -> None:
        self._base = base
        self._overlay = overlay
        self._keys = keys
        self._ids = ids

    def find(self, fid: str) -> int | None:
        """The position of feature `fid`, or None."""
        key = self._overlay.get(fid, _ABSENT)
        if key is _ABSENT:
            key = self._base.get(fid)
        if not isinstance(key, int):
            return None
        keys = self._keys
        at = int(keys.searchsorted(key))
        return at if at < len(keys) and keys[at] == key else None

    def __getitem__(self, fid: str) -> int:
        found = self.find(fid)
        if found is None:
            raise KeyError(fid)
        return found

    def get(self, fid: str, default: Any = None) -> Any:
        found = self.find(fid)
        return default if found is None else found

    def __contains__(self, fid: object) -> bool:
        return isinstance(fid, str) and self.find(fid) is not None

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)


class FeatureTable:
    """The features of one layer at one version, with their indexes and cached encodings."""

    version: str
    filter_columns: tuple[str, ...]
    temporal: tuple[str, str] | None
    # When this version was written (the store file's mtime); None when unknown.
    modified: datetime | None

    def __init__(self, features: Iterable[Feature], version: str, filter_columns: tuple[str, ...] = (),
                 temporal: tuple[str, str] | None = None, modified: datetime | None = None) -> None:
        """A table built from scratch from parsed features (their ids unique).

        `features` is read a chunk at a time, so a loader that parses its file a chunk at a time (an
        iterator) never holds more than a chunk of parsed features; parsed dicts interleaved with the
        table in memory would keep the allocator from giving their memory back."""
        vocabularies = {name: Vocabulary() for name in filter_columns}
        indexed = _indexed_rows(filter_columns, temporal, vocabularies)
        ids: list[str] = []
        encoded: list[bytes] = []
        geometries: list[ObjectArray] = []
        columns: dict[Hashable, list[npt.NDArray[Any]]] = {key: [] for key, _ in indexed}
        stream = iter(features)
        while chunk := list(islice(stream, CHUNK)):
            ids += [str(f["id"]) for f in chunk]
            encoded += [encode(f) for f in chunk]
            geometries.append(parse_geometries(chunk))
            # What every select needs, computed now from the parsed features (nothing to decode later).
            for key, compute in indexed:
                columns[key].append(compute(chunk))
        n = len(ids)
        rows = Rows(encoded, ids, np.concatenate(geometries) if geometries else np.empty(0, dtype=object), n,
                    vocabularies)
        slots = np.arange(n, dtype=np.intp)
        self._setup(rows, slots, slots, dict(zip(ids, range(n), strict=True)), {}, None, {}, 0,
                    version, filter_columns, temporal, modified)
        for key, compute in indexed:
            parts = columns[key] or [compute([])]
            self._derived[("rows", key)] = np.concatenate(parts)
            self._carriable.add(("rows", key))

    def _setup(self, rows: Rows, slots: IntArray, keys: IntArray, base: dict[str, int],
               overlay: dict[str, int | None], index: SpatialIndex | None, pending: dict[Hashable, _Pending],
               generation: int, version: str, filter_columns: tuple[str, ...],
               temporal: tuple[str, str] | None, modified: datetime | None) -> None:
        self.version = version
        self.filter_columns = filter_columns
        self.temporal = temporal
        self.modified = modified
        self._rows = rows
        self._slots = slots  # position -> storage slot
        self._keys = keys  # position -> order key, ascending
        # id -> order key: `_overlay` (the ids added or deleted since `_base` was made), then `_base`.
        self._base = base
        self._overlay = overlay
        self._index = index
        self._pending = pending
        self._generation = generation
        # What is derived from this version on first use (CQL2 frames, stats inputs, per-CRS encodings).
        self._derived: dict[Hashable, Any] = {}
        self._carriable: set[Hashable] = set()  # the memos a later version may carry over
        self._carries: dict[int, tuple[IntArray, Carry]] = {}
        # Reentrant: a derived value may be built from another (the parameter queryables from the queryables).
        self._lock = threading.RLock()
        # Arrays of recent requests (`recent`): bounded, unlike `_derived`, because clients choose the keys.
        self._recent: SizedLRU[npt.NDArray[Any]] = SizedLRU(RECENT_ENTRIES, RECENT_BYTES)
        self.features: Sequence[Feature] = _Features(rows.encoded, slots)
        self.ids: Sequence[str] = _Listed(rows.ids, slots)
        self.encoded: Sequence[bytes] = _Listed(rows.encoded, slots)
        self._positions = _Positions(base, overlay, keys, self.ids)
        self.position: Mapping[str, int] = self._positions

    def __len__(self) -> int:
        return len(self._slots)

    @classmethod
    def empty(cls, version: str = "0") -> FeatureTable:
        """A table with no features."""
        return cls((), version)

    # --- writes --------------------------------------------------------------------------------

    def apply(self, changes: Sequence[Change], *, version: str,
              modified: datetime | None = None) -> FeatureTable:
        """A new table: this one with `changes` applied in order; this one is left as it is.

        `(fid, feature)` adds `feature` (appended after the others) or replaces the feature `fid` (which
        keeps its position); `(fid, None)` deletes `fid` (the features after it move up one). Raises
        KeyError when a deleted id is absent, ValueError when a feature's `id` is not its `fid`, and
        whatever serialising or parsing a feature raises; then nothing is changed.

        Its cost grows with the changes, not with the table (see the module docstring).
        """
        deleted: dict[int, str] = {}  # position here -> id
        replaced: dict[int, Feature] = {}  # position here -> its new feature
        appended: dict[str, Feature] = {}  # in order of addition
        for fid, feature in changes:
            if feature is not None and feature.get("id") != fid:
                raise ValueError(f"a change of {fid!r} holds a feature with the id {feature.get('id')!r}")
            if fid in appended:
                if feature is None:
                    del appended[fid]
                else:
                    appended[fid] = feature  # replaced where it was added
                continue
            at = self._find(fid)
            if at is not None and at not in deleted:
                if feature is None:
                    deleted[at] = fid
                    replaced.pop(at, None)
                else:
                    replaced[at] = feature
            elif feature is None:
                raise KeyError(fid)
            else:
                appended[fid] = feature
        fresh = [*replaced.values(), *appended.values()]
        # Everything that can fail comes before the storage is touched.
        encoded = [encode(f) for f in fresh]
        geometries = parse_geometries(fresh)
        rows = self._rows
        new = rows.append(encoded, [str(f["id"]) for f in fresh], geometries)
        slots, keys = self._slots, self._keys
        if replaced:
            slots = slots.copy()
            slots[list(replaced)] = new[:len(replaced)]
        if deleted:
            gone = sorted(deleted)
            slots, keys = np.delete(slots, gone), np.delete(keys, gone)
        overlay = dict(self._overlay)
        for fid in deleted.values():
            overlay[fid] = None
        if appended:
            added = rows.new_keys(len(appended))
            slots = np.concatenate([slots, new[len(replaced):]])
            keys = np.concatenate([keys, added])
            overlay.update(zip(appended, added.tolist(), strict=True))
        base = self._base
        if len(overlay) > max(FOLD_AT_LEAST, len(slots) // 8):
            base, overlay = self._folded(overlay), {}
        pending = self._inheritance()
        index = self._index
        if rows.size > 2 * len(slots) + COMPACT_SLACK:
            rows, renumber = rows.compacted(slots)
            slots = np.arange(len(slots), dtype=np.intp)
            pending = _renumbered(pending, renumber)
            index = None if index is None else index.renumbered(renumber, rows.size)
        table = object.__new__(FeatureTable)
        table._setup(rows, slots, keys, base, overlay, index, pending, self._generation + 1, version,
                     self.filter_columns, self.temporal, modified)
        return table

    def _folded(self, overlay: dict[str, int | None]) -> dict[str, int]:
        """A new base id map: this one's with `overlay` applied (O(rows), once per many writes)."""
        base = dict(self._base)
        for fid, key in overlay.items():
            if key is None:
                base.pop(fid, None)
            else:
                base[fid] = key
        return base

    def _inheritance(self) -> dict[Hashable, _Pending]:
        """The memos a version made from this one may carry over: this one's, then what this one
        inherited and has not used yet, unless it is too old."""
        # Copies without the lock (atomic in CPython): a write must not wait for a reader's long build.
        pending = {key: p for key, p in dict(self._pending).items()
                   if self._generation - p.generation < CARRY_GENERATIONS}
        derived = self._derived
        for key in tuple(self._carriable):
            pending[key] = _Pending(derived[key], self._slots, self._generation)
        return pending

    # --- memos ---------------------------------------------------------------------------------

    def derived(self, key: Hashable, build: Callable[[], T],
                carry: Callable[[T, Carry], T] | None = None) -> T:
        """`build()`'s result, computed once for this version and kept (the table never changes).

        With `carry`, a later version that finds this memo computes its own as `carry(this value, how
        its rows relate to this version's)` instead of building it from scratch.
        """
        try:
            value: T = self._derived[key]
            return value
        except KeyError:
            pass
        with self._lock:
            if key not in self._derived:
                earlier = self._pending.get(key)
                if carry is not None and earlier is not None:
                    self._derived[key] = carry(earlier.value, self._carry_from(earlier.slots))
                else:
                    self._derived[key] = build()
                if carry is not None:
                    self._carriable.add(key)
                # Only now: a write copying this version's memos meanwhile finds the earlier one.
                self._pending.pop(key, None)
            value = self._derived[key]
        return value

    def recent(self, key: Hashable, build: Callable[[], A]) -> A:
        """`build()`, an array computed from this version for a request (a filter's mask, a selection),
        kept read-only among the RECENT_ENTRIES most recently used: a client paging through a filter has
        it evaluated once per version, not once per page. `key` says what the array depends on besides
        the version; a build that raises keeps nothing."""
        found = self._recent.get(key)
        if found is None:
            found = build()
            found.flags.writeable = False  # shared by the requests that find it
            self._recent.put(key, found, found.nbytes + RECENT_OVERHEAD)
        return cast(A, found)

    def kept(self, key: Hashable) -> npt.NDArray[Any] | None:
        """The array `recent` keeps under `key`, if it does (nothing is built)."""
        return self._recent.get(key)

    def _carry_from(self, slots: IntArray) -> Carry:
        """How this version's rows relate to those of the version with these slots (kept per version)."""
        known = self._carries.get(id(slots))
        if known is not None and known[0] is slots:
            return known[1]
        carry = Carry.between(slots, self._slots, self._rows.size)
        self._carries[id(slots)] = (slots, carry)
        return carry

    def _chunks(self) -> Iterator[IntArray]:
        """This version's positions, a bounded number at a time."""
        n = len(self)
        for start in range(0, max(n, 1), CHUNK):
            yield np.arange(start, min(start + CHUNK, n), dtype=np.intp)

    def _per_row(self, key: Hashable, compute: Callable[[IntArray], npt.NDArray[Any]]) -> npt.NDArray[Any]:
        """A per-row array, `compute(positions)` for the rows at `positions`; carried over by later
        versions, which compute only their new and changed rows."""
        return self.derived(
            ("rows", key), lambda: np.concatenate([compute(chunk) for chunk in self._chunks()]),
            lambda earlier, carry: carry.array(earlier, compute(carry.fresh)))

    def decode(self, positions: Iterable[int]) -> list[Feature]:
        """The features at these positions, decoded from their bytes."""
        encoded = self._rows.encoded
        return [orjson.loads(encoded[s]) for s in self._slots[_positions(positions)].tolist()]

    def rows(self, key: Hashable, compute: Callable[[list[Feature]], npt.NDArray[Any]]) -> npt.NDArray[Any]:
        """A per-row array of this version, `compute(features)` for a list of features (each row's value
        from its feature alone); later versions compute it only for their new and changed rows."""
        return self._per_row(("features", key), lambda positions: compute(self.decode(positions)))

    def geometry_rows(self, key: Hashable,
                      compute: Callable[[npt.NDArray[np.object_]], npt.NDArray[Any]]) -> npt.NDArray[Any]:
        """A per-row array of this version, `compute(geometries)` for an array of the rows' shapes (each
        row's value from its geometry alone); later versions compute it only for their new and changed
        rows. No feature is decoded (`rows` decodes them)."""
        return self._per_row(("geometries", key), lambda positions: compute(self.geometries[positions]))

    def row_cache(self, key: Hashable) -> ObjectArray:
        """A per-row cache, None where nothing is kept yet; later versions keep the entries of their
        unchanged rows. Writers fill entries in place (two writing one entry write the same value)."""
        def fresh(count: int) -> ObjectArray:
            return np.full(count, None, dtype=object)
        return self.derived(("cache", key), lambda: fresh(len(self)),
                            lambda earlier, carry: carry.array(earlier, fresh(len(carry.fresh))))

    def _indexed(self, key: Hashable) -> npt.NDArray[Any]:
        """A column select reads (see `_indexed_rows`)."""
        found: npt.NDArray[Any] | None = self._derived.get(("rows", key))
        if found is not None:  # every select asks: no closures built when it is there
            return found
        compute = dict(_indexed_rows(self.filter_columns, self.temporal, self._rows.vocabularies))[key]
        return self._per_row(key, lambda positions: compute(self.decode(positions)))

    @property
    def starts(self) -> npt.NDArray[np.datetime64]:
        """Each feature's start instant (NaT: none); empty without a time span."""
        if not self.temporal:
            return np.array([], dtype="datetime64[s]")
        return self._indexed(("starts",))

    @property
    def ends(self) -> npt.NDArray[np.datetime64]:
        """Each feature's end instant (NaT: none); empty without a time span."""
        if not self.temporal:
            return np.array([], dtype="datetime64[s]")
        return self._indexed(("ends",))

    @property
    def geometries(self) -> ObjectArray:
        """The features' shapely geometries in layer order (gathered once per version)."""
        return self.derived(("geometries",), lambda: self._rows.geometries(self._slots))

    # --- reads ---------------------------------------------------------------------------------

    def _find(self, fid: str) -> int | None:
        """The position of feature `fid`, or None."""
        return self._positions.find(fid)

    def bounds(self) -> tuple[float, float, float, float] | None:
        """The bounding box of all features, or None when there are none."""
        if not len(self):
            return None
        boxes = self._per_row(("bounds",), lambda positions: shapely.bounds(
            self._rows.geometries(self._slots[positions])).reshape(-1, 4))
        # fmin/fmax skip features without a geometry (NaN) and warn of nothing.
        low, high = np.fmin.reduce(boxes[:, :2], axis=0), np.fmax.reduce(boxes[:, 2:], axis=0)
        return float(low[0]), float(low[1]), float(high[0]), float(high[1])

    def interval(self) -> tuple[str | None, str | None]:
        """The temporal extent (earliest start, latest end) as ISO strings; None for an open end.

        Only features with a time count (/req/core/fc-md-extent): one with an end and no start opens
        the extent's start, one with a start and no end (still running) opens its end."""
        if not self.temporal or not len(self):
            return None, None
        starts, ends = self.starts, self.ends
        timed = ~(np.isnat(starts) & np.isnat(ends))
        if not timed.any():
            return None, None
        starts, ends = starts[timed], ends[timed]
        start = None if np.isnat(starts).any() else str(starts.min()) + "Z"
        end = None if np.isnat(ends).any() else str(ends.max()) + "Z"
        return start, end

    def get(self, fid: str) -> Feature | None:
        """The feature with this id, or None."""
        i = self._find(fid)
        return None if i is None else self.features[i]

    def codes(self, name: str) -> tuple[npt.NDArray[np.int32], dict[str, int]]:
        """Filter column `name` as each feature's integer code (-1: missing or not a string), kept per
        version, and a copy of its vocabulary (value -> code; codes are shared by the whole lineage)."""
        return self._indexed(("codes", name)), dict(self._rows.vocabulary(name).codes)

    def _equal_any(self, name: str, wanted: Iterable[str]) -> npt.NDArray[np.bool_]:
        """Where column `name` holds one of `wanted`: a union of per-value masks kept for this version.

        Only values the column has held get a mask, so the memo stays as small as the vocabulary
        however many different values clients ask for.
        """
        codes = self._indexed(("codes", name))
        vocabulary = self._rows.vocabulary(name).codes
        out = np.zeros(len(self), dtype=bool)
        for value in wanted:
            code = vocabulary.get(value)
            if code is not None:
                out |= self.derived(("equals", name, value), partial(np.equal, codes, code))
        return out

    def _spatial(self) -> tuple[SpatialIndex, IntArray | None, IntArray, ObjectArray]:
        """The spatial index this version uses, where each slot is in this version (None: the tree's
        items are this version's rows, in order), and the positions and geometries of the rows the
        index does not hold (built once per version)."""
        def build() -> tuple[SpatialIndex, IntArray | None, IntArray, ObjectArray]:
            index = self._index
            # Found once: O(rows), about 0.2 ms at 100,000, on the first bbox after every write.
            outside = None if index is None else index.outside(self._slots)
            if index is None or outside is None or len(outside) > rebuild_after(len(self)):
                # A new tree holds exactly this version's rows, in order.
                index = self._index = SpatialIndex.build(self._rows, self._slots)
                return index, None, np.empty(0, dtype=np.intp), np.empty(0, dtype=object)
            if np.array_equal(index.slots, self._slots):
                return index, None, np.empty(0, dtype=np.intp), np.empty(0, dtype=object)
            position = np.full(self._rows.size, -1, dtype=np.intp)
            position[self._slots] = np.arange(len(self), dtype=np.intp)
            return index, position, outside, self._rows.geometries(self._slots[outside])
        return self.derived(("spatial",), build)

    def select(self, *, bbox: Sequence[float] | None = None,
               equals: Mapping[str, Iterable[str]] | None = None,
               interval: tuple[np.datetime64 | None, np.datetime64 | None] | None = None,
               ) -> IntArray:
        """Indices (in layer order) of features matching every given filter."""
        # None until a filter applies: an unfiltered page (the commonest) then takes every index without
        # building and scanning a mask of all-True.
        mask: npt.NDArray[np.bool_] | None = None
        # The bbox gives positions (a few among many: no mask of every row to build and scan).
        hits: IntArray | None = None
        if bbox is not None and len(self):
            index, position, outside, loose = self._spatial()
            found: list[IntArray] = []
            for box in boxes(bbox[0], bbox[1], bbox[2], bbox[3]):
                if position is None:  # the tree holds exactly this version's rows
                    found.append(index.items(box))
                    continue
                found.append(index.query(box, position))
                if len(outside):
                    found.append(outside[shapely.intersects(loose, box)])
            # In layer order, each once (a row may meet both halves of a box across the antimeridian).
            hits = np.sort(found[0]) if len(found) == 1 else np.unique(np.concatenate(found))
        for name, wanted in (equals or {}).items():
            if name in self.filter_columns:
                column = self._equal_any(name, wanted)
                mask = column if mask is None else mask & column
        if interval is not None and self.temporal:
            during = self._during(*interval)
            mask = during if mask is None else mask & during
        if hits is not None:
            return hits if mask is None else hits[mask[hits]]
        return np.arange(len(self), dtype=np.intp) if mask is None else np.flatnonzero(mask)

    def _during(self, lo: np.datetime64 | None, hi: np.datetime64 | None) -> npt.NDArray[np.bool_]:
        """Where a feature's [start, end] overlaps [lo, hi] (/req/core/fc-time-response).

        A feature with neither a start nor an end has no temporal geometry, and matches every
        interval (C); a missing end means still running, a missing start means since ever."""
        starts, ends = self.starts, self.ends
        untimed = np.isnat(starts) & np.isnat(ends)
        starts = np.where(np.isnat(starts), _DAWN, starts)
        ends = np.where(np.isnat(ends), _DUSK, ends)
        ok = np.ones(len(self), dtype=bool)
        if hi is not None:
            ok &= starts <= hi
        if lo is not None:
            ok &= ends >= lo
        return ok | untimed

    def equal_to(self, name: str, kind: ScalarType, wanted: Iterable[Any]) -> npt.NDArray[np.bool_]:
        """Where property `name`, read as `kind`, equals one of `wanted` (values of that kind); `id` is
        the feature's id (queryables.ID), not a property."""
        def typed(features: list[Feature]) -> ObjectArray:
            if name == "id":
                return _objects([str(f["id"]) for f in features])
            return _objects([_typed(f["properties"].get(name), kind) for f in features])
        column = self.rows(("typed", name, kind), typed)
        out = np.zeros(len(self), dtype=bool)
        for value in wanted:
            # Elementwise == on objects: None (missing) equals nothing, NaN equals nothing.
            out |= np.equal(column, value).astype(bool)
        return out

    def frame(self, queryables: tuple[Queryable, ...]) -> Frame:
        """Typed columns of these properties, built on first use and kept (CQL2 and sortby run on it);
        a later version moves the rows it kept and builds only its new ones."""
        def part(positions: IntArray) -> Frame:
            return Frame.build(self.decode(positions), self.ids_at(positions),
                               self._rows.geometries(self._slots[positions]), queryables)
        def carried(earlier: Frame, carry: Carry) -> Frame:
            return earlier.carried(carry, part(carry.fresh))
        return self.derived(("frame", queryables),
                            lambda: Frame.concat([part(chunk) for chunk in self._chunks()]), carried)

    def ids_at(self, positions: IntArray) -> list[str]:
        """The ids of the features at these positions."""
        ids = self._rows.ids
        return [ids[s] for s in self._slots[positions].tolist()]

    def property_names(self) -> frozenset[str]:
        """Every property name that some feature has."""
        rows = self._rows
        key_sets = self.rows(("key sets",), lambda features: _objects(
            [rows.key_set(frozenset(f["properties"])) for f in features]))
        return self.derived(("property names",), lambda: frozenset().union(*set(key_sets.tolist())))

    def encoded_at(self, indices: Iterable[int]) -> list[bytes]:
        """The stored bytes of the features at these positions."""
        encoded = self._rows.encoded
        return [encoded[s] for s in self._slots[_positions(indices)].tolist()]

    def join(self, indices: Iterable[int], properties: Sequence[str] | None = None) -> bytes:
        """The encodings of these features, comma-joined (the inside of a JSON array).

        Without `properties` the stored bytes are joined; with it only these features are re-encoded,
        keeping just the named properties.
        """
        if properties is None:
            return b",".join(self.encoded_at(indices))
        return b",".join([orjson.dumps(self.selected(i, properties)) for i in indices])

    def selected(self, index: int, properties: Sequence[str]) -> Feature:
        """Feature `index` with only the named properties."""
        feature = self.features[index]
        props = feature["properties"]
        return {**feature, "properties": {k: props[k] for k in properties if k in props}}

    def feature_collection(self, indices: Iterable[int], extra: Mapping[str, Any] | None = None,
                           properties: Sequence[str] | None = None) -> bytes:
        """A GeoJSON FeatureCollection of the given features, with extra top-level members."""
        head = {"type": "FeatureCollection", **(extra or {})}
        return orjson.dumps(head)[:-1] + b',"features":[' + self.join(indices, properties) + b"]}"


def _positions(indices: Iterable[int]) -> IntArray:
    """Positions given as an array, a range, a list or any iterable, as an index array."""
    if not isinstance(indices, np.ndarray | range | list | tuple):
        indices = list(indices)
    return np.asarray(indices, dtype=np.intp)


def _indexed_rows(filter_columns: tuple[str, ...], temporal: tuple[str, str] | None,
                  vocabularies: dict[str, Vocabulary]) -> list[tuple[Hashable, RowCompute]]:
    """The per-row columns that select reads: codes of the filter columns, the time span."""
    out: list[tuple[Hashable, RowCompute]] = [
        (("codes", name), partial(_codes, vocabularies[name], name)) for name in filter_columns]
    if temporal:
        start, end = temporal
        out += [(("starts",), partial(_days, start, False)), (("ends",), partial(_days, end, True))]
    return out


def _codes(vocabulary: Vocabulary, name: str, features: list[Feature]) -> npt.NDArray[np.int32]:
    """Each feature's value of column `name` as its code in `vocabulary` (-1: missing or not a string)."""
    code = vocabulary.code
    return np.array([code(f["properties"].get(name)) for f in features], dtype=np.int32)


def _days(name: str, end: bool, features: list[Feature]) -> npt.NDArray[np.datetime64]:
    """Each feature's `name` as an instant (NaT: missing or unreadable)."""
    return np.array([to_day(f["properties"].get(name), end) for f in features], dtype="datetime64[s]")


def _renumbered(pending: dict[Hashable, _Pending], renumber: IntArray) -> dict[Hashable, _Pending]:
    """Pending memos with their slots carried into a compacted storage (-1: a row it left behind)."""
    moved: dict[int, IntArray] = {}
    out: dict[Hashable, _Pending] = {}
    for key, p in pending.items():
        slots = moved.get(id(p.slots))
        if slots is None:
            slots = np.full(len(p.slots), -1, dtype=np.intp)
            ok = (p.slots >= 0) & (p.slots < len(renumber))
            slots[ok] = renumber[p.slots[ok]]
            moved[id(p.slots)] = slots
        out[key] = _Pending(p.value, slots, p.generation)
    return out
