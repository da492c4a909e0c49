"""An immutable, indexed snapshot of one layer's features, built for fast reads.

Each feature is serialised once to bytes; a page of items is a join of cached bytes. Spatial
queries go through a shapely STRtree and attribute filters through numpy arrays, so no request
loops over features in Python.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import orjson
import shapely
from shapely import STRtree

from geo.query.frame import Frame
from geo.schema import ID, Kind, Queryable

T = TypeVar("T")

IntArray = npt.NDArray[np.intp]


def _to_day(value: Any, end: bool = False) -> np.datetime64:
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


def _typed(value: Any, kind: Kind) -> Any:
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
        day = _to_day(value)
        return None if np.isnat(day) else day.astype("datetime64[D]")
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        stamp = stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo is not None else stamp
    except (ValueError, OverflowError):
        return None
    return np.datetime64(stamp, "us")


# Where time has no end: an interval open at either side runs to one of these.
_DAWN = np.datetime64("0001-01-01T00:00:00", "s")
_DUSK = np.datetime64("9999-12-31T23:59:59", "s")


@dataclass(frozen=True)
class FeatureTable:
    """The features of one layer at one version, with their indexes and cached encodings."""

    features: tuple[dict[str, Any], ...]
    version: str
    filter_columns: tuple[str, ...] = ()
    temporal: tuple[str, str] | None = None
    # When this version was written (the store file's mtime); None when unknown.
    modified: datetime | None = None
    ids: tuple[str, ...] = field(init=False)
    encoded: tuple[bytes, ...] = field(init=False)
    geometries: npt.NDArray[np.object_] = field(init=False)
    columns: dict[str, npt.NDArray[np.object_]] = field(init=False)
    starts: npt.NDArray[np.datetime64] = field(init=False)
    ends: npt.NDArray[np.datetime64] = field(init=False)
    position: dict[str, int] = field(init=False)
    tree: STRtree = field(init=False)
    # What is derived from this version on first use (CQL2 frames, stats columns, download columns).
    _derived: dict[Hashable, Any] = field(init=False, repr=False, compare=False)
    # Reentrant: a derived value may be built from another (the parameter queryables from the queryables).
    _derived_lock: threading.RLock = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        feats = self.features
        # frozen=True protects readers; object.__setattr__ is how a frozen dataclass fills derived fields.
        put = object.__setattr__
        put(self, "ids", tuple(str(f["id"]) for f in feats))
        put(self, "encoded", tuple(orjson.dumps(f) for f in feats))
        geoms = shapely.from_geojson([orjson.dumps(f["geometry"]) for f in feats]) if feats else np.array(
            [], dtype=object)
        put(self, "geometries", np.asarray(geoms, dtype=object))
        put(self, "columns", {
            name: np.array([f["properties"].get(name) for f in feats], dtype=object)
            for name in self.filter_columns
        })
        if self.temporal:
            start, end = self.temporal
            put(self, "starts", np.array([_to_day(f["properties"].get(start)) for f in feats],
                                         dtype="datetime64[s]"))
            put(self, "ends", np.array([_to_day(f["properties"].get(end), end=True) for f in feats],
                                       dtype="datetime64[s]"))
        else:
            put(self, "starts", np.array([], dtype="datetime64[s]"))
            put(self, "ends", np.array([], dtype="datetime64[s]"))
        put(self, "position", {fid: i for i, fid in enumerate(self.ids)})
        put(self, "tree", STRtree(self.geometries))
        put(self, "_derived", {})
        put(self, "_derived_lock", threading.RLock())

    def __len__(self) -> int:
        return len(self.features)

    def apply(self, changes: Sequence[tuple[str, dict[str, Any] | None]], *, version: str,
              modified: datetime | None = None) -> FeatureTable:
        """A new table: this one with `changes` applied in order; this one is left as it is.

        `(fid, feature)` adds `feature` (appended after the others) or replaces the feature `fid` (which
        keeps its position); `(fid, None)` deletes `fid` (the features after it move up one). Raises
        KeyError when a deleted id is absent, ValueError when a feature's `id` is not its `fid`.
        """
        features = list(self.features)
        position = dict(self.position)
        for fid, feature in changes:
            if feature is None:
                i = position.pop(fid)
                del features[i]
                position = {f: (p - 1 if p > i else p) for f, p in position.items()}
                continue
            if feature.get("id") != fid:
                raise ValueError(f"a change of {fid!r} holds a feature with the id {feature.get('id')!r}")
            at = position.get(fid)
            if at is None:
                position[fid] = len(features)
                features.append(feature)
            else:
                features[at] = feature
        return FeatureTable(tuple(features), version, filter_columns=self.filter_columns,
                            temporal=self.temporal, modified=modified)

    @classmethod
    def empty(cls, version: str = "0") -> FeatureTable:
        """A table with no features."""
        return cls((), version)

    def bounds(self) -> tuple[float, float, float, float] | None:
        """The bounding box of all features, or None when there are none."""
        if not len(self):
            return None
        xmin, ymin, xmax, ymax = shapely.total_bounds(self.geometries)
        return float(xmin), float(ymin), float(xmax), float(ymax)

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

    def get(self, fid: str) -> dict[str, Any] | None:
        """The feature with this id, or None."""
        i = self.position.get(fid)
        return None if i is None else self.features[i]

    def _equal_any(self, name: str, wanted: Iterable[str]) -> npt.NDArray[np.bool_]:
        """Where column `name` holds one of `wanted`: a union of per-value masks kept for this version.

        Only values the column holds get a mask, so the memo stays as small as the vocabulary however
        many different values clients ask for.
        """
        column = self.columns[name]
        present = self.derived(("values", name),
                               lambda: frozenset(v for v in column.tolist() if isinstance(v, str)))
        out = np.zeros(len(self), dtype=bool)
        for value in wanted:
            if value in present:
                out |= self.derived(("equals", name, value), partial(np.equal, column, value))
        return out

    def select(self, *, bbox: Sequence[float] | None = None,
               equals: Mapping[str, Iterable[str]] | None = None,
               interval: tuple[np.datetime64 | None, np.datetime64 | None] | None = None,
               ) -> IntArray:
        """Indices (in layer order) of features matching every given filter."""
        mask = np.ones(len(self), dtype=bool)
        if bbox is not None and len(self):
            minx, miny, maxx, maxy = bbox[0], bbox[1], bbox[2], bbox[3]
            # minx > maxx: the box crosses the antimeridian, so it is two (fc-bbox-definition).
            boxes = ([shapely.box(minx, miny, maxx, maxy)] if minx <= maxx else
                     [shapely.box(minx, miny, 180, maxy), shapely.box(-180, miny, maxx, maxy)])
            spatial = np.zeros(len(self), dtype=bool)
            for box in boxes:
                spatial[self.tree.query(box, predicate="intersects")] = True
            mask &= spatial
        for name, wanted in (equals or {}).items():
            if name in self.columns:
                mask &= self._equal_any(name, wanted)
        if interval is not None and self.temporal:
            mask &= self._during(*interval)
        return np.flatnonzero(mask)

    def _during(self, lo: np.datetime64 | None, hi: np.datetime64 | None) -> npt.NDArray[np.bool_]:
        """Where a feature's [start, end] overlaps [lo, hi] (/req/core/fc-time-response).

        A feature with neither a start nor an end has no temporal geometry, and matches every
        interval (C); a missing end means still running, a missing start means since ever."""
        untimed = np.isnat(self.starts) & np.isnat(self.ends)
        starts = np.where(np.isnat(self.starts), _DAWN, self.starts)
        ends = np.where(np.isnat(self.ends), _DUSK, self.ends)
        ok = np.ones(len(self), dtype=bool)
        if hi is not None:
            ok &= starts <= hi
        if lo is not None:
            ok &= ends >= lo
        return ok | untimed

    def equal_to(self, name: str, kind: Kind, wanted: Iterable[Any]) -> npt.NDArray[np.bool_]:
        """Where property `name`, read as `kind`, equals one of `wanted` (values of that kind); `id` is
        the feature's id (queryables.ID), not a property."""
        column = self.derived(("typed", name, kind), lambda: np.array(
            list(self.ids) if name == ID.name else
            [_typed(f["properties"].get(name), kind) for f in self.features], dtype=object))
        out = np.zeros(len(self), dtype=bool)
        for value in wanted:
            # Elementwise == on objects: None (missing) equals nothing, NaN equals nothing.
            out |= np.equal(column, value).astype(bool)
        return out

    def derived(self, key: Hashable, build: Callable[[], T]) -> T:
        """`build()`'s result, computed once for this version and kept (the table never changes)."""
        try:
            value: T = self._derived[key]
            return value
        except KeyError:
            pass
        with self._derived_lock:
            if key not in self._derived:
                self._derived[key] = build()
            value = self._derived[key]
        return value

    def frame(self, queryables: tuple[Queryable, ...]) -> Frame:
        """Typed columns of these properties, built on first use and kept (CQL2 and sortby run on it)."""
        return self.derived(("frame", queryables),
                            lambda: Frame.build(self.features, self.ids, self.geometries, queryables))

    def property_names(self) -> frozenset[str]:
        """Every property name that some feature has."""
        return frozenset(k for f in self.features for k in f["properties"])

    def join(self, indices: Iterable[int], properties: Sequence[str] | None = None) -> bytes:
        """The encodings of these features, comma-joined (the inside of a JSON array).

        Without `properties` the cached bytes are joined; with it only these features are re-encoded,
        keeping just the named properties.
        """
        if properties is None:
            enc = self.encoded
            return b",".join([enc[i] for i in indices])
        return b",".join([orjson.dumps(self.selected(i, properties)) for i in indices])

    def selected(self, index: int, properties: Sequence[str]) -> dict[str, Any]:
        """Feature `index` with only the named properties."""
        feature = self.features[index]
        props = feature["properties"]
        return {**feature, "properties": {k: props[k] for k in properties if k in props}}

    def feature_collection(self, indices: Iterable[int], extra: Mapping[str, Any] | None = None,
                           properties: Sequence[str] | None = None) -> bytes:
        """A GeoJSON FeatureCollection of the given features, with extra top-level members."""
        head = {"type": "FeatureCollection", **(extra or {})}
        return orjson.dumps(head)[:-1] + b',"features":[' + self.join(indices, properties) + b"]}"
