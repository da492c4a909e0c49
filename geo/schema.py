"""The collection schema: what a collection's features hold, and the JSON Schemas derived from it.

A collection declares its schema once (`PROJECT_SCHEMA`), or it is inferred from a static layer's
data (`infer_schema`). From that one source come:

- the schema at `/collections/{id}/schema` (OGC API - Features Part 5): every returned property,
  with `x-ogc-role` for the id, the geometry and the primary temporal properties;
- the queryables at `/collections/{id}/queryables` (Part 3): the properties with a simple value;
- the sortables at `/collections/{id}/sortables`: the queryables and the id, which is what the
  frame behind CQL2 filters and `sortby` holds;
- the typed columns of that frame (geo/query/frame.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from geo.models import SERVER_FIELDS, Category, ProjectProperties, Status

Kind = Literal["string", "number", "integer", "boolean", "date", "date-time"]
SchemaKind = Literal[Kind, "array", "object"]
SIMPLE_KINDS: frozenset[str] = frozenset(get_args(Kind))
GEOMETRY = "geometry"
JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"


def _typed(kind: SchemaKind, enum: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON Schema `type` (and `format`, `enum`) of a kind; dates are strings with a format."""
    dated = kind in ("date", "date-time")
    out: dict[str, Any] = {"type": "string", "format": kind} if dated else {"type": kind}
    if enum:
        out["enum"] = list(enum)
    return out


def _title(name: str, title: str) -> str:
    return title or name.replace("_", " ")


@dataclass(frozen=True)
class Queryable:
    """One property a filter may name."""

    name: str
    kind: Kind
    title: str = ""
    enum: tuple[str, ...] = ()

    def schema(self) -> dict[str, Any]:
        """This property as a JSON Schema fragment."""
        return {"title": _title(self.name, self.title), **_typed(self.kind, self.enum)}


# The feature id: not a property in GeoJSON, but a column of the frame that `sortby` can order by.
ID = Queryable("id", "string", "Identifier")


@dataclass(frozen=True)
class Property:
    """One property of a collection's features, as its schema describes it."""

    name: str
    kind: SchemaKind
    title: str = ""
    enum: tuple[str, ...] = ()
    # An array's items: a simple kind, or "object" with `members`.
    items: SchemaKind | None = None
    # The members of an object, or of an array's object items.
    members: tuple[Property, ...] = ()
    # Set by the server: a client may not write it (`readOnly` in the schema).
    read_only: bool = False

    def queryable(self) -> Queryable | None:
        """This property as a queryable, when its value is simple enough to compare and sort."""
        kind = self.kind
        if kind == "array" or kind == "object":
            return None
        return Queryable(self.name, kind, self.title, self.enum)

    def schema(self) -> dict[str, Any]:
        """This property as a JSON Schema fragment (Part 5: a `type` on every non-spatial property)."""
        out: dict[str, Any] = {"title": _title(self.name, self.title), **_typed(self.kind, self.enum)}
        if self.kind == "array" and self.items is not None:
            out["items"] = _nested(self.items, self.members)
        elif self.kind == "object" and self.members:
            out["properties"] = {m.name: m.schema() for m in self.members}
        if self.read_only:
            out["readOnly"] = True
        return out


def _nested(kind: SchemaKind, members: tuple[Property, ...]) -> dict[str, Any]:
    out = _typed(kind)
    if kind == "object" and members:
        out["properties"] = {m.name: m.schema() for m in members}
    return out


@dataclass(frozen=True)
class Schema:
    """What a collection's features hold: their properties, their geometry type, what is required."""

    properties: tuple[Property, ...]
    # A Part 5 geometry format: "geometry-any", "geometry-point", "geometry-polygon-or-multipolygon"...
    geometry: str = "geometry-any"
    required: tuple[str, ...] = ()
    # A declared schema lists every property a feature may have; an inferred one may miss some.
    closed: bool = False

    def queryables(self) -> tuple[Queryable, ...]:
        """The properties that CQL2 filters can name: those with a simple value."""
        return tuple(q for p in self.properties if (q := p.queryable()) is not None)


def _project(name: str, kind: SchemaKind, title: str, enum: tuple[str, ...] = (),
             items: SchemaKind | None = None, members: tuple[Property, ...] = ()) -> Property:
    return Property(name, kind, title, enum, items, members, read_only=name in SERVER_FIELDS)


STATUSES = tuple(s.value for s in Status)
# The project properties, as the model defines them plus the server-set ones (models.SERVER_FIELDS).
PROJECT_SCHEMA = Schema(
    properties=(
        _project("name", "string", "Name"),
        _project("name_prs", "string", "Name in Dari"),
        _project("name_ps", "string", "Name in Pashto"),
        _project("category", "string", "Category", tuple(c.value for c in Category)),
        _project("status", "string", "Status", STATUSES),
        _project("description", "string", "Description"),
        _project("budget_usd", "number", "Budget (US dollars)"),
        _project("funders", "array", "Funders", items="string"),
        _project("start_date", "date", "Start date"),
        _project("end_date", "date", "End date"),
        _project("source_url", "string", "Source URL"),
        _project("source_note", "string", "Source note"),
        _project("geometry_quality", "string", "Geometry quality", ("exact", "approximate")),
        _project("province", "string", "Province (ISO 3166-2 code, set by the server)"),
        _project("province_name", "string", "Province name"),
        _project("created_at", "date-time", "Created at"),
        _project("updated_at", "date-time", "Updated at"),
        _project("status_history", "array", "Status history", items="object", members=(
            Property("status", "string", "Status", STATUSES),
            Property("at", "date-time", "Changed at"),
            Property("note", "string", "Note"))),
    ),
    geometry="geometry-any",
    required=tuple(name for name, f in ProjectProperties.model_fields.items() if f.is_required()),
    closed=True,
)
PROJECT_QUERYABLES: tuple[Queryable, ...] = PROJECT_SCHEMA.queryables()
# The properties the items' plain parameters filter on (`?status=`, `?category=`, `?province=`), and
# the start and end of a project's time span (what `datetime` filters on): a table of the projects
# indexes both when it loads a version.
PROJECT_FILTERS: tuple[str, ...] = ("status", "category", "province")
PROJECT_TEMPORAL: tuple[str, str] = ("start_date", "end_date")


def _kind_of(types: set[type]) -> SchemaKind | None:
    """The kind of a property whose non-null values have these Python types (None: mixed or none)."""
    if not types:
        return None
    if types == {str}:
        return "string"
    if types == {bool}:
        return "boolean"
    if types == {int}:
        return "integer"
    if types <= {int, float}:
        return "number"
    if types == {list}:
        return "array"
    if types == {dict}:
        return "object"
    return None


def geometry_format(types: Iterable[str]) -> str:
    """The Part 5 `format` of a geometry property whose values have these GeoJSON types."""
    names = {t.lower() for t in types}
    if len(names) == 1:
        return f"geometry-{names.pop()}"
    for simple in ("point", "linestring", "polygon"):
        if names == {simple, f"multi{simple}"}:
            return f"geometry-{simple}-or-multi{simple}"
    return "geometry-any"


def infer_schema(features: Iterable[Mapping[str, Any]]) -> Schema:
    """The schema of a static layer: every property whose values are all of one type, and its geometry."""
    seen: dict[str, set[type]] = {}
    items: dict[str, set[type]] = {}
    geometries: set[str] = set()
    for feature in features:
        if feature.get("geometry"):
            geometries.add(feature["geometry"]["type"])
        for key, value in feature["properties"].items():
            if value is not None:
                seen.setdefault(key, set()).add(type(value))
            if isinstance(value, list):
                items.setdefault(key, set()).update(type(v) for v in value if v is not None)
    out = []
    for key, types in seen.items():
        kind = _kind_of(types)
        if kind is not None:
            item = _kind_of(items.get(key, set())) if kind == "array" else None
            out.append(Property(key, kind, items=item if item != "array" else None))
    return Schema(tuple(out), geometry_format(geometries))


def infer(features: Iterable[Mapping[str, Any]]) -> tuple[Queryable, ...]:
    """Queryables of a static layer: every property whose values are all of one simple type."""
    return infer_schema(features).queryables()


def sortables(queryables: Iterable[Queryable]) -> tuple[Queryable, ...]:
    """What `sortby` can name: the id and every queryable (the columns of the frame)."""
    return (ID, *queryables)


def document(collection_id: str, title: str, queryables: Iterable[Queryable], href: str) -> dict[str, Any]:
    """The JSON Schema that `/collections/{id}/queryables` returns."""
    properties: dict[str, Any] = {
        GEOMETRY: {"title": "Geometry", "format": "geometry-any", "x-ogc-role": "primary-geometry"},
        # CQL2 can name the id (a column of the frame), so it is listed: additionalProperties is false
        # (Part 3 /req/queryables/get-queryables-response G).
        ID.name: {**ID.schema(), "x-ogc-role": "id"},
    }
    properties.update({q.name: q.schema() for q in queryables})
    return {
        "$schema": JSON_SCHEMA, "$id": href, "type": "object",
        "title": f"{title}: queryables", "description": f"The properties {collection_id} can be "
        "filtered on with CQL2 (`filter`) and sorted on with `sortby`.",
        "properties": properties, "additionalProperties": False,
    }


def _temporal_roles(temporal: tuple[str, str] | None) -> dict[str, str]:
    """Part 5 roles of the properties that `datetime` filters on: an instant, or an interval's ends."""
    if temporal is None:
        return {}
    start, end = temporal
    if start == end:
        return {start: "primary-instant"}
    return {start: "primary-interval-start", end: "primary-interval-end"}


def schema_document(title: str, description: str, schema: Schema, href: str, *,
                    temporal: tuple[str, str] | None, editable: bool) -> dict[str, Any]:
    """The JSON Schema that `/collections/{id}/schema` returns (Part 5, returnables and receivables).

    In a collection that cannot be written every property is `readOnly`: it is only ever fetched.
    """
    roles = _temporal_roles(temporal)
    properties: dict[str, Any] = {
        ID.name: {**ID.schema(), "readOnly": True, "x-ogc-role": "id"},
        GEOMETRY: {"title": "Geometry", "format": schema.geometry, "x-ogc-role": "primary-geometry"},
    }
    for prop in schema.properties:
        properties[prop.name] = prop.schema()
        if prop.name in roles:
            properties[prop.name]["x-ogc-role"] = roles[prop.name]
    if not editable:
        for fragment in properties.values():
            fragment["readOnly"] = True
    doc: dict[str, Any] = {"$schema": JSON_SCHEMA, "$id": href, "type": "object", "title": title,
                           "description": description, "properties": properties}
    if schema.required:
        doc["required"] = list(schema.required)
    if schema.closed:
        doc["additionalProperties"] = False
    return doc


def sortables_document(collection_id: str, title: str, queryables: Iterable[Queryable],
                       href: str) -> dict[str, Any]:
    """The JSON Schema that `/collections/{id}/sortables` returns: no geometry, no lists or objects."""
    return {
        "$schema": JSON_SCHEMA, "$id": href, "type": "object",
        "title": f"{title}: sortables", "description": f"The properties `sortby` can order {collection_id} "
        "by (`-name` descending); features without a value come last either way.",
        "properties": {q.name: q.schema() for q in sortables(queryables)}, "additionalProperties": False,
    }
