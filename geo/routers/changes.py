"""`GET /changes`: every change to the projects, in commit order, for systems that keep a copy in sync
and for the web map, which follows it.

A client starts from the beginning (no `since`) or from a time, and then passes back the `cursor` of
each answer as `since`: the cursors are the store's change numbers, so no change is skipped or repeated
however the requests interleave with writes. The feed reads the store's record (geo.store.changes), not
its features: deletions are in it, and each entry carries the project as it was after that change, so
replaying the feed in order rebuilds the store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from geo.errors import InvalidInput
from geo.history import feed_entry
from geo.openapi import problem_responses
from geo.query.params import rfc3339
from geo.responses import JSONResponse
from geo.routers.deps import CatalogueDep, base_url
from geo.routers.lifecycle import ITEMS
from geo.store.base import ProjectStore
from geo.store.changes import OPS

router = APIRouter(tags=["Changes"])
PATH = "/changes"
# The landing page's link to the feed: no registered relation fits, so an extension relation (RFC 8288
# 2.1.2), as the workflow's is (geo/routers/workflow.py).
CHANGES_REL = "urn:geo:rel:changes"
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000

EXAMPLE: dict[str, Any] = {
    "changes": [{"seq": 58, "at": "2026-05-10T14:12:03.120Z", "op": "status", "collection": "projects",
                 "id": "p-0123456789ab", "by": "ministry-of-education",
                 "feature": {"type": "Feature", "id": "p-0123456789ab", "geometry": None, "properties": {}},
                 "links": []}],
    "cursor": "58", "more": False, "links": [],
}

_LINKS = {"type": "array", "items": {"type": "object", "required": ["href", "rel"],
                                     "properties": {"href": {"type": "string"}, "rel": {"type": "string"}}}}
CHANGE_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["seq", "at", "op", "collection", "id", "by", "feature", "links"],
    "properties": {
        "seq": {"type": "integer", "minimum": 1}, "at": {"type": "string", "format": "date-time"},
        "op": {"type": "string", "enum": list(OPS)}, "collection": {"type": "string", "enum": ["projects"]},
        "id": {"type": "string"}, "by": {"type": "string", "nullable": True},
        "feature": {"allOf": [{"$ref": "#/components/schemas/Feature"}], "nullable": True},
        "links": _LINKS}}
FEED_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["changes", "cursor", "more", "links"],
    "properties": {"changes": {"type": "array", "items": CHANGE_SCHEMA}, "cursor": {"type": "string"},
                   "more": {"type": "boolean"}, "links": _LINKS}}

Since = Annotated[str | None, Query(
    max_length=64,
    description="Where to start: a `cursor` from an earlier answer (the changes after it), or an RFC 3339 "
                "time such as `2026-05-10T00:00:00Z` (the changes made at or after it). Absent: from the "
                "first change.")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="The most changes in one answer.")]


def _time(value: str) -> datetime:
    """An RFC 3339 date-time with its offset, read as the `datetime` parameter is (a bare date names no
    moment here: 400 naming `since`)."""
    if "T" not in value.upper():
        raise InvalidInput.about("since", "a cursor from an earlier answer, or an RFC 3339 time with its "
                                          "offset, such as 2026-05-10T00:00:00Z")
    return rfc3339(value, "since").replace(tzinfo=UTC)


def start_of(store: ProjectStore, since: str | None) -> int:
    """The change number a feed request starts after. Blocking for a time (the store is asked)."""
    if since is None or since == "":
        return 0
    if since.isascii() and since.isdigit():
        if len(since) > 18:
            raise InvalidInput.about("since", "not a cursor this service gave")
        return int(since)
    return store.seq_before(_time(since))


def _page(store: ProjectStore, since: str | None, limit: int) -> tuple[int, list[Any]]:
    start = start_of(store, since)
    return start, store.changes(start, limit + 1)  # one more: says whether there are more


@router.get(PATH, summary="The changes feed",
            responses={200: {"description": "The changes after `since`, oldest first: creations, updates, "
                                            "status changes, deletions and restores, each with the project "
                                            "after it (none for a deletion). Pass `cursor` back as `since` "
                                            "for what follows; `more` says whether to ask again at once.",
                             "content": {"application/json": {"schema": FEED_SCHEMA, "example": EXAMPLE}}},
                       **problem_responses(400, 503)})
async def changes(request: Request, catalogue: CatalogueDep, since: Since = None,
                  limit: Limit = DEFAULT_LIMIT) -> JSONResponse:
    """Creations, updates, status changes, deletions and restores of projects, in order, with a cursor."""
    start, found = await run_in_threadpool(_page, catalogue.store, since, limit)
    more = len(found) > limit
    found = found[:limit]
    cursor = str(found[-1].seq if found else start)
    base = base_url(request)
    items = f"{base}{ITEMS}"
    self_query = urlencode({k: v for k, v in (("since", since), ("limit", limit)) if v is not None})
    links = [{"href": f"{base}{PATH}?{self_query}", "rel": "self", "type": "application/json",
              "title": "This page of changes"}]
    if more:
        links.append({"href": f"{base}{PATH}?{urlencode({'since': cursor, 'limit': limit})}", "rel": "next",
                      "type": "application/json", "title": "The changes that follow"})
    return JSONResponse({"changes": [feed_entry(c, items) for c in found], "cursor": cursor, "more": more,
                         "links": links}, headers={"Cache-Control": "no-store"})
