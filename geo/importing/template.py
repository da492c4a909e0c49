"""`geo template FILE.xlsx|FILE.csv`: an empty import template.

The header row holds the columns the import reads (the project fields, then the location), and one
example row, marked as one (its name starts with EXAMPLE_MARK, which the import skips). In XLSX the
category, status and geometry quality columns offer drop-down lists of geo.models' vocabularies, and a
second sheet, `fields`, explains each column: its title and description from the pydantic model
(geo/models.py), whether it is required, the values it takes and how to write them in a spreadsheet.
"""

from __future__ import annotations

import csv
import typing
from datetime import date
from pathlib import Path
from typing import Any

from geo.errors import InvalidInput
from geo.fsutil import atomic_write_bytes
from geo.importing.rows import EXAMPLE_MARK
from geo.importing.values import VOCABULARIES
from geo.models import ProjectProperties

# The columns in the order a person fills them: what it is, where it is, then the rest.
COLUMNS = ("name", "category", "status", "lon", "lat", "wkt", "name_prs", "name_ps", "budget_usd", "funders",
           "start_date", "end_date", "source_url", "source_note", "description", "geometry_quality")
EXAMPLE: dict[str, Any] = {
    "name": f"{EXAMPLE_MARK} Girls' secondary school (made up: replace or delete this row)",
    "category": "school", "status": "proposed", "lon": 69.1723, "lat": 34.5281,
    "name_prs": "لیسه دختران (مثال)", "name_ps": "د نجونو لیسه (بېلګه)", "budget_usd": 1200000,
    "funders": "Ministry of Education; World Bank", "start_date": date(2026, 3, 1),
    "end_date": date(2027, 12, 31), "source_url": "https://example.org/made-up-project",
    "source_note": "Made-up example: not a real project.",
    "description": "Twelve classrooms and a library for 600 pupils (example text).",
    "geometry_quality": "approximate",
}
# How each column is written in a spreadsheet (the model says what it means).
HOW = {
    "name": "Text, up to 300 characters. Required.",
    "category": "One of the list (drop-down). Required.",
    "status": "One of the list (drop-down). Required.",
    "lon": "Longitude in decimal degrees, WGS 84 (about 60.5 to 74.9 in Afghanistan), e.g. 69.1723. "
           "Give lon and lat for a point, or leave both empty and fill wkt.",
    "lat": "Latitude in decimal degrees, WGS 84 (about 29.4 to 38.5 in Afghanistan), e.g. 34.5281.",
    "wkt": "For a line or an area instead of lon/lat: the geometry as WKT, longitude first, e.g. "
           "LINESTRING (69.10 34.50, 69.20 34.55).",
    "name_prs": "Text in Dari, as it is written (right to left).",
    "name_ps": "Text in Pashto, as it is written (right to left).",
    "budget_usd": "A number of US dollars, e.g. 1200000 (1,200,000 and USD 1,200,000 are read too).",
    "funders": "Names separated by semicolons, e.g. Ministry of Education; World Bank.",
    "start_date": "A date (a spreadsheet date, or YYYY-MM-DD).",
    "end_date": "A date, not before the start date.",
    "source_url": "A web address (http or https) where the project is described.",
    "source_note": "Where the facts come from, in words.",
    "description": "Free text, up to 10,000 characters.",
    "geometry_quality": "exact, or approximate for a guessed location (drop-down).",
}
PROVINCE_NOTE = ("There is no province column to fill: the service assigns the province from the location. "
                 "A `province` column (name or ISO code, e.g. Kabul or AF-KAB) is allowed, and checked: a "
                 "row whose province is not where its location lies is rejected.")
EXAMPLE_NOTE = (f"Rows whose name starts with {EXAMPLE_MARK!r} are examples and are never imported.")
LIST_ROWS = 10_000  # rows below the header that get the drop-down lists


def allowed_values(column: str) -> tuple[str, ...]:
    """The values a column takes, when it has a fixed list (category, status, geometry quality)."""
    if column in VOCABULARIES:
        return tuple(VOCABULARIES[column].__members__)
    info = ProjectProperties.model_fields.get(column)
    if info is not None:
        for arg in typing.get_args(info.annotation):
            if typing.get_origin(arg) is typing.Literal:
                return tuple(str(v) for v in typing.get_args(arg))
    return ()


def explanations() -> list[list[str]]:
    """One row per column: column, title, required, description, how to write it, allowed values."""
    rows = [["column", "title", "required", "description", "how to write it", "allowed values"]]
    for column in COLUMNS:
        info = ProjectProperties.model_fields.get(column)
        title = (info.title if info else None) or {"lon": "Longitude", "lat": "Latitude",
                                                   "wkt": "Geometry (WKT)"}.get(column, column)
        required = "yes" if (info and info.is_required()) or column in ("lon", "lat") else "no"
        if column in ("lon", "lat"):
            required = "yes, unless wkt is given"
        rows.append([column, title, required, (info.description if info else None) or "", HOW[column],
                     ", ".join(allowed_values(column))])
    return rows


def _cell(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else "" if value is None else str(value)


def write_csv_template(path: Path) -> None:
    """The CSV template: UTF-8 with a byte-order mark (so Excel reads Dari and Pashto), header, example."""
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerow([_cell(EXAMPLE.get(c)) for c in COLUMNS])
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8-sig"))


def write_xlsx_template(path: Path) -> None:
    """The XLSX template: a `projects` sheet with drop-down lists, and a `fields` sheet explaining it."""
    import io

    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "projects"
    sheet.append(list(COLUMNS))
    sheet.append([EXAMPLE.get(c) for c in COLUMNS])
    for index, column in enumerate(COLUMNS, start=1):
        letter = get_column_letter(index)
        sheet[f"{letter}1"].font = Font(bold=True)
        sheet.column_dimensions[letter].width = 40 if column in ("name", "description", "wkt") else 18
        if column in ("start_date", "end_date"):
            sheet[f"{letter}2"].number_format = "yyyy-mm-dd"
        values = allowed_values(column)
        if values:
            rule = DataValidation(type="list", formula1='"' + ",".join(values) + '"', allow_blank=True,
                                  showErrorMessage=True, errorTitle=f"Not a {column}",
                                  error=f"Choose one of: {', '.join(values)}")
            rule.add(f"{letter}2:{letter}{LIST_ROWS + 1}")
            sheet.add_data_validation(rule)
    sheet.freeze_panes = "A2"
    fields = book.create_sheet("fields")
    for row in explanations():
        fields.append(row)
    fields.append([])
    fields.append([PROVINCE_NOTE])
    fields.append([EXAMPLE_NOTE])
    for index, width in enumerate((18, 22, 22, 45, 70, 60), start=1):
        fields.column_dimensions[get_column_letter(index)].width = width
    for cell in fields[1]:
        cell.font = Font(bold=True)
    for line in fields.iter_rows(min_row=2):
        for cell in line:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    buffer = io.BytesIO()
    book.save(buffer)
    atomic_write_bytes(path, buffer.getvalue())


def write_template(path: Path) -> str:
    """Write the template the name asks for (.xlsx or .csv); the format written."""
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        write_xlsx_template(path)
    elif suffix == ".csv":
        write_csv_template(path)
    else:
        raise InvalidInput.about("FILE", f"end the name with .xlsx or .csv, not {path.name!r}")
    return suffix[1:]
