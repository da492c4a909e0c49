"""An import from start to end: read, map the columns, check every row as POST would, find duplicates,
and write the valid rows in one atomic step (`store.add_many`: all of them or none).

Both `geo import` and `POST /collections/projects/import` call `run_import`; the only difference is where
the bytes come from and how the report is shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import shapely.geometry

from geo.catalogue import Catalogue
from geo.errors import InvalidInput
from geo.importing.columns import ColumnMap, map_columns
from geo.importing.duplicates import DuplicateIndex, key_of
from geo.importing.progress import Advance
from geo.importing.report import Duplicate, ImportReport, Rejection, Skipped
from geo.importing.rows import EXAMPLE_MARK, ProvinceNames, RowRejected, check_row, is_example
from geo.importing.sources import Kind, SourceRow, Table, read_table
from geo.projects import new_project
from geo.provinces import iso_provinces
from geo.query.featuretable import FeatureTable
from geo.store.changes import WriteMeta

EXAMPLE_REASON = f"an example row (its name starts with {EXAMPLE_MARK!r})"


@dataclass(frozen=True)
class ImportOptions:
    """How to import: a dry run writes nothing; `all_or_nothing` writes nothing if a row is rejected;
    `allow_duplicates` imports duplicates (they are reported either way); `mapping` is column -> target;
    `by` is who imports (a key's name), recorded in each project's history."""

    dry_run: bool = True
    all_or_nothing: bool = False
    allow_duplicates: bool = False
    mapping: Mapping[str, str] = field(default_factory=dict)
    by: str | None = None


@dataclass
class ImportResult:
    """The report, and the rows it rejected as read (for `--report FILE`)."""

    report: ImportReport
    table: Table
    rejected_rows: list[SourceRow]


def _require_columns(columns: ColumnMap, table: Table) -> None:
    """A 400 before any row when the file lacks a column every row needs (else every row would say it)."""
    targets = set(columns.targets.values())
    missing = [t for t in ("name", "category", "status") if t not in targets]
    located = {"lon", "lat"} <= targets or "wkt" in targets or table.kind in ("geojson", "gpkg")
    if not located:
        missing.append("lon and lat (or wkt)")
    if missing:
        raise InvalidInput.about(
            "map", f"no column holds {', '.join(missing)}; the file's columns are "
                   f"{', '.join(map(repr, table.columns)) or 'none'} (name them so, or map them with --map / "
                   "the `map` parameter, e.g. \"Project=name\")")


def _existing(snapshot: FeatureTable, index: DuplicateIndex) -> None:
    for fid, feature, geom in zip(snapshot.ids, snapshot.features, snapshot.geometries, strict=True):
        props = feature.get("properties") or {}
        if geom is not None and props.get("name") is not None:
            index.add(key_of(props["name"], props.get("category")), geom, fid)


def run_import(data: bytes, kind: Kind, catalogue: Catalogue, options: ImportOptions) -> ImportResult:
    """Import a file's bytes into the catalogue's project store (or only report, on a dry run).

    Raises InvalidInput / UnsupportedMediaType for a file that cannot be read, and the store's errors
    (StoreBusy, StoreWriteFailed, ...) when the write fails: then nothing was written."""
    return import_table(read_table(data, kind), catalogue, options)


def import_table(table: Table, catalogue: Catalogue, options: ImportOptions,
                 advance: Advance | None = None) -> ImportResult:
    """Import the rows of a file already read (`advance(1)` after each row: the progress bar)."""
    kind = table.kind
    columns = map_columns(table.columns, options.mapping)
    _require_columns(columns, table)
    report = ImportReport(kind, options.dry_run, read=len(table.rows), mapped=dict(columns.targets),
                          ignored=list(columns.ignored), duplicates_allowed=options.allow_duplicates)
    store = catalogue.store
    duplicates = DuplicateIndex()
    _existing(store.snapshot(), duplicates)
    provinces = ProvinceNames(catalogue.province_names(), iso_provinces())
    names = catalogue.province_names()
    features: list[dict[str, Any]] = []
    rejected_rows: list[SourceRow] = []
    for row in table.rows:
        if advance is not None:
            advance(1)  # before the row: every `continue` below has counted it
        if is_example(row, columns):
            report.skipped.append(Skipped(row.number, EXAMPLE_REASON))
            continue
        try:
            checked = check_row(row, columns, catalogue.place, provinces, from_csv=kind == "csv")
        except RowRejected as exc:
            report.rejected += [Rejection(row.number, p.field, p.column, p.reason) for p in exc.problems]
            rejected_rows.append(row)
            continue
        geom = shapely.geometry.shape(checked.geometry)
        key = key_of(checked.properties["name"], checked.properties["category"])
        match = duplicates.find(key, geom)
        if match is not None:
            report.duplicates.append(Duplicate(row.number, match.of, match.distance_m,
                                               checked.properties["name"]))
            if not options.allow_duplicates:
                continue
        duplicates.add(key, geom, f"row {row.number}")
        features.append(new_project(checked, names, by=options.by))
    report.valid = len(features)
    refused = options.all_or_nothing and bool(report.rejected)
    report.imported = 0 if refused else len(features)
    if not options.dry_run and features and not refused:
        stored = store.add_many(features, WriteMeta(by=options.by))
        report.ids = [str(f["id"]) for f in stored]
        report.written = True
    return ImportResult(report, table, rejected_rows)
