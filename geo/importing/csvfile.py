"""Read a CSV file to import: UTF-8 (a byte-order mark, as Excel writes, is dropped), comma, semicolon
or tab separated (whichever the header row holds most of: Excel writes semicolons where the decimal
separator is a comma)."""

from __future__ import annotations

import csv
import io

from geo.importing.sources import MAX_ROWS, SourceRow, Table, blank, header_of, too_many_rows, unreadable

DELIMITERS = (",", ";", "\t")


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise unreadable(
            f"the file is not UTF-8 text (byte 0x{data[exc.start]:02X} at position {exc.start:,}): in Excel, "
            "save it as 'CSV UTF-8 (Comma delimited)'") from None


def _delimiter(text: str) -> str:
    first = text.split("\n", 1)[0]
    return max(DELIMITERS, key=first.count) if any(d in first for d in DELIMITERS) else ","


def read_csv(data: bytes) -> Table:
    """The CSV's header and non-blank rows, numbered as a spreadsheet shows them (the header is row 1).

    Refused (400): bytes that are not UTF-8, a cell past the csv module's field limit (131,072
    characters), more than MAX_ROWS rows."""
    text = _text(data)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    try:
        first = next(reader, None)
        if first is None:
            raise unreadable("the file is empty")
        columns = header_of(list(first))
        table = Table("csv", columns)
        for index, values in enumerate(reader):
            if index >= MAX_ROWS:
                raise too_many_rows(index)
            if all(blank(v) for v in values):
                continue
            table.rows.append(SourceRow(index + 2, dict(zip(columns, values, strict=False))))
    except csv.Error as exc:
        raise unreadable(f"the CSV cannot be read near row {reader.line_num:,}: {exc}") from None
    return table
