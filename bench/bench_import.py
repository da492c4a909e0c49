"""Benchmark `geo import` on a 10,000-row CSV and a 10,000-row XLSX, dry run and real, on a scratch store.

Run: GEO_DATA_MIRROR=../shared/data .venv/bin/python bench/bench_import.py [--rows 10000] [--repeat 3]

The rows are synthetic projects (bench/synth.py: valid, inside Afghanistan), each with a province name
column (so the province check runs), a budget written "1,234,567" and a start date; in the XLSX the
budgets are numbers and the dates are spreadsheet dates. Measured in-process, as `geo import` runs:
- the references, in the same run: only reading the file (csv.reader over the decoded text; openpyxl in
  read-only mode, and python-calamine, over the workbook);
- the import as a dry run (read, map, check every row with check_feature, province, duplicates, report);
- the real import into a fresh copy of the shipped store (the same, plus one add_many write).
Each is the median of `--repeat` runs; rows/s is rows over that median.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.synth import bench_settings, synthetic_projects  # noqa: E402
from geo.app import open_store  # noqa: E402
from geo.catalogue import Catalogue  # noqa: E402
from geo.importing.run import ImportOptions, run_import  # noqa: E402
from geo.importing.sources import Kind  # noqa: E402
from geo.settings import Settings  # noqa: E402

HEADER = ["name", "category", "status", "budget_usd", "start_date", "lon", "lat", "province"]


def rows_of(features: list[dict[str, Any]], names: dict[str, str]) -> list[list[Any]]:
    """One spreadsheet row per synthetic project (typed values: the CSV writer makes them text)."""
    out = []
    for f in features:
        p = f["properties"]
        lon, lat = f["geometry"]["coordinates"]
        out.append([p["name"], p["category"], p["status"], p["budget_usd"], p["start_date"], lon, lat,
                    names[p["province"]]])
    return out


def csv_file(rows: list[list[Any]]) -> bytes:
    """The rows as UTF-8 CSV, budgets with thousands separators as people type them."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows([[*r[:3], f"{r[3]:,}", *r[4:]] for r in rows])
    return buffer.getvalue().encode()


def xlsx_file(rows: list[list[Any]]) -> bytes:
    """The rows as an XLSX workbook: numbers as numbers, dates as spreadsheet dates."""
    from datetime import date

    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("projects")
    sheet.append(HEADER)
    for r in rows:
        sheet.append([*r[:4], date.fromisoformat(r[4]), *r[5:]])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def read_csv_only(data: bytes) -> int:
    """The reference: decode and split the CSV, nothing else."""
    return sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))) - 1


def read_openpyxl_only(data: bytes) -> int:
    """The reference: openpyxl's read-only mode, every cell's value."""
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    count = sum(1 for _ in book.worksheets[0].iter_rows(values_only=True)) - 1
    book.close()
    return count


def read_calamine_only(data: bytes) -> int:
    """The reference: python-calamine, the whole sheet as Python values."""
    from python_calamine import CalamineWorkbook

    with CalamineWorkbook.from_filelike(io.BytesIO(data)) as book:
        return len(book.get_sheet_by_index(0).to_python()) - 1


def median_s(run: Callable[[], object], repeat: int) -> float:
    """The median wall time of `repeat` runs."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def scratch(settings: Settings, folder: Path) -> Settings:
    """Settings on a fresh copy of the shipped store in `folder`."""
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "projects.geojson", folder / "projects.geojson")
    return settings.model_copy(update={"projects": folder / "projects.geojson"})


def import_once(settings: Settings, data: bytes, kind: Kind, dry_run: bool, expected: int) -> None:
    """One import on these settings' store; checks every row was imported."""
    store = open_store(settings)
    try:
        report = run_import(data, kind, Catalogue(settings, store), ImportOptions(dry_run=dry_run)).report
    finally:
        store.close()
    assert report.imported == expected and not report.rejected, report.text()
    assert report.written == (not dry_run)


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        work = Path(tmp)
        settings = bench_settings(work)
        catalogue = Catalogue(settings, open_store(settings))
        names = dict(catalogue.province_names())
        catalogue.store.close()
        rows = rows_of(synthetic_projects(args.rows, settings), names)
        files: dict[Kind, bytes] = {"csv": csv_file(rows), "xlsx": xlsx_file(rows)}
        n = len(rows)
        print(f"{n:,} rows; CSV {len(files['csv']) / 1e6:.2f} MB, XLSX {len(files['xlsx']) / 1e6:.2f} MB; "
              f"median of {args.repeat} runs")
        print(f"{'what':<46}{'seconds':>9}{'rows/s':>10}")
        counter = iter(range(10_000))

        def fresh() -> Settings:
            return scratch(settings, work / f"store-{next(counter)}")

        measured = [
            ("CSV: csv.reader only (reference)", lambda: read_csv_only(files["csv"])),
            ("CSV: geo import --dry-run", lambda: import_once(fresh(), files["csv"], "csv", True, n)),
            ("CSV: geo import (one add_many write)",
             lambda: import_once(fresh(), files["csv"], "csv", False, n)),
            ("XLSX: openpyxl read-only only (reference)", lambda: read_openpyxl_only(files["xlsx"])),
            ("XLSX: python-calamine only (reference)", lambda: read_calamine_only(files["xlsx"])),
            ("XLSX: geo import --dry-run", lambda: import_once(fresh(), files["xlsx"], "xlsx", True, n)),
            ("XLSX: geo import (one add_many write)",
             lambda: import_once(fresh(), files["xlsx"], "xlsx", False, n)),
        ]
        for label, run in measured:
            seconds = median_s(run, args.repeat)
            print(f"{label:<46}{seconds:>9.3f}{n / seconds:>10,.0f}")


if __name__ == "__main__":
    main()
