"""Queryables: the properties a collection can be filtered and sorted on, and their types.

They drive three things: the JSON Schema at `/collections/{id}/queryables` (OGC API - Features
Part 3), the typed columns of the frame that CQL2 filters and `sortby` run on, and the check that a
filter only names properties that exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from geo.models import Category, Status

Kind = Literal["string", "number", "integer", "boolean", "date", "date-time"]
GEOMETRY = "geometry"
JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class Queryable:
    """One property a filter may name."""

    name: str
    kind: Kind
    title: str = ""
    enum: tuple[str, ...] = ()

    def schema(self) -> dict[str, Any]:
        """This property as a JSON Schema fragment."""
        out: dict[str, Any] = {"title": self.title or self.name.replace("_", " ")}
        if self.kind in ("date", "date-time"):
            out.update(type="string", format=self.kind)
        else:
            out["type"] = self.kind
        if self.enum:
            out["enum"] = list(self.enum)
        return out


# The project properties, as the model defines them plus the server-set ones. `funders` and
# `status_history` are lists and cannot be compared, so they are not queryable.
PROJECT_QUERYABLES: tuple[Queryable, ...] = (
    Queryable("name", "string", "Name"),
    Queryable("name_prs", "string", "Name in Dari"),
    Queryable("name_ps", "string", "Name in Pashto"),
    Queryable("category", "string", "Category", tuple(c.value for c in Category)),
    Queryable("status", "string", "Status", tuple(s.value for s in Status)),
    Queryable("description", "string", "Description"),
    Queryable("budget_usd", "number", "Budget (US dollars)"),
    Queryable("start_date", "date", "Start date"),
    Queryable("end_date", "date", "End date"),
    Queryable("source_url", "string", "Source URL"),
    Queryable("source_note", "string", "Source note"),
    Queryable("geometry_quality", "string", "Geometry quality", ("exact", "approximate")),
    Queryable("province", "string", "Province (ISO 3166-2 code, set by the server)"),
    Queryable("province_name", "string", "Province name"),
    Queryable("created_at", "date-time", "Created at"),
    Queryable("updated_at", "date-time", "Updated at"),
)


def infer(features: Iterable[Mapping[str, Any]]) -> tuple[Queryable, ...]:
    """Queryables of a static layer: every property whose values are all of one scalar type."""
    seen: dict[str, set[type]] = {}
    for feature in features:
        for key, value in feature["properties"].items():
            if value is not None:
                seen.setdefault(key, set()).add(type(value))
    out = []
    for key, types in seen.items():
        kind: Kind | None = None
        if types == {str}:
            kind = "string"
        elif types == {bool}:
            kind = "boolean"
        elif types == {int}:
            kind = "integer"
        elif types <= {int, float}:
            kind = "number"
        if kind is not None:
            out.append(Queryable(key, kind))
    return tuple(out)


def document(collection_id: str, title: str, queryables: Iterable[Queryable], href: str) -> dict[str, Any]:
    """The JSON Schema that `/collections/{id}/queryables` returns."""
    properties: dict[str, Any] = {
        GEOMETRY: {"title": "Geometry", "format": "geometry-any", "x-ogc-role": "primary-geometry"},
    }
    properties.update({q.name: q.schema() for q in queryables})
    return {
        "$schema": JSON_SCHEMA, "$id": href, "type": "object",
        "title": f"{title}: queryables", "description": f"The properties {collection_id} can be "
        "filtered on with CQL2 (`filter`) and sorted on with `sortby`.",
        "properties": properties, "additionalProperties": False,
    }
