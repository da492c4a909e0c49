"""Whole-layer downloads at /layers/{id}.{format}, filtered like the items."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response, StreamingResponse

from geo.caching import make_etag, not_modified, validators
from geo.errors import NotFound
from geo.formats import FORMATS, MEDIA_TYPES, Selection, open_download
from geo.openapi import problems
from geo.query import Filters, filters_dependency
from geo.routers.deps import CatalogueDep

router = APIRouter(tags=["Downloads"])

# Filters whose values would make a file name long or unreadable: named, not spelt out.
_NAMED_ONLY = ("bbox", "filter")
_NAME_LIMIT = 120


def download_name(layer: str, filters: Filters, extension: str) -> str:
    """A clear file name: layer, filter values and date, e.g. projects_status-proposed_2026-11-29.geojson."""
    parts = [layer] + [f"{k}-{v}" for k, v in sorted(filters.raw.items()) if k not in _NAMED_ONLY]
    parts += [k for k in _NAMED_ONLY if k in filters.raw]
    safe = "_".join(parts).replace(",", "+").replace("/", "--")
    # ASCII only: a header value must be Latin-1, and some tools mangle anything else.
    safe = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_+." else "-" for ch in safe)
    return f"{safe[:_NAME_LIMIT]}_{datetime.now(UTC):%Y-%m-%d}.{extension}"


@router.get("/layers/{name}", summary="Download a whole layer", response_class=Response, responses={
    200: {"description": "The layer as a file.", "content": {m: {} for m in MEDIA_TYPES.values()}},
    **problems(304, 400, 404, 503),
})
def download(
    request: Request,
    catalogue: CatalogueDep,
    name: Annotated[str, PathParam(description="`{layer}.{format}`, e.g. `projects.gpkg`; formats: "
                                               + ", ".join(FORMATS) + ".")],
    filters: Annotated[Filters, Depends(filters_dependency)],
    bom: Annotated[bool, Query(description="CSV only: start with a UTF-8 byte-order mark, so that "
                                           "Excel reads Dari and Pashto correctly.")] = False,
) -> Response:
    """The layer as a file, with the same filters as items; streamed, with ETag and Last-Modified."""
    layer, _, extension = name.partition(".")
    fmt = FORMATS.get(extension)
    if fmt is None:
        raise NotFound(f"Unknown format {extension!r}; the formats are {', '.join(FORMATS)}.")
    coll = catalogue.get(layer)
    table = coll.table()
    chosen = coll.select(table, filters)
    bom = bom and extension == "csv"
    # The table version, the filters and the format identify the bytes (the date in the name does not).
    etag = make_etag("download", layer, table.version, extension, sorted(filters.raw.items()), bom)
    modified = table.modified
    cached = not_modified(request, etag, modified)
    if cached is not None:
        return cached
    chunks, size = open_download(fmt, Selection(layer, table, chosen, bom=bom))
    headers = validators(etag, modified)
    headers["Content-Disposition"] = f'attachment; filename="{download_name(layer, filters, extension)}"'
    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(chunks, media_type=fmt.media_type, headers=headers)
