"""Spreadsheet cells as the JSON values a client would send for each field.

Only the form changes here, never a rule: a cell that reads as the field's type is converted ("1,200,000"
to 1200000.0, an Excel date to "2025-03-01", "Under construction" to `under_construction`, "A; B" to
["A", "B"]); anything else is passed on as it is, so that the API's own checks (geo.validation) reject
it with their message, as they would a POST.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import orjson

from geo.formats.stream import FORMULA_START
from geo.models import Category, Status

VOCABULARIES: dict[str, type[StrEnum]] = {"category": Category, "status": Status}
# "USD 1,200,000", "$1 200 000", "1.2e6": the currency and the thousands separators go.
_MONEY_NOISE = re.compile(r"(?i)us\$|usd|\$|[,\s\u00a0\u202f']")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def text(value: Any, *, from_csv: bool = False) -> Any:
    """A text cell stripped; numbers as text (an integral float without `.0`); empty as None.

    In a CSV, a leading apostrophe before a formula character is dropped: it is how `geo export` and
    the rejected-rows file keep such a cell from running as a formula in a spreadsheet."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value  # not text: the model says so
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if not isinstance(value, str):
        return value
    stripped = value.strip()
    if from_csv and stripped[:1] == "'" and stripped[1:2] and stripped[1:2].startswith(FORMULA_START):
        stripped = stripped[1:]
    return stripped or None


def vocabulary(field: str, value: Any) -> Any:
    """A category or status as the enum writes it ("Under construction" -> `under_construction`)."""
    if not isinstance(value, str):
        return value
    candidate = re.sub(r"[\s\-]+", "_", value.strip().casefold())
    return candidate if candidate in VOCABULARIES[field].__members__ else value


def number(value: Any) -> Any:
    """A number cell as a float; text that reads as an amount ("USD 1,200,000") too; else as it is."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        cleaned = _MONEY_NOISE.sub("", value)
        if _NUMBER.fullmatch(cleaned):
            return float(cleaned)
    return value


def day(value: Any) -> Any:
    """A date cell as `YYYY-MM-DD` (a spreadsheet date or date-time at midnight); text as it is."""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def funders(value: Any) -> Any:
    """Funders: a JSON list (as `geo export` writes it), or names separated by `;`."""
    if isinstance(value, str):
        if value.startswith("["):
            try:
                parsed = orjson.loads(value)
            except orjson.JSONDecodeError:
                return value
            return parsed
        return [part.strip() for part in value.split(";") if part.strip()]
    return value


def coordinate(value: Any) -> float | None:
    """A longitude or latitude in decimal degrees, or None when the cell does not read as one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value.strip())
    return None


def field_value(field: str, value: Any, *, from_csv: bool = False) -> Any:
    """The JSON value a client would send for `field`, from a cell (None: the cell is empty)."""
    if field in ("start_date", "end_date"):
        value = day(value)
    if not isinstance(value, list | dict):
        value = text(value, from_csv=from_csv)
    if value is None:
        return None
    if field in VOCABULARIES:
        return vocabulary(field, value)
    if field == "budget_usd":
        return number(value)
    if field == "funders":
        return funders(value)
    return value
