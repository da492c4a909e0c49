"""Check one row as the API checks a POST: the client feature it makes goes through the same
`geo.validation.check_feature` (and then `geo.projects.new_project`) as `POST /collections/projects/items`.

What is added here is only what a file has and a POST has not: the location read from `lon`/`lat` or WKT
columns, and a province the file names, which must agree with the one the geometry lies in (the server
assigns it; a disagreement is reported, never silently fixed).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import shapely

from geo.errors import InvalidFeature
from geo.importing.columns import FIELDS, ColumnMap
from geo.importing.sources import SourceRow, blank
from geo.importing.values import coordinate, field_value, text
from geo.validation import CheckedFeature, Placer, check_feature

# Rows whose name starts with this are the template's examples: skipped, never imported.
EXAMPLE_MARK = "EXAMPLE:"


@dataclass(frozen=True)
class Problem:
    """Why a row was rejected: the project field (None for the row as a whole), the file's column
    when one holds it, and the reason."""

    field: str | None
    column: str | None
    reason: str


class RowRejected(Exception):
    """A row breaks a rule; `problems` says which and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.reason for p in problems))
        self.problems = problems


def is_example(row: SourceRow, columns: ColumnMap) -> bool:
    """Whether the row is a template's example (its name starts with EXAMPLE_MARK)."""
    column = columns.column_of("name")
    value = row.cells.get(column) if column else None
    return isinstance(value, str) and value.strip().startswith(EXAMPLE_MARK)


def _geometry(row: SourceRow, columns: ColumnMap) -> Any:
    """The row's location: `lon`/`lat` columns, else a WKT column, else the file's own geometry."""
    lon_col, lat_col, wkt_col = (columns.column_of(t) for t in ("lon", "lat", "wkt"))
    lon_raw = row.cells.get(lon_col) if lon_col else None
    lat_raw = row.cells.get(lat_col) if lat_col else None
    if not blank(lon_raw) or not blank(lat_raw):
        problems = []
        for target, column, raw in (("lon", lon_col, lon_raw), ("lat", lat_col, lat_raw)):
            if blank(raw):
                problems.append(Problem("geometry", column, f"{target} is empty: give both lon and lat"))
            elif coordinate(raw) is None:
                problems.append(Problem("geometry", column, f"{target} must be a number in decimal degrees "
                                                           f"(WGS 84), not {str(raw)[:40]!r}"))
        if problems:
            raise RowRejected(problems)
        return {"type": "Point", "coordinates": [coordinate(lon_raw), coordinate(lat_raw)]}
    wkt = text(row.cells.get(wkt_col)) if wkt_col else None
    if isinstance(wkt, str):
        try:
            geom = shapely.from_wkt(wkt)
        except shapely.errors.ShapelyError as exc:
            raise RowRejected([Problem("geometry", wkt_col, f"the WKT cannot be read: {exc}")]) from None
        if geom is None or geom.is_empty:
            raise RowRejected([Problem("geometry", wkt_col, "the WKT geometry is empty")])
        return orjson.loads(shapely.to_geojson(geom))
    if row.geometry is not None:
        return row.geometry
    raise RowRejected([Problem("geometry", None, "no location: give lon and lat (decimal degrees, WGS 84), "
                                                 "or a WKT geometry")])


def client_feature(row: SourceRow, columns: ColumnMap, *, from_csv: bool) -> dict[str, Any]:
    """The GeoJSON Feature a client would POST for this row."""
    properties: dict[str, Any] = {}
    for column, target in columns.targets.items():
        if target in FIELDS:
            value = field_value(target, row.cells.get(column), from_csv=from_csv)
            if value is not None:
                properties[target] = value
    return {"type": "Feature", "geometry": _geometry(row, columns), "properties": properties}


@functools.lru_cache(maxsize=4096)
def _folded(name: str) -> str:
    # "Kābul", "kabul " and "KABUL" are one name.
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


class ProvinceNames:
    """Every way a file may name a province (ISO 3166-2 code, with or without `AF-`; the layer's name;
    the ISO name, with or without diacritics), to the code."""

    def __init__(self, names: Mapping[str, str], iso_names: Mapping[str, str]) -> None:
        self.names = dict(names)
        self.lookup: dict[str, str] = {}
        for code in {*names, *iso_names}:
            for label in (code, code.removeprefix("AF-"), names.get(code), iso_names.get(code)):
                if label:
                    self.lookup[_folded(label)] = code

    def label(self, code: str | None) -> str:
        """`Name (CODE)` for a message."""
        return f"{self.names.get(code or '', code)} ({code})" if code else "no province"

    def check(self, row: SourceRow, columns: ColumnMap, assigned: str | None) -> list[Problem]:
        """A problem for each province column whose value is not the province the geometry lies in."""
        problems = []
        for column in columns.province_columns:
            value = text(row.cells.get(column))
            if not isinstance(value, str) or not self.lookup:
                continue
            named = self.lookup.get(_folded(value))
            if named is None:
                problems.append(Problem("province", column, f"{value[:60]!r} is not an Afghan province name "
                                                            "or ISO 3166-2:AF code"))
            elif named != assigned:
                problems.append(Problem("province", column, (
                    f"the file says {value[:60]!r}, {self.label(named)}, but the geometry lies in "
                    f"{self.label(assigned)}; fix the location or the province")))
        return problems


def _geometry_column(row: SourceRow, columns: ColumnMap) -> str | None:
    """The column the row's location came from (`lon` for lon/lat), None for the file's geometry."""
    for target in ("lon", "wkt"):
        column = columns.column_of(target)
        if column is not None and not blank(row.cells.get(column)):
            return column
    return None


def _problems(exc: InvalidFeature, columns: ColumnMap, geometry_column: str | None) -> list[Problem]:
    out = []
    for error in exc.errors or [{"field": None, "message": exc.detail}]:
        path = str(error.get("field") or "")
        if path.startswith("properties."):
            name = path.removeprefix("properties.").split(".")[0]
            out.append(Problem(name, columns.column_of(name), str(error["message"])))
        elif path.startswith("geometry"):
            out.append(Problem("geometry", geometry_column, str(error["message"])))
        else:
            out.append(Problem(None, None, str(error["message"])))
    return out


def check_row(row: SourceRow, columns: ColumnMap, place: Placer, provinces: ProvinceNames, *,
              from_csv: bool = False) -> CheckedFeature:
    """The row's checked feature, or RowRejected saying every reason found."""
    if row.problem is not None:
        raise RowRejected([Problem(None, None, row.problem)])
    feature = client_feature(row, columns, from_csv=from_csv)
    try:
        checked = check_feature(feature, place)
    except InvalidFeature as exc:
        raise RowRejected(_problems(exc, columns, _geometry_column(row, columns))) from None
    mismatch = provinces.check(row, columns, checked.province)
    if mismatch:
        raise RowRejected(mismatch)
    return checked

