"""The OpenAPI document, in version 3.0 as OGC API - Features Part 1 names (`oas30`).

FastAPI writes OpenAPI 3.1 (JSON Schema 2020-12). The few 3.1-only forms it uses are rewritten to
their 3.0 equivalents (`anyOf` with null -> `nullable`, schema `examples` -> `example`, `const` ->
`enum`, numeric `exclusiveMinimum` -> boolean form), and the tests check the result with
openapi-spec-validator. Error responses are documented as RFC 9457 problem JSON. The standard query
parameters are declared as the standards' OpenAPI fragments (`ogc_parameters`), and the write
operations name the Bearer security scheme. The plain filter parameters (`status`, `category`,
`province`) are declared from the project schema's filter fields (`filter_parameter`).
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from geo.query import cql
from geo.schema import PROJECT_SCHEMA, Property
from geo.settings import Settings

OPENAPI_VERSION = "3.0.3"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object", "title": "Problem",
    "description": "RFC 9457 problem details; `errors` names the offending fields.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": "string"}, "message": {"type": "string"},
            # On a 409 (geo/workflow.py, geo/duplicates.py).
            "current": {"type": "string", "description": "A refused status change: the current status."},
            "allowed": {"type": "array", "items": {"type": "string"},
                        "description": "A refused status change: the statuses allowed next."},
            "duplicate_of": {"type": "object", "description": "A duplicate: the stored project's id, URL "
                             "and distance in metres.", "properties": {
                                 "id": {"type": "string"}, "href": {"type": "string", "format": "uri"},
                                 "distance_m": {"type": "number"}}}}}},
    },
}
REASONS = {
    304: "Not modified: the client's copy (If-None-Match / If-Modified-Since) is current.",
    400: "Invalid input: a parameter is wrong (`errors` names it).",
    401: "No valid API key (`Authorization: Bearer <key>`).",
    403: "Writes are disabled (no key configured).",
    404: "No such collection or feature.",
    405: "Method not allowed here (e.g. the collection is read-only); `Allow` lists the methods that are.",
    408: "The request body did not arrive in time.",
    409: "Conflict: the status change is not one the workflow allows (`errors[0].allowed` lists those that "
         "are: GET /collections/projects/workflow), or a new project duplicates a stored one "
         "(`errors[0].duplicate_of` names it; `?duplicate=allow` adds it anyway), or a restore of a project "
         "that is not deleted.",
    410: "Gone: the project was deleted; `Link` (rel `history`) and `errors[0].history` name its history, "
         "and an admin may restore it.",
    412: "Precondition failed: `If-Match` does not match the feature's current ETag, or the feature does "
         "not exist.",
    413: "The body is larger than the limit.",
    415: "The body is not in a media type this operation reads (for PATCH, `Accept-Patch` lists them).",
    422: "The feature breaks the project rules (`errors` names the fields), or an `Idempotency-Key` came "
         "again with another body.",
    429: "Too many writes with this key: wait the `Retry-After` seconds (GEO_WRITE_RATE_PER_KEY).",
    503: "Unavailable: a layer's source data cannot be had yet, the store cannot be written now, or the "
         "API keys cannot be read (`Retry-After` when a retry soon may succeed).",
}
FEATURE_COLLECTION_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["type", "features"],
    "properties": {
        "type": {"type": "string", "enum": ["FeatureCollection"]},
        "features": {"type": "array", "items": {"$ref": "#/components/schemas/Feature"}},
        "numberMatched": {"type": "integer", "minimum": 0},
        "numberReturned": {"type": "integer", "minimum": 0},
        "links": {"type": "array", "items": {"type": "object"}},
    },
}
FEATURE_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["type", "geometry", "properties"],
    "properties": {
        "type": {"type": "string", "enum": ["Feature"]},
        "id": {"type": "string"},
        "geometry": {"type": "object"},
        "properties": {"type": "object"},
    },
}



def _header(description: str, required: bool, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema or {"type": "string"}}


# The headers an error response carries: required where every such response has it.
RESPONSE_HEADERS: dict[int, dict[str, dict[str, Any]]] = {
    401: {"WWW-Authenticate": _header("`Bearer realm=\"geo\"`: send the key as a Bearer token.", True)},
    405: {"Allow": _header("The methods this resource allows now.", True)},
    412: {"ETag": _header("The feature's current ETag (absent when the feature does not exist).", False)},
    415: {"Accept-Patch": _header("On PATCH: the patch media types accepted (RFC 5789).", False)},
    429: {"Retry-After": _header("Seconds to wait before the next write with this key.", True,
                                 {"type": "integer", "minimum": 1})},
    503: {"Retry-After": _header("Seconds after which a retry may succeed, when that is known.", False,
                                 {"type": "integer", "minimum": 0})},
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` entries for these error codes (304 has no body), with the headers they carry."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        if code == 304:
            out[code] = {"description": REASONS[code]}
        else:
            out[code] = {"description": REASONS[code],
                         "content": {"application/problem+json": {"schema": PROBLEM_REF}}}
        if code in RESPONSE_HEADERS:
            out[code]["headers"] = copy.deepcopy(RESPONSE_HEADERS[code])
    return out


def _to_30(node: Any) -> Any:
    """Rewrite the 3.1-only schema forms FastAPI emits into OpenAPI 3.0."""
    if isinstance(node, list):
        return [_to_30(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_30(v) for k, v in node.items()}
    if "$ref" in out and "type" in out:
        # FastAPI documents a custom Response class as `type: string` next to the declared `$ref`;
        # in 3.0 a `$ref` stands alone.
        return {"$ref": out["$ref"]}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            del out[key]
            if len(rest) == 1 and "$ref" not in rest[0]:
                out.update({k: v for k, v in rest[0].items() if k not in out})
            elif rest:
                out["allOf" if len(rest) == 1 else key] = rest
            out["nullable"] = True
    if isinstance(out.get("examples"), list):
        # Schema `examples` (a list) is 3.1; media-type and parameter `examples` (a map) are valid 3.0.
        examples = out.pop("examples")
        if examples:
            out.setdefault("example", examples[0])
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = out.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[limit], out[bound] = value, True
    return out


def _fix_errors(doc: dict[str, Any]) -> None:
    """FastAPI documents request validation as 422 HTTPValidationError; this service answers 400 problems."""
    for path_item in doc.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses", {})
            if responses.get("422", {}).get("description") == "Validation Error":
                del responses["422"]
                responses.setdefault("400", problem_responses(400)[400])
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(Problem=PROBLEM_SCHEMA, Feature=FEATURE_SCHEMA,
                   FeatureCollection=FEATURE_COLLECTION_SCHEMA)


FORM = {"style": "form", "explode": False}
URI = {"type": "string", "format": "uri"}
SECURITY_SCHEME = "bearerKey"
# The server's filter encoding when a request has `filter` but no `filter-lang` (geo/query/params.py).
DEFAULT_FILTER_LANG = "cql2-text"


def ogc_parameters(settings: Settings) -> dict[str, dict[str, Any]]:
    """Query parameters as the standards define them, in their OpenAPI 3.0 fragments (schema, style)."""
    return {
        # Part 1: /req/core/fc-bbox-definition, fc-limit-definition, fc-time-definition.
        "bbox": {"schema": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
                 **FORM},
        "limit": {"schema": {"type": "integer", "minimum": 1, "maximum": settings.max_limit,
                             "default": settings.default_limit}, **FORM},
        "datetime": {"schema": {"type": "string"}, **FORM},
        # Part 2: crs and bbox-crs are URIs.
        "crs": {"schema": URI, **FORM},
        "bbox-crs": {"schema": URI, **FORM},
        # Part 3: /req/filter/filter-param, filter-lang-param (B: the encodings served, C: the default),
        # filter-crs-param.
        "filter": {"schema": {"type": "string"}, **FORM},
        "filter-lang": {"schema": {"type": "string", "enum": list(cql.LANGS), "default": DEFAULT_FILTER_LANG},
                        "style": "form"},
        "filter-crs": {"schema": {"type": "string", "format": "uri-reference"}, **FORM},
        # Part 8 (draft): /req/sorting/sortby-definition.
        "sortby": {"schema": {"type": "array", "minItems": 1,
                              "items": {"type": "string", "pattern": "[+|-]?[A-Za-z_].*"}}, **FORM},
    }


def _example(schema: dict[str, Any], example: Any) -> Any:
    """A parameter's example in its declared type: a comma-separated array as a list."""
    if schema.get("type") != "array" or not isinstance(example, str):
        return example
    parts = example.split(",")
    return [float(p) for p in parts] if schema["items"]["type"] == "number" else parts


# Paths whose query parameters are their own, not the standards' namesakes (the feed's `limit` counts
# changes, with its own bounds).
OWN_PARAMETERS = frozenset({"/changes"})


def _parameters(doc: dict[str, Any], settings: Settings) -> None:
    """Declare the standard query parameters as the standards do, wherever they occur.

    FastAPI declares each as a nullable string; the test suite (ets-ogcapi-features10) checks the
    standard's type, `style: form` and `explode: false`. The server still reads the comma-separated
    form, which is what `style: form, explode: false` means.
    """
    defined = ogc_parameters(settings)
    for path, path_item in doc.get("paths", {}).items():
        if path in OWN_PARAMETERS:
            continue
        for operation in path_item.values():
            for param in operation.get("parameters", []):
                fragment = defined.get(param.get("name", "")) if param.get("in") == "query" else None
                if fragment is None:
                    continue
                example = param["schema"].get("example")
                param.update(copy.deepcopy(fragment))
                if example is not None:
                    param["example"] = _example(param["schema"], example)
                if param["name"] == "limit":
                    param["description"] = (f"Features per page: {settings.default_limit} by default, at "
                                            f"most {settings.max_limit} (a larger value is clamped).")


# The operations that only ever answer about projects: there a filter takes the projects' vocabulary.
PROJECT_PATHS = frozenset({"/stats", "/map"})


def filter_parameter(field: Property, *, projects_only: bool) -> dict[str, Any]:
    """A filter field of the project schema as its query parameter's OpenAPI fragment: a comma-separated
    list (`style: form, explode: false`). Where only projects answer, the items are the field's
    vocabulary; elsewhere the description names it (another layer's `status` has other values)."""
    items: dict[str, Any] = {"type": "string"}
    if field.enum:
        values = "any of " + ", ".join(f"`{v}`" for v in field.enum)
        if projects_only:
            items["enum"] = list(field.enum)
    elif field.filterable is not None and field.filterable.values_of:
        values = f"the ids of the `{field.filterable.values_of}` features"
    else:
        values = "any value"
    whose = "projects" if projects_only else "features"
    return {"schema": {"type": "array", "items": items}, **FORM,
            "description": f"Only the {whose} whose `{field.name}` is one of these (comma-separated); "
                           f"for projects {values}."}


def _filter_parameters(doc: dict[str, Any]) -> None:
    """Declare the plain filter parameters from the project schema, wherever an operation takes them."""
    fields = {field.name: field for field in PROJECT_SCHEMA.filters()}
    for path, path_item in doc.get("paths", {}).items():
        for operation in path_item.values():
            for param in operation.get("parameters", []):
                field = fields.get(param.get("name", "")) if param.get("in") == "query" else None
                if field is not None:
                    param.update(filter_parameter(field, projects_only=path in PROJECT_PATHS))


def _security(doc: dict[str, Any]) -> None:
    """Document the Bearer key (/req/oas/security) and name it on every operation that checks it.

    The operations that check the key are those that answer 401 without it (geo/auth.py), so the
    documented 401 marks them: no list of write operations to keep in step by hand.
    """
    doc.setdefault("components", {})["securitySchemes"] = {SECURITY_SCHEME: {
        "type": "http", "scheme": "bearer",
        "description": "An API key, sent as `Authorization: Bearer <key>`: a named key made by `geo keys "
                       "create` (role `editor`: create and update; `admin`: also delete) or one of "
                       "GEO_API_KEYS (admins). A missing, unknown or revoked key is a 401, a role too "
                       "low a 403."}}
    for path_item in doc.get("paths", {}).values():
        for operation in path_item.values():
            if "401" in operation.get("responses", {}):
                operation["security"] = [{SECURITY_SCHEME: []}]


def _queryable_parameters(doc: dict[str, Any], app: FastAPI) -> None:
    """Declare the queryables that the items take as query parameters (Part 3 queryables-query-
    parameters A); without them in the definition, /req/core/query-param-unknown would refuse them."""
    from geo.routers.features import queryable_parameters  # features imports this module

    operation = doc.get("paths", {}).get("/collections/{collection_id}/items", {}).get("get")
    catalogue = getattr(app.state, "catalogue", None)
    if operation is not None and catalogue is not None:
        params = operation.setdefault("parameters", [])
        taken = {p.get("name") for p in params}
        params += [p for p in queryable_parameters(catalogue) if p["name"] not in taken]


def build(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The service's OpenAPI 3.0 document."""
    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes, tags=app.openapi_tags, servers=app.servers)
    doc = _to_30(doc)
    doc["openapi"] = OPENAPI_VERSION
    _fix_errors(doc)
    _parameters(doc, settings)
    _filter_parameters(doc)
    _queryable_parameters(doc, app)
    _security(doc)
    result: dict[str, Any] = doc
    return result
