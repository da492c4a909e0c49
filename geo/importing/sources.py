"""What a file to import holds, whatever its format: a header and numbered rows of cells.

The readers (geo.importing.csvfile, xlsxfile, geofile) turn a file's bytes into a `Table`; `kind_of`
tells which reader a file needs from its media type, its name, or (failing both) its first bytes.
An unreadable file is a 400 problem and a file in no format read here a 415, both naming `file`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from geo.errors import InvalidInput, UnsupportedMediaType

Kind = Literal["csv", "xlsx", "geojson", "gpkg"]
KINDS: tuple[Kind, ...] = ("csv", "xlsx", "geojson", "gpkg")

# The media types the import endpoint takes, and the format each names.
MEDIA_TYPES: dict[str, Kind] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/geo+json": "geojson",
    "application/json": "geojson",
    "application/geopackage+sqlite3": "gpkg",
}
EXTENSIONS: dict[str, Kind] = {".csv": "csv", ".xlsx": "xlsx", ".geojson": "geojson", ".json": "geojson",
                               ".gpkg": "gpkg"}
# Media types that say nothing about the format: the file name, then the bytes, decide.
VAGUE_TYPES = frozenset({"", "application/octet-stream", "text/plain", "multipart/form-data"})
ZIP_MAGIC = b"PK\x03\x04"
SQLITE_MAGIC = b"SQLite format 3\x00"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the old binary .xls (and .doc)

# Bounds every reader keeps to, whatever the file says: rows past MAX_ROWS and columns past
# MAX_COLUMNS are refused (a 400), not read.
MAX_ROWS = 100_000
MAX_COLUMNS = 200

ACCEPTED = "CSV (UTF-8), XLSX, GeoJSON or GeoPackage"


@dataclass
class SourceRow:
    """One row of the file: its number as the user sees it (the spreadsheet row, the header being row
    1; the feature's position, from 1, in GeoJSON and GeoPackage), its cells by column, and the
    geometry the file itself gives (GeoJSON and GeoPackage), as a GeoJSON geometry."""

    number: int
    cells: dict[str, Any]
    geometry: Any = None
    # Set when the row cannot be read at all (a GeoJSON feature that is not an object): it is rejected.
    problem: str | None = None


@dataclass
class Table:
    """A file's columns (in order) and its rows (blank rows left out)."""

    kind: Kind
    columns: list[str]
    rows: list[SourceRow] = field(default_factory=list)


def unreadable(message: str) -> InvalidInput:
    """The 400 problem for a file that cannot be read, naming the `file` field."""
    return InvalidInput.about("file", message)


def _sniff(data: bytes) -> Kind | None:
    if data.startswith(ZIP_MAGIC):
        return "xlsx"
    if data.startswith(SQLITE_MAGIC):
        return "gpkg"
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        return "geojson"
    return None


def kind_of(data: bytes, media_type: str | None = None, filename: str | None = None) -> Kind:
    """The format of a file: from its media type, else its name's extension, else its first bytes.

    An old binary .xls, or a file in none of the formats, is a 415 problem saying what is accepted."""
    media = (media_type or "").split(";")[0].strip().lower()
    if data.startswith(OLE_MAGIC) or (filename or "").lower().endswith(".xls"):
        raise UnsupportedMediaType.about(
            "file", "this looks like an old Excel .xls file: save it as .xlsx (Excel Workbook) or CSV UTF-8")
    if media in MEDIA_TYPES:
        return MEDIA_TYPES[media]
    if media not in VAGUE_TYPES:
        raise UnsupportedMediaType.about(
            "Content-Type", f"{media!r} is not a format the import reads; send {ACCEPTED} as one of "
                            f"{', '.join(MEDIA_TYPES)}")
    name = (filename or "").lower()
    for extension, kind in EXTENSIONS.items():
        if name.endswith(extension):
            return kind
    sniffed = _sniff(data)
    if sniffed is None:
        raise UnsupportedMediaType.about(
            "file", f"cannot tell the file's format: name it .csv, .xlsx, .geojson or .gpkg, or send a "
                    f"Content-Type ({', '.join(MEDIA_TYPES)})")
    return sniffed


def read_table(data: bytes, kind: Kind) -> Table:
    """The file's header and rows; a 400 problem (field `file`) when it cannot be read as `kind`."""
    if kind == "csv":
        from geo.importing.csvfile import read_csv

        return read_csv(data)
    if kind == "xlsx":
        from geo.importing.xlsxfile import read_xlsx

        return read_xlsx(data)
    from geo.importing.geofile import read_geojson, read_gpkg

    return read_geojson(data) if kind == "geojson" else read_gpkg(data)


def header_of(values: list[Any]) -> list[str]:
    """Column names from a header row: text, stripped; refuses too many columns or a repeated name."""
    names = ["" if v is None else str(v).strip() for v in values]
    while names and not names[-1]:
        names.pop()
    if not any(names):
        raise unreadable("the first row must hold the column names (e.g. name, category, status, lon, lat)")
    repeated = sorted(n for n, count in Counter(names).items() if n and count > 1)
    if repeated:
        raise unreadable(f"column names must differ; repeated: {', '.join(repeated)}")
    return check_columns(names)


def check_columns(names: list[str]) -> list[str]:
    """The names, unless there are more than MAX_COLUMNS of them (a 400)."""
    if len(names) > MAX_COLUMNS:
        raise unreadable(f"the file has {len(names):,} columns; at most {MAX_COLUMNS} are read")
    return names


def blank(value: Any) -> bool:
    """Whether a cell holds nothing (empty, or only spaces)."""
    return value is None or (isinstance(value, str) and not value.strip())


def too_many_rows(count: int) -> InvalidInput:
    """The 400 problem for a file past MAX_ROWS."""
    return unreadable(f"the file has more than {MAX_ROWS:,} rows; split it into smaller files")
