"""Typed, column-wise views of a layer's properties for CQL2 filters and `sortby`.

Built once per table version (the table keeps it), so a request runs vectorised pandas and
shapely operations instead of a Python loop over features.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from geo.schema import GEOMETRY, Kind, Queryable

if TYPE_CHECKING:
    import geopandas as gpd

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _column(values: list[Any], kind: Kind) -> pd.Series:
    """One property as a typed column; values of the wrong type become missing."""
    raw = pd.Series(values, dtype=object)
    if kind == "string":
        return raw.where(raw.map(lambda v: isinstance(v, str)), None).astype("str")
    if kind in ("number", "integer"):
        numbers = raw.where(raw.map(lambda v: isinstance(v, int | float) and not isinstance(v, bool)), None)
        return pd.to_numeric(numbers, errors="coerce").astype("float64")
    if kind == "boolean":
        return raw.where(raw.map(lambda v: isinstance(v, bool)), None).astype("boolean")
    # Dates and date-times, compared as naive UTC instants (timestamps with an offset are converted).
    text = raw.where(raw.map(lambda v: isinstance(v, str)), None)
    stamps = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    return stamps.dt.tz_localize(None).astype("datetime64[us]")


@dataclass(frozen=True)
class Frame:
    """The queryable properties of one table version as columns, plus its geometries and ids."""

    columns: pd.DataFrame
    geometry: gpd.GeoSeries
    kinds: dict[str, Kind]
    _ranks: dict[tuple[str, bool], FloatArray] = field(default_factory=dict, repr=False)
    _missing: dict[str, BoolArray] = field(default_factory=dict, repr=False)
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
        kinds: dict[str, Kind] = {"id": "string", **{q.name: q.kind for q in queryables}}
        return cls(pd.DataFrame(data, index=pd.RangeIndex(len(ids))),
                   gpd.GeoSeries(list(geometries), index=pd.RangeIndex(len(ids))), kinds)

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
