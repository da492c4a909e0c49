"""What a download holds: one layer's chosen features, and the options that change its bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from geo.crs import DEFAULT, Crs, encoded_in, to_crs
from geo.formats.columns import Column, flatten
from geo.query.featuretable import FeatureTable, IntArray


@dataclass(frozen=True)
class Selection:
    """The features of `layer` at `indices` of `table`; `bom` asks CSV for a byte-order mark, `crs` the
    CRS the file is written in (CRS84, as stored, by default)."""

    layer: str
    table: FeatureTable
    indices: IntArray
    bom: bool = False
    crs: Crs = field(default=DEFAULT)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def features(self) -> list[dict[str, Any]]:
        """The chosen features (decoded from the stored bytes: the caller's own copies)."""
        return self.table.decode(self.indices)

    @cached_property
    def geometries(self) -> npt.NDArray[np.object_]:
        """The chosen features' shapely geometries in `crs`, x = easting or longitude, as file formats
        hold them (as stored, parsed once with the table, when `crs` is CRS84)."""
        return to_crs(self.table.geometries[self.indices], self.crs, gis_order=True)

    @cached_property
    def encoded(self) -> list[bytes]:
        """Each chosen feature as GeoJSON in `crs`, in its axis order (the bytes the table holds, in
        CRS84: nothing is encoded again; in another CRS encoded once per version, geo.crs.encoded_in)."""
        return encoded_in(self.table, self.indices, self.crs)

    @cached_property
    def columns(self) -> list[Column]:
        """The chosen features' attributes as typed columns."""
        idx = self.indices
        whole = len(idx) == len(self.table) and bool(np.all(idx == np.arange(len(idx))))
        if whole:
            # The whole layer in its own order (an unfiltered download): flattened once per version.
            return self.table.derived("download-columns", lambda: flatten(self.table.features))
        return flatten(self.features)
