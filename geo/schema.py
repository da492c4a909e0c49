"""The collection schema: what a collection's features hold, and the JSON Schemas derived from it.

A collection's schema is declared once, or inferred from a static layer's data (`infer_schema`). The
projects' is derived from their pydantic models (geo/models.py: `ProjectProperties`, what a client
writes, and `ServerProperties`, what the server sets), so a property is declared in one place: its
type (`PropertyType`, from the annotation), title and description (`Field(title=..., description=...)`),
vocabulary (an Enum or Literal), and the two marks `Filterable` and `Temporal`. From that one source
come:

- the schema at `/collections/{id}/schema` (OGC API - Features Part 5): every returned property,
  with `x-ogc-role` for the id, the geometry and the primary temporal properties;
- the queryables at `/collections/{id}/queryables` (Part 3): the properties with a simple value;
- the sortables at `/collections/{id}/sortables`: the queryables and the id, which is what the
  frame behind CQL2 filters and `sortby` holds;
- the typed columns of that frame (geo/query/frame.py);
- the filter fields (`Schema.filters`: the items' plain parameters, indexed by the store, the options
  of `geo export` and `geo map`, the map's filter panel, their OpenAPI parameters) and the time span
  `datetime` filters on (`Schema.temporal`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AnyUrl, BaseModel
from pydantic.fields import FieldInfo

from geo.models import Filterable, ProjectProperties, ServerProperties, Temporal

# The JSON Schema type of a simple property value (dates are strings with a `format`), and of any.
ScalarType = Literal["string", "number", "integer", "boolean", "date", "date-time"]
PropertyType = Literal[ScalarType, "array", "object"]
GEOMETRY = "geometry"
JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"


def _typed(kind: PropertyType, enum: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON Schema `type` (and `format`, `enum`) of a kind; dates are strings with a format."""
    dated = kind in ("date", "date-time")
    out: dict[str, Any] = {"type": "string", "format": kind} if dated else {"type": kind}
    if enum:
        out["enum"] = list(enum)
    return out


def _title(name: str, title: str) -> str:
    return title or name.replace("_", " ")


def _annotated(name: str, title: str, description: str) -> dict[str, Any]:
    out = {"title": _title(name, title)}
    if description:
        out["description"] = description
    return out


@dataclass(frozen=True)
class Queryable:
    """One property a filter may name.

    Its hash is computed once: a collection's queryables (a tuple of them) are part of the keys under
    which each table version keeps its CQL2 frame and filter masks, looked up on every filtered request."""

    name: str
    kind: ScalarType
    title: str = ""
    enum: tuple[str, ...] = ()
    description: str = ""
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        fields = (self.name, self.kind, self.title, self.enum, self.description)
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:
        return self._hash

    def schema(self) -> dict[str, Any]:
        """This property as a JSON Schema fragment."""
        return {**_annotated(self.name, self.title, self.description), **_typed(self.kind, self.enum)}


# The feature id: not a property in GeoJSON, but a column of the frame that `sortby` can order by.
ID = Queryable("id", "string", "Identifier")


@dataclass(frozen=True)
class Property:
    """One property of a collection's features, as its schema describes it."""

    name: str
    kind: PropertyType
    title: str = ""
    enum: tuple[str, ...] = ()
    # An array's items: a simple kind, or "object" with `members`.
    items: PropertyType | None = None
    # The members of an object, or of an array's object items.
    members: tuple[Property, ...] = ()
    # Set by the server: a client may not write it (`readOnly` in the schema).
    read_only: bool = False
    description: str = ""
    # The items filter on it by a query parameter of its name (and the store indexes it).
    filterable: Filterable | None = None
    # It starts or ends a feature's time span (what `datetime` filters on).
    temporal: Literal["start", "end"] | None = None

    def queryable(self) -> Queryable | None:
        """This property as a queryable, when its value is simple enough to compare and sort."""
        kind = self.kind
        if kind == "array" or kind == "object":
            return None
        return Queryable(self.name, kind, self.title, self.enum, self.description)

    def schema(self) -> dict[str, Any]:
        """This property as a JSON Schema fragment (Part 5: a `type` on every non-spatial property)."""
        out = {**_annotated(self.name, self.title, self.description), **_typed(self.kind, self.enum)}
        if self.kind == "array" and self.items is not None:
            out["items"] = _nested(self.items, self.members)
        elif self.kind == "object" and self.members:
            out["properties"] = {m.name: m.schema() for m in self.members}
        if self.read_only:
            out["readOnly"] = True
        return out


def _nested(kind: PropertyType, members: tuple[Property, ...]) -> dict[str, Any]:
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

    def __post_init__(self) -> None:
        for bound in ("start", "end"):
            marked = [p.name for p in self.properties if p.temporal == bound]
            if len(marked) > 1:
                raise ValueError(f"more than one property marks the {bound} of the time span: {marked}")
        if self.temporal() is None and any(p.temporal for p in self.properties):
            raise ValueError("a time span with an end needs a start")

    def queryables(self) -> tuple[Queryable, ...]:
        """The properties that CQL2 filters can name: those with a simple value."""
        return tuple(q for p in self.properties if (q := p.queryable()) is not None)

    def filters(self) -> tuple[Property, ...]:
        """The properties the items filter on by a query parameter of their name (`?status=a,b`)."""
        return tuple(p for p in self.properties if p.filterable is not None)

    def temporal(self) -> tuple[str, str] | None:
        """The properties a feature's time span runs between (the same one twice for an instant):
        what `datetime` filters on; None when the features have no time."""
        start = next((p.name for p in self.properties if p.temporal == "start"), None)
        end = next((p.name for p in self.properties if p.temporal == "end"), start)
        return None if start is None or end is None else (start, end)

    def by_name(self, name: str) -> Property | None:
        """The property called `name`, if the schema has one."""
        return next((p for p in self.properties if p.name == name), None)


# Python types and the JSON Schema types they are written as.
_SCALARS: dict[Any, ScalarType] = {str: "string", bool: "boolean", int: "integer", float: "number",
                                   datetime: "date-time", date: "date"}


def _bare(annotation: Any) -> Any:
    """The type under `Annotated[...]` and `... | None`."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) in (Union, UnionType):
            rest = [a for a in get_args(annotation) if a is not type(None)]
            if len(rest) != 1:
                raise TypeError(f"the schema describes one type per property, not {annotation}")
            annotation = rest[0]
        else:
            return annotation


def _type_of(annotation: Any) -> tuple[PropertyType, tuple[str, ...]]:
    """The JSON Schema type of a (bare) annotation, and its vocabulary when it has one."""
    if get_origin(annotation) is Literal:
        return "string", tuple(str(v) for v in get_args(annotation))
    if get_origin(annotation) is list:
        return "array", ()
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return "string", tuple(str(m.value) for m in annotation)
        if issubclass(annotation, BaseModel):
            return "object", ()
        if issubclass(annotation, AnyUrl):
            return "string", ()
    if annotation in _SCALARS:
        return _SCALARS[annotation], ()
    raise TypeError(f"the schema has no type for {annotation!r}")


def _members(model: Any) -> tuple[Property, ...]:
    """The properties of an object-valued annotation (a model), else none."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        return tuple(from_field(name, info) for name, info in model.model_fields.items())
    return ()


def from_field(name: str, info: FieldInfo, *, read_only: bool = False) -> Property:
    """A property as a pydantic field declares it: type, vocabulary, title, description and marks."""
    bare = _bare(info.annotation)
    kind, enum = _type_of(bare)
    items: PropertyType | None = None
    members = _members(bare)
    if kind == "array":
        item = _bare(get_args(bare)[0])
        items, _ = _type_of(item)
        members = _members(item)
    marks = info.metadata
    return Property(name, kind, info.title or "", enum, items, members, read_only, info.description or "",
                    filterable=next((m for m in marks if isinstance(m, Filterable)), None),
                    temporal=next((m.bound for m in marks if isinstance(m, Temporal)), None))


def declared_schema(writable: type[BaseModel], server_set: type[BaseModel], *,
                    geometry: str = "geometry-any") -> Schema:
    """A collection's schema from its models: the properties a client writes, then the read-only ones
    the server sets; what the client must send is required; nothing else is allowed."""
    properties = (*(from_field(n, f) for n, f in writable.model_fields.items()),
                  *(from_field(n, f, read_only=True) for n, f in server_set.model_fields.items()))
    required = tuple(n for n, f in writable.model_fields.items() if f.is_required())
    return Schema(properties, geometry, required, closed=True)


PROJECT_SCHEMA = declared_schema(ProjectProperties, ServerProperties)
PROJECT_QUERYABLES: tuple[Queryable, ...] = PROJECT_SCHEMA.queryables()
# What the store indexes when it loads a version (geo/store/geojson_file.py): the properties the items'
# plain parameters filter on (`?status=`, `?category=`, `?province=`), and the start and end of a
# project's time span (what `datetime` filters on). Both are marks on the models' fields.
PROJECT_FILTERS: tuple[str, ...] = tuple(p.name for p in PROJECT_SCHEMA.filters())
PROJECT_TEMPORAL: tuple[str, str] | None = PROJECT_SCHEMA.temporal()


def kind_of(types: set[type]) -> PropertyType | None:
    """The kind of a property whose non-null values have these Python types (None: mixed or none); the
    tabular formats type their columns by it too (geo/formats/columns.py)."""
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
        kind = kind_of(types)
        if kind is not None:
            item = kind_of(items.get(key, set())) if kind == "array" else None
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
