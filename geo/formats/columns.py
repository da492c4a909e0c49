"""Features as typed columns, for the tabular formats (CSV, GDAL formats, GeoParquet).

Nested values (the Salang `sources`, a project's `funders` and `status_history`) become JSON text in
their column, the usual choice for tools that know only flat tables; the feature id is the column `id`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from geo.schema import kind_of

# The type a column is written as in a tabular format (geo.schema.ScalarType is a property's type in
# the schema; here only what every format can hold).
ColumnType = Literal["bool", "int", "float", "str"]

ID = "id"
# Largest integer every tabular format (and numpy's int64) holds.
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Column:
    """One attribute column: its name, the type it is written as, and its values (None when absent)."""

    name: str
    kind: ColumnType
    values: list[Any]


def as_text(value: Any) -> str:
    """A value as text: strings as they are, anything else as JSON (non-ASCII kept)."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


# A column's type from the kind the layer's schema infers for its values (geo.schema.kind_of): the
# same rule, so a download's columns agree with /schema; anything else (text, lists, objects, mixed
# types, no values) is written as text.
_COLUMN_TYPES: dict[str | None, ColumnType] = {"boolean": "bool", "integer": "int", "number": "float"}


def _column_type(values: Iterable[Any]) -> ColumnType:
    """The narrowest type that holds every present value."""
    return _COLUMN_TYPES.get(kind_of({type(v) for v in values if v is not None}), "str")


def _convert(kind: ColumnType, values: list[Any]) -> list[Any]:
    if kind == "str":
        return [None if v is None else as_text(v) for v in values]
    if kind == "float":
        return [None if v is None else float(v) for v in values]
    return values


def flatten(features: Sequence[Mapping[str, Any]]) -> list[Column]:
    """The features' ids and properties as columns, in order of first appearance."""
    names: dict[str, None] = {}
    for feature in features:
        # dict.fromkeys over each feature keeps first-seen order without a Python-level membership loop.
        names.update(dict.fromkeys(feature["properties"]))
    # A property called `id` would clash with the feature id: keep it, renamed.
    columns = [Column(ID, "str", [str(f["id"]) for f in features])]
    for name in names:
        values = [f["properties"].get(name) for f in features]
        kind = _column_type(values)
        if kind == "int" and any(abs(v) > INT64_MAX for v in values if v is not None):
            kind = "str"  # too big for any format's integer: keep the digits exactly
        label = "properties.id" if name == ID else name
        columns.append(Column(label, kind, _convert(kind, values)))
    return columns
