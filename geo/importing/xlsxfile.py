"""Read an XLSX workbook to import, with python-calamine (Rust: about ten times openpyxl's speed).

The sheet read is the one named `projects` (the template's), else the first visible one. An XLSX is a
zip archive, so before calamine sees it the archive is checked to stay within bounds (`check_zip`): at
most MAX_MEMBERS files expanding to at most MAX_EXPANDED_BYTES in all, each member's real size
checked by decompressing it (declared sizes can lie). A zip bomb is a 400, never memory exhausted.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

from geo.importing.sources import MAX_ROWS, SourceRow, Table, blank, header_of, too_many_rows, unreadable

SHEET = "projects"
MAX_MEMBERS = 1000
MAX_EXPANDED_BYTES = 100 << 20
BLOCK = 1 << 20


def check_zip(data: bytes, limit: int = MAX_EXPANDED_BYTES) -> None:
    """Refuse (400) a zip archive with too many members or expanding past `limit` bytes in all."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise unreadable(f"not a readable XLSX workbook (it is not a valid zip archive: {exc})") from None
    too_big = unreadable(f"the workbook expands to more than {limit // (1 << 20)} MB; it is refused "
                         "(split it, or save it as CSV)")
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise unreadable(f"the workbook holds {len(members):,} files; at most {MAX_MEMBERS} are read")
        if sum(m.file_size for m in members) > limit:
            raise too_big
        total = 0
        try:
            # zipfile stops each member at its declared size and checks its CRC: reading them all proves
            # the declared sizes, which the check above bounded.
            for member in members:
                with archive.open(member) as stream:
                    while chunk := stream.read(BLOCK):
                        total += len(chunk)
                        if total > limit:
                            raise too_big
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as exc:
            raise unreadable(f"not a readable XLSX workbook (a damaged zip member: {exc})") from None


def _sheet_rows(data: bytes) -> list[list[Any]]:
    from python_calamine import CalamineError, CalamineWorkbook, SheetVisibleEnum

    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        with book:
            visible = [m.name for m in book.sheets_metadata if m.visible == SheetVisibleEnum.Visible]
            names = [SHEET] if SHEET in book.sheet_names else visible or book.sheet_names
            if not names:
                raise unreadable("the workbook has no sheet")
            name = names[0]
            # Empty rows kept, so that a list index is the Excel row number less one.
            return book.get_sheet_by_name(name).to_python(skip_empty_area=False, nrows=MAX_ROWS + 2)
    except CalamineError as exc:
        raise unreadable(f"not a readable XLSX workbook: {exc}") from None
    except (ValueError, OSError) as exc:  # calamine raises these too for some damaged files
        raise unreadable(f"not a readable XLSX workbook: {exc}") from None


def read_xlsx(data: bytes) -> Table:
    """The sheet's header (its first non-blank row) and the non-blank rows after it, numbered as Excel
    numbers them; cells as calamine types them (text, numbers, dates, booleans)."""
    check_zip(data)
    rows = _sheet_rows(data)
    start = next((i for i, row in enumerate(rows) if not all(blank(v) for v in row)), None)
    if start is None:
        raise unreadable("the sheet is empty")
    columns = header_of(rows[start])
    if len(rows) - start - 1 > MAX_ROWS:
        raise too_many_rows(len(rows))
    table = Table("xlsx", columns)
    for index in range(start + 1, len(rows)):
        values = rows[index]
        if all(blank(v) for v in values):
            continue
        table.rows.append(SourceRow(index + 1, dict(zip(columns, values, strict=False))))
    return table
