"""The OpenAPI document, in version 3.0 as OGC API - Features Part 1 names (`oas30`).

FastAPI writes OpenAPI 3.1 (JSON Schema 2020-12). The few 3.1-only forms it uses are rewritten to
their 3.0 equivalents (`anyOf` with null -> `nullable`, schema `examples` -> `example`, `const` ->
`enum`, numeric `exclusiveMinimum` -> boolean form), and the tests check the result with
openapi-spec-validator. Error responses are documented as RFC 9457 problem JSON.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

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
            "field": {"type": "string"}, "message": {"type": "string"}}}},
    },
}
REASONS = {
    304: "Not modified: the client's copy (If-None-Match / If-Modified-Since) is current.",
    400: "Invalid input: a parameter is wrong (`errors` names it).",
    401: "No valid API key (`Authorization: Bearer <key>`).",
    403: "Writes are disabled (no key configured).",
    404: "No such collection or feature.",
    405: "The collection is read-only.",
    412: "Precondition failed: `If-Match` does not match the feature's current ETag.",
    413: "The body is larger than the limit.",
    415: "The body is not JSON.",
    422: "The feature breaks the project rules (`errors` names the fields).",
    503: "Unavailable: a layer's source data cannot be had yet, or the store cannot be written now.",
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


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` entries for these error codes (304 has no body)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        if code == 304:
            out[code] = {"description": REASONS[code]}
        else:
            out[code] = {"description": REASONS[code],
                         "content": {"application/problem+json": {"schema": PROBLEM_REF}}}
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
                responses.setdefault("400", problems(400)[400])
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(Problem=PROBLEM_SCHEMA, Feature=FEATURE_SCHEMA,
                   FeatureCollection=FEATURE_COLLECTION_SCHEMA)


def _limits(doc: dict[str, Any], settings: Settings) -> None:
    """Document `limit`'s default and maximum from the settings."""
    for path_item in doc.get("paths", {}).values():
        for operation in path_item.values():
            for param in operation.get("parameters", []):
                if param.get("name") == "limit" and param.get("in") == "query":
                    param["schema"].update(type="integer", minimum=1, maximum=settings.max_limit,
                                           default=settings.default_limit)
                    param["schema"].pop("nullable", None)
                    param["description"] = (f"Features per page: {settings.default_limit} by default, at "
                                            f"most {settings.max_limit} (a larger value is clamped).")


def build(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The service's OpenAPI 3.0 document."""
    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes, tags=app.openapi_tags, servers=app.servers)
    doc = _to_30(doc)
    doc["openapi"] = OPENAPI_VERSION
    _fix_errors(doc)
    _limits(doc, settings)
    result: dict[str, Any] = doc
    return result
