"""A project's life after its creation: `GET .../items/{id}/history` (every change, who made it and
what it changed) and `POST .../items/{id}/restore` (an admin brings a deleted project back).

A DELETE hides a project from the items, the map, the stats and the downloads, but the store keeps its
record (geo.store.changes): a request for a deleted id answers 410 Gone with a link to its history
(`missing`), and the id is never given to another project.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from geo.auth import require_admin
from geo.catalogue import Catalogue
from geo.errors import GeoError, Gone, NotFound
from geo.history import rfc3339, timeline
from geo.openapi import problem_responses
from geo.responses import GEOJSON, GeoJSONResponse, JSONResponse
from geo.routers.deps import CatalogueDep, base_url
from geo.store.base import etag_of
from geo.store.changes import OPS, WriteMeta

router = APIRouter(tags=["Projects"])
ITEMS = "/collections/projects/items"
HISTORY = ITEMS + "/{feature_id}/history"
# The relation of an item to its history. The issue names it `history`; IANA registers none by that name
# (RFC 5829's `version-history` is about versions, not events), so the plain name is used.
HISTORY_REL = "history"


def history_link(base: str, fid: str) -> dict[str, str]:
    """An item's link to its history."""
    return {"href": f"{base}{ITEMS}/{fid}/history", "rel": HISTORY_REL, "type": "application/json",
            "title": "Who changed this project, when and why"}


def missing(catalogue: Catalogue, collection_id: str, fid: str, base: str) -> GeoError:
    """The error for an id that is not among the features: 410 Gone (with its history's URL) for a
    deleted project, else 404. Blocking (it asks the store's record): call it from a thread."""
    if collection_id == "projects":
        gone = catalogue.store.deleted(fid)
        if gone is not None:
            href = history_link(base, fid)["href"]
            by = f" by {gone.by}" if gone.by else ""
            return Gone(f"Project {fid!r} was deleted at {rfc3339(gone.at)}{by}. Its history is at {href}; "
                        "an admin can restore it.",
                        errors=[{"field": "id", "message": "deleted", "deleted_at": rfc3339(gone.at),
                                 "history": href}],
                        headers={"Link": f'<{href}>; rel="{HISTORY_REL}"'})
    return NotFound(f"There is no feature {fid!r} in {collection_id}.")


async def missing_here(request: Request, collection_id: str, fid: str) -> GeoError:
    """`missing(...)` for `fid`, from the event loop (the store is asked in a thread): raise it."""
    catalogue: Catalogue = request.app.state.catalogue
    return await run_in_threadpool(missing, catalogue, collection_id, fid, base_url(request))


HISTORY_EXAMPLE: dict[str, Any] = {
    "id": "p-0123456789ab", "deleted": False,
    "events": [
        {"seq": 41, "at": "2026-03-02T09:00:00.000Z", "op": "create", "by": "ministry-of-education",
         "fields": [{"field": "name", "before": None, "after": "Girls' secondary school"}],
         "status": {"from": None, "to": "proposed"}},
        {"seq": 57, "at": "2026-05-10T14:12:03.120Z", "op": "status", "by": "ministry-of-education",
         "fields": [{"field": "status", "before": "proposed", "after": "approved"}],
         "status": {"from": "proposed", "to": "approved", "note": "Budget approved",
                    "source": "https://example.org/decision-17"}},
    ],
    "links": [],
}


_FIELD = {"type": "object", "required": ["field", "before", "after"],
          "properties": {"field": {"type": "string"}, "before": {"nullable": True},
                         "after": {"nullable": True}}}
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["seq", "at", "op", "by"],
    "properties": {
        "seq": {"type": "integer", "minimum": 1}, "at": {"type": "string", "format": "date-time"},
        "op": {"type": "string", "enum": list(OPS)}, "by": {"type": "string", "nullable": True},
        "fields": {"type": "array", "items": _FIELD},
        "status": {"type": "object", "properties": {
            "from": {"type": "string", "nullable": True}, "to": {"type": "string"},
            "note": {"type": "string"}, "source": {"type": "string"}}}}}
HISTORY_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["id", "deleted", "events", "links"],
    "properties": {"id": {"type": "string"}, "deleted": {"type": "boolean"},
                   "events": {"type": "array", "items": EVENT_SCHEMA},
                   "links": {"type": "array", "items": {"type": "object"}}}}


@router.get(HISTORY, summary="A project's history",
            responses={200: {"description": "Every change of the project in order: creation, each field "
                                            "with its value before and after, status changes with their "
                                            "note and source, deletion and restore; `by` is the name of the "
                                            "key that made it (never the key).",
                             "content": {"application/json": {"schema": HISTORY_SCHEMA,
                                                              "example": HISTORY_EXAMPLE}}},
                       **problem_responses(404, 503)})
async def history(request: Request, catalogue: CatalogueDep, feature_id: str) -> JSONResponse:
    """The full timeline of one project, deleted ones too."""
    changes = await run_in_threadpool(catalogue.store.history, feature_id)
    if not changes:
        raise NotFound(f"There is no project {feature_id!r}, and never was.")
    base = base_url(request)
    deleted = changes[-1].op == "delete"
    links = [{"href": f"{base}{ITEMS}/{feature_id}/history", "rel": "self", "type": "application/json",
              "title": "This history"},
             {"href": f"{base}/collections/projects", "rel": "collection", "type": "application/json",
              "title": "Projects"}]
    if not deleted:
        links.append({"href": f"{base}{ITEMS}/{feature_id}", "rel": "item", "type": GEOJSON,
                      "title": "The project"})
    return JSONResponse({"id": feature_id, "deleted": deleted, "events": timeline(changes), "links": links},
                        headers={"Cache-Control": "no-cache"})


@router.post(ITEMS + "/{feature_id}/restore", summary="Restore a deleted project (admin)",
             response_class=GeoJSONResponse,
             responses={200: {"description": "Restored: the project as it was when deleted, back among the "
                                             "items; `Location` names it.",
                              "content": {GEOJSON: {"schema": {"$ref": "#/components/schemas/Feature"}}}},
                        **problem_responses(401, 403, 404, 409, 429, 503)})
async def restore(request: Request, catalogue: CatalogueDep, feature_id: str,
                  by: Annotated[str, Depends(require_admin)]) -> GeoJSONResponse:
    """Bring a deleted project back (admin keys only); 409 when it is not deleted."""
    feature = await run_in_threadpool(catalogue.store.restore, feature_id, WriteMeta(by=by))
    location = f"{base_url(request)}{ITEMS}/{feature_id}"
    return GeoJSONResponse(feature, headers={"ETag": etag_of(feature), "Location": location})
