"""`GET /collections/projects/workflow`: the project status workflow (geo/workflow.py) as JSON, so that
clients offer only the statuses a project may move to. The document changes only with the code: its
ETag is its digest, and a client's current copy gets a 304."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from geo import workflow
from geo.http.conditional import make_etag, not_modified, validators
from geo.openapi import problem_responses
from geo.responses import JSONResponse
from geo.routers.deps import base_url

router = APIRouter(tags=["Projects"])
# The link relation that names the workflow from the projects collection: no registered one fits, so an
# extension relation (RFC 8288 2.1.2), a URI in the namespace of the problem types (urn:geo:problem:).
WORKFLOW_REL = "urn:geo:rel:workflow"
PATH = "/collections/projects/workflow"

EXAMPLE: dict[str, Any] = {
    "statuses": ["proposed", "planned", "approved", "under_construction", "completed", "suspended",
                 "cancelled"],
    "transitions": {"proposed": ["planned", "approved", "cancelled"], "cancelled": ["proposed"]},
}


def link(base: str) -> dict[str, str]:
    """The projects collection's link to the workflow."""
    return {"href": f"{base}{PATH}", "rel": WORKFLOW_REL, "type": "application/json",
            "title": "Projects: the allowed status changes"}


@router.get(PATH, summary="The project status workflow",
            responses={200: {"description": "Every status, the statuses each may change to (`transitions`; "
                                            "keeping a status is always allowed), the statuses a new "
                                            "project may have (`initial`), and how to send a change's "
                                            "note and source (`change`).",
                             "content": {"application/json": {"schema": {"type": "object"},
                                                              "example": EXAMPLE}}},
                       **problem_responses(304)})
async def project_workflow(request: Request) -> Response:
    """Which status may follow which on PUT and PATCH (a refused change answers 409 with the allowed ones)."""
    doc = workflow.document(base_url(request))
    etag = make_etag("workflow", orjson.dumps(doc))
    cached = not_modified(request, etag)
    response = cached if cached is not None else JSONResponse(doc)
    response.headers.update(validators(etag))
    return response
