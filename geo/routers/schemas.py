"""What a collection's features hold, as three JSON Schemas: the feature schema (OGC API - Features
Part 5), the queryables (Part 3) and the sortables (Part 5, Part 8 draft).

All three come from the collection's one schema (geo/schema.py), answered the same way (ETag, 304):
derived from the pydantic models for projects (geo/models.py), inferred from the data for the static layers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from geo import html
from geo.catalogue import Collection
from geo.http.conditional import make_etag, not_modified, validators
from geo.openapi import problem_responses
from geo.query.featuretable import FeatureTable
from geo.query.params import single_valued
from geo.responses import JSONResponse
from geo.routers.deps import CollectionDep, base_url
from geo.routers.features import SCHEMA_JSON, FormatParam
from geo.schema import Queryable, Schema, infer_schema, schema_document, sortables_document
from geo.schema import document as queryables_document

# As on the other OGC routes, no parameter may come twice.
router = APIRouter(tags=["OGC API - Features"], dependencies=[Depends(single_valued)])


def schema_of(collection: Collection, table: FeatureTable) -> Schema:
    """The collection's declared schema, or the one inferred from this version of its data (kept)."""
    if collection.schema is not None:
        return collection.schema
    return table.derived("schema", lambda: infer_schema(table.features))


def _answer(request: Request, etag: str, table: FeatureTable, make: Callable[[], Response]) -> Response:
    """A 304 when the client's copy is current, else `make()`; both carry the validators."""
    cached = not_modified(request, etag, table.modified)
    response = cached if cached is not None else make()
    response.headers.update(validators(etag, table.modified))
    response.headers["Vary"] = "Accept"
    return response


@router.get("/collections/{collection_id}/schema", summary="The schema of a collection's features",
            responses={200: {"content": {SCHEMA_JSON: {"schema": {"type": "object"}},
                                         "text/html": {"schema": {"type": "string"}}}},
                       **problem_responses(304, 400, 404, 503)})
async def schema(request: Request, coll: CollectionDep, f: FormatParam = None) -> Response:
    """Every property the features have (returnables) and a client may send (receivables), as JSON
    Schema 2020-12 with `x-ogc-role` for the id, the geometry and the primary temporal properties."""
    table = coll.table()
    href = f"{base_url(request)}/collections/{coll.id}/schema"
    as_html = html.wants_html(request, f)
    etag = make_etag("schema", href, table.version, coll.editable, as_html)

    def make() -> Response:
        doc = schema_document(coll.title, coll.description, schema_of(coll, table), href,
                              temporal=coll.temporal, editable=coll.editable)
        if as_html:
            base = base_url(request)
            return html.respond("schema.html", title=f"{coll.title}: schema", base=base, doc=doc, links=[])
        return JSONResponse(doc, media_type=SCHEMA_JSON)
    return _answer(request, etag, table, make)


# The queryables and the sortables are both a JSON Schema of the collection's queryables (the sortables
# add the id): one way to answer them, each route naming its document.
QueryablesDocument = Callable[[str, str, tuple[Queryable, ...], str], dict[str, Any]]
SCHEMA_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {SCHEMA_JSON: {"schema": {"type": "object"}}}}, **problem_responses(304, 400, 404, 503)}


def _queryables_answer(request: Request, coll: Collection, name: str, build: QueryablesDocument) -> Response:
    """The document `build` makes of the collection's queryables, at `/collections/{id}/{name}`."""
    table = coll.table()
    href = f"{base_url(request)}/collections/{coll.id}/{name}"
    etag = make_etag(name, href, table.version)
    return _answer(request, etag, table, lambda: JSONResponse(
        build(coll.id, coll.title, coll.queryables_of(table), href), media_type=SCHEMA_JSON))


@router.get("/collections/{collection_id}/queryables", summary="What a collection can be filtered on",
            responses=SCHEMA_RESPONSES)
async def queryables(request: Request, coll: CollectionDep) -> Response:
    """The queryables as a JSON Schema (OGC API - Features Part 3)."""
    return _queryables_answer(request, coll, "queryables", queryables_document)


@router.get("/collections/{collection_id}/sortables", summary="What a collection can be sorted on",
            responses=SCHEMA_RESPONSES)
async def sortables(request: Request, coll: CollectionDep) -> Response:
    """The properties `sortby` accepts, as a JSON Schema: the id and every queryable."""
    return _queryables_answer(request, coll, "sortables", sortables_document)
