"""Typed, column-wise views of a layer's properties for CQL2 filters and `sortby`.

Built once per table version (the table keeps it), so a request runs vectorised pandas and
shapely operations instead of a Python loop over features. A later version does not build its frame
again: it moves the rows it kept from the earlier frame and builds only its new ones (`carried`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from geo.query.rows import Carry
from geo.schema import GEOMETRY, Queryable, ScalarType

if TYPE_CHECKING:
    import geopandas as gpd

FloatArray = npt.NDArray[np.float64]
# A string column carried over many writes is made of slices of earlier ones; past this many it is
# copied into one again (operations on many small chunks slow down).
MAX_CHUNKS = 64
BoolArray = npt.NDArray[np.bool_]
# Codes are the smallest signed integers that hold them (int8 for a few values): comparing 100,000
# int8 codes with one costs about 3 us, intp ones about 13 us.
CodeArray = npt.NDArray[np.signedinteger[Any]]
# A string column is coded (`Frame.codes`) when it holds at most this many distinct values, or a
# sixteenth of its rows if more: the code lookup is a dict of them, kept with the version.
CODED_AT_MOST = 4096


def _column(values: list[Any], kind: ScalarType) -> pd.Series:
    """One property as a typed column; values of the wrong type become missing.

    Python does the type checks and numpy or pandas take the result whole: a few rows (a write's) cost
    microseconds, not the fixed cost of several pandas operations per column."""
    if kind == "string":
        return pd.Series([v if isinstance(v, str) else None for v in values], dtype="str")
    if kind in ("number", "integer"):
        return pd.Series(np.array([float(v) if isinstance(v, int | float) and not isinstance(v, bool)
                                   else np.nan for v in values], dtype=np.float64))
    if kind == "boolean":
        return pd.Series(pd.array([v if isinstance(v, bool) else None for v in values], dtype="boolean"))
    # Dates and date-times, compared as naive UTC instants (timestamps with an offset are converted).
    text = pd.Series([v if isinstance(v, str) else None for v in values], dtype=object)
    stamps = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    return stamps.dt.tz_localize(None).astype("datetime64[us]")


def _one_chunk(column: pd.Series) -> pd.Series:
    """The column with its pyarrow chunks (one per part it was built from) merged into one: filters
    run per chunk, so a column of many small chunks answers slower."""
    return pd.Series(_merged(column.array), index=column.index, copy=False)


def _merged(array: Any) -> Any:
    """A pyarrow-backed pandas array as one chunk (others as they are)."""
    chunked = getattr(array, "_pa_array", None)
    if chunked is None or chunked.num_chunks <= 1:
        return array
    import pyarrow as pa

    # ArrowStringArray and the other Arrow-backed arrays take a chunked array and their dtype.
    return type(array)(pa.chunked_array([chunked.combine_chunks()]), dtype=array.dtype)


@dataclass(frozen=True)
class Frame:
    """The queryable properties of one table version as columns, plus its geometries and ids."""

    columns: pd.DataFrame
    geometry: gpd.GeoSeries
    kinds: dict[str, ScalarType]
    _ranks: dict[tuple[str, bool], FloatArray] = field(default_factory=dict, repr=False)
    _missing: dict[str, BoolArray] = field(default_factory=dict, repr=False)
    _codes: dict[str, tuple[CodeArray, dict[str, int]] | None] = field(default_factory=dict, repr=False)
    _numbers: dict[str, FloatArray | None] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(cls, features: Sequence[dict[str, Any]], ids: Sequence[str],
              geometries: npt.NDArray[np.object_], queryables: Sequence[Queryable]) -> Frame:
        """Columns for `queryables` (and `id`) from the features."""
        # geopandas is imported here, on the first filter, to keep it out of start-up.
        import geopandas as gpd

        data = {"id": pd.Series(list(ids), dtype="str")}
        for q in queryables:
            data[q.name] = _column([f["properties"].get(q.name) for f in features], q.kind)
        kinds: dict[str, ScalarType] = {"id": "string", **{q.name: q.kind for q in queryables}}
        index = pd.RangeIndex(len(ids))
        return cls(pd.DataFrame(data, index=index, copy=False), gpd.GeoSeries(geometries, index=index), kinds)

    @classmethod
    def concat(cls, parts: Sequence[Frame]) -> Frame:
        """One frame of these frames' rows, in order (a whole layer is built a part at a time, so that
        only a part's features are ever decoded at once)."""
        if len(parts) == 1:
            return parts[0]
        import geopandas as gpd

        first = parts[0]
        index = pd.RangeIndex(sum(len(p.columns) for p in parts))
        columns = {name: _one_chunk(pd.concat([p.columns[name] for p in parts], ignore_index=True))
                   for name in first.columns.columns}
        geometry = gpd.GeoSeries(pd.concat([p.geometry for p in parts], ignore_index=True), index=index)
        return cls(pd.DataFrame(columns, index=index), geometry, first.kinds)

    def carried(self, carry: Carry, fresh: Frame) -> Frame:
        """The frame of a later version: this one's rows as `carry` moves them, `fresh`'s (the later
        version's new and changed rows, in order) for the others.

        Each column is put together from slices of this one's and of `fresh`'s (the arrays under the
        columns: pandas' own concat and take cost more in checks than in work). Slices of the string
        columns (pyarrow) are not copied: they become chunks of the new column, merged when a column
        has gathered `MAX_CHUNKS`."""
        index = pd.RangeIndex(carry.size)

        def moved(earlier: Any, new: Any) -> Any:
            pieces = carry.pieces(earlier, new)
            joined = type(earlier)._concat_same_type(pieces) if pieces else earlier[:0]
            chunked = getattr(joined, "_pa_array", None)
            return _merged(joined) if chunked is not None and chunked.num_chunks > MAX_CHUNKS else joined

        columns = {name: pd.Series(moved(self.columns[name].array, fresh.columns[name].array), index=index,
                                   copy=False) for name in self.columns.columns}
        import geopandas as gpd

        geometry = gpd.GeoSeries(moved(self.geometry.array, fresh.geometry.array), index=index)
        return Frame(pd.DataFrame(columns, index=index, copy=False), geometry, self.kinds)

    def rank(self, name: str, descending: bool) -> FloatArray:
        """Sort keys of one column: dense ranks, missing values last either way (cached)."""
        key = (name, descending)
        ranks = self._ranks.get(key)
        if ranks is None:
            column = self.columns[name]
            computed: FloatArray = np.asarray(column.rank(method="dense", ascending=not descending,
                                                          na_option="bottom"), dtype=np.float64)
            with self._lock:
                self._ranks[key] = ranks = computed
        return ranks

    def missing(self, name: str) -> BoolArray:
        """Where a column (or the geometry) has no value (cached: every filter on it asks)."""
        nulls = self._missing.get(name)
        if nulls is None:
            column = self.geometry if name == GEOMETRY else self.columns[name]
            computed: BoolArray = np.asarray(column.isna(), dtype=np.bool_)
            computed.flags.writeable = False  # shared by every request on this version
            with self._lock:
                self._missing[name] = nulls = computed
        return nulls

    def codes(self, name: str) -> tuple[CodeArray, dict[str, int]] | None:
        """A string column as integer codes (-1: missing) and value -> code, or None when the column
        holds too many distinct values to be worth it (cached per version, as `None` too).

        Comparing a pyarrow string column with a value costs about 1 ms at 100,000 rows; comparing its
        codes, about 15 us: filters on a column of few values (status, category, province) use these."""
        if name in self._codes:
            return self._codes[name]
        codes, uniques = pd.factorize(self.columns[name], use_na_sentinel=True)
        limit = max(CODED_AT_MOST, len(codes) // 16)
        found = None
        if len(uniques) <= limit:
            lookup = {str(value): code for code, value in enumerate(uniques.tolist())}
            coded: CodeArray = np.asarray(codes, dtype=np.min_scalar_type(-len(uniques) - 1))
            coded.flags.writeable = False  # shared by every request on this version
            found = (coded, lookup)
        with self._lock:
            self._codes[name] = found
        return found

    def equal_any(self, name: str, wanted: Sequence[Any], equal: bool = True) -> BoolArray | None:
        """Where string column `name` equals one of `wanted` (`equal`), or where it holds a value that is
        none of them (not `equal`): missing values are neither. From the column's codes (`codes`); None
        when the frame does not code it or a wanted value is not a string."""
        found = self.codes(name)
        if found is None or not all(isinstance(w, str) for w in wanted):
            return None
        codes, lookup = found
        chosen = [lookup[w] for w in wanted if w in lookup]
        if equal:
            if not chosen:
                return np.zeros(len(codes), dtype=np.bool_)
            if len(chosen) == 1:
                return np.asarray(codes == chosen[0], dtype=np.bool_)
            return np.isin(codes, chosen)
        # Missing values are coded -1: "holds some other value" is a code >= 0 that is not chosen.
        present = np.asarray(codes >= 0, dtype=np.bool_)
        if not chosen:
            return present
        if len(chosen) == 1:
            np.logical_and(present, codes != chosen[0], out=present)
        else:
            np.logical_and(present, ~np.isin(codes, chosen), out=present)
        return present

    def numbers(self, name: str) -> FloatArray | None:
        """A number column as its float64 array, NaN where missing (read-only, kept per version), or
        None when the column is not one (taking a column out of the DataFrame costs tens of us)."""
        try:
            return self._numbers[name]
        except KeyError:
            pass
        column = self.columns[name]
        found: FloatArray | None = None
        if column.dtype == np.float64:
            # A read-only view of the column's own array (no copy: the frame never changes).
            found = np.asarray(column.to_numpy(), dtype=np.float64).view()
            found.flags.writeable = False
        with self._lock:
            self._numbers[name] = found
        return found
