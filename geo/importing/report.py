"""What an import did, row by row: the report (JSON for the endpoint, text for `geo import`), and the
rejected rows written back as CSV with a `reason` column, to fix and import again."""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson

from geo.formats.stream import neutralise
from geo.importing.columns import REASON
from geo.importing.sources import SourceRow


@dataclass(frozen=True)
class Rejection:
    """One reason a row was rejected (a row may have several)."""

    row: int
    field: str | None
    column: str | None
    reason: str


@dataclass(frozen=True)
class Duplicate:
    """A row that has the name and category of a project (an id, or `row N` of the file) within 100 m."""

    row: int
    of: str
    distance_m: float
    name: str


@dataclass(frozen=True)
class Skipped:
    """A row left out on purpose (the template's example row)."""

    row: int
    reason: str


@dataclass
class ImportReport:
    """The outcome of one import (or dry run)."""

    format: str
    dry_run: bool
    written: bool = False
    read: int = 0
    valid: int = 0
    imported: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    mapped: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    duplicates_allowed: bool = False

    def rejected_rows(self) -> list[int]:
        """The numbers of the rejected rows, in order."""
        return sorted({r.row for r in self.rejected})

    def to_json(self) -> dict[str, Any]:
        """The report as the endpoint answers it."""
        return {
            "format": self.format, "dry_run": self.dry_run, "written": self.written, "read": self.read,
            "valid": self.valid, "imported": self.imported, "rejected_rows": len(self.rejected_rows()),
            "rejected": [asdict(r) for r in self.rejected],
            "duplicates": [asdict(d) for d in self.duplicates],
            "duplicates_allowed": self.duplicates_allowed,
            "skipped": [asdict(s) for s in self.skipped], "ids": self.ids,
            "columns": {"mapped": self.mapped, "ignored": self.ignored},
        }

    def text(self, limit: int = 50) -> str:
        """The report for a terminal: the counts, then each rejection and duplicate (at most `limit`)."""
        verb = "would be imported (dry run)" if self.dry_run else "imported"
        lines = [f"rows read: {self.read}", f"{verb}: {self.imported}",
                 f"rejected: {len(self.rejected_rows())} rows", f"duplicates: {len(self.duplicates)}"
                 + (" (imported: --allow-duplicates)" if self.duplicates_allowed else " (skipped)")]
        if self.skipped:
            lines.append(f"skipped: {len(self.skipped)} example rows")
        if not self.dry_run and not self.written and self.valid:
            lines.append("nothing was written: --all-or-nothing and some rows were rejected")
        if self.ignored:
            lines.append("columns ignored: " + ", ".join(self.ignored))
        for r in self.rejected[:limit]:
            where = r.column or r.field or "row"
            lines.append(f"  row {r.row}: {where}: {r.reason}")
        if len(self.rejected) > limit:
            lines.append(f"  ... and {len(self.rejected) - limit} more (--report FILE lists every row)")
        for d in self.duplicates[:limit]:
            lines.append(f"  row {d.row}: duplicate of {d.of} ({d.distance_m:g} m away): {d.name}")
        if len(self.duplicates) > limit:
            lines.append(f"  ... and {len(self.duplicates) - limit} more duplicates")
        return "\n".join(lines)


def cell_text(value: Any) -> str:
    """A cell as CSV text (a formula-looking text cell neutralised, as `geo export` writes CSV)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, list | dict):
        return neutralise(orjson.dumps(value).decode())  # GeoJSON values, as `geo export` writes them
    return str(value)


def write_rejected(path: Path, columns: list[str], rows: list[SourceRow], report: ImportReport) -> int:
    """Write the rejected rows, their columns as read and a `reason` column, as UTF-8 CSV with a
    byte-order mark (Excel then reads Dari and Pashto right); the number of rows written."""
    reasons: dict[int, list[str]] = defaultdict(list)
    for r in report.rejected:
        reasons[r.row].append(f"{r.column or r.field}: {r.reason}" if (r.column or r.field) else r.reason)
    header = [c for c in columns if c != REASON] + [REASON]
    chosen = [row for row in rows if row.number in reasons]
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([neutralise(h) for h in header])
        for row in chosen:
            writer.writerow([cell_text(row.cells.get(c)) for c in header[:-1]]
                            + [neutralise("; ".join(reasons[row.number]))])
    return len(chosen)
