"""Whole-layer downloads at /layers/{id}.{format}, filtered like the items, in any supported CRS
(`crs`, as on the items; KML only in CRS84), with a `Content-Crs` header as the items have."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Send

from geo.catalogue import Collection
from geo.crs import DEFAULT, Crs, CrsParam
from geo.crs import parse as parse_crs
from geo.errors import NotFound
from geo.formats import FORMATS, MEDIA_TYPES, Format, Selection, open_download
from geo.formats.slots import ExportSlots
from geo.http.conditional import make_etag, not_modified, validators
from geo.http.head import is_head
from geo.openapi import problem_responses
from geo.query.featuretable import FeatureTable
from geo.query.params import Filters, filters_dependency
from geo.routers.deps import CatalogueDep, SettingsDep

router = APIRouter(tags=["Downloads"])
log = logging.getLogger(__name__)

# Filters whose values would make a file name long or unreadable: named, not spelt out.
_NAMED_ONLY = ("bbox", "bbox-crs", "filter")
_NAME_LIMIT = 120


def download_name(layer: str, filters: Filters, extension: str, crs: Crs = DEFAULT) -> str:
    """A clear file name: layer, filter values, CRS (when not CRS84) and date, e.g.
    projects_status-proposed_EPSG-32642_2026-11-29.gpkg."""
    parts = [layer] + [f"{k}-{v}" for k, v in sorted(filters.raw.items()) if k not in _NAMED_ONLY]
    parts += [k for k in _NAMED_ONLY if k in filters.raw]
    parts += [] if crs.is_default else [crs.label]
    safe = "_".join(parts).replace(",", "+").replace("/", "--")
    # ASCII only: a header value must be Latin-1, and some tools mangle anything else.
    safe = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_+." else "-" for ch in safe)
    return f"{safe[:_NAME_LIMIT]}_{datetime.now(UTC):%Y-%m-%d}.{extension}"


# uvicorn stops taking writes past 64 kB buffered; slices of 128 kB keep what waits for a slow client
# near that mark (a GeoJSON chunk of 1,000 features can be megabytes), and are just large enough for
# Starlette's gzip to compress them in a worker thread rather than on the event loop.
SLICE = 128 * 1024


def _sliced(chunks: Iterator[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        if len(chunk) <= SLICE:
            yield chunk
        else:
            yield from (chunk[start:start + SLICE] for start in range(0, len(chunk), SLICE))


class _Stalled(Exception):
    """The client stopped reading the download."""


class DownloadStream(StreamingResponse):
    """A streamed download that gives up on a client that has read nothing for `stall_s` seconds.

    Each chunk is made in a worker thread and sent from the event loop, so a client that stops
    reading holds no thread. Chunks go out in slices of at most SLICE bytes: the server waits for the
    client before each, so a stalled client holds at most about two slices of the server's memory;
    after `stall_s` the response is abandoned and the server closes the connection.
    """

    def __init__(self, chunks: Iterator[bytes], *, stall_s: float, media_type: str,
                 headers: dict[str, str]) -> None:
        super().__init__(_sliced(chunks), media_type=media_type, headers=headers)
        self.stall_s = stall_s

    async def stream_response(self, send: Send) -> None:
        """Stream as StreamingResponse does; on a stall, stop (the server then closes the connection)."""

        async def within_deadline(message: Message) -> None:
            with anyio.move_on_after(self.stall_s) as waiting:
                await send(message)
            if waiting.cancelled_caught:
                raise _Stalled

        try:
            await super().stream_response(within_deadline)
        except _Stalled:
            log.warning("closed a download the client had not read for %g s", self.stall_s)


def _head(fmt: Format, sel: Selection, headers: dict[str, str]) -> Response:
    """HEAD of a download from metadata: same validators, type and name as the GET, nothing built.

    The length is given when it is known without building the file (GeoJSON, GeoJSONSeq).
    """
    if fmt.size is not None:
        headers = {**headers, "Content-Length": str(fmt.size(sel))}
    # One empty chunk "with more to come": gzip then decides (and tags) as it does for the GET.
    return StreamingResponse(iter([b""]), media_type=fmt.media_type, headers=headers)


def _select(coll: Collection, table: FeatureTable, filters: Filters, bom: bool, crs: Crs) -> Selection:
    return Selection(coll.id, table, coll.select(table, filters), bom=bom, crs=crs)


@router.get("/layers/{name}", summary="Download a whole layer", response_class=Response, responses={
    200: {"description": "The layer as a file.", "content": {m: {} for m in MEDIA_TYPES.values()}},
    **problem_responses(304, 400, 404, 503),
})
async def download(
    request: Request,
    catalogue: CatalogueDep,
    settings: SettingsDep,
    name: Annotated[str, PathParam(description="`{layer}.{format}`, e.g. `projects.gpkg`; formats: "
                                               + ", ".join(FORMATS) + ".")],
    filters: Annotated[Filters, Depends(filters_dependency)],
    bom: Annotated[bool, Query(description="CSV only: start with a UTF-8 byte-order mark, so that "
                                           "Excel reads Dari and Pashto correctly.")] = False,
    crs: CrsParam = None,
) -> Response:
    """The layer as a file, with the same filters as items; streamed, with ETag and Last-Modified.

    CSV, KML, GeoPackage, FlatGeobuf, GeoParquet and Shapefile are built a few at a time (503 with
    Retry-After when all slots stay busy), and so is any format in another CRS than CRS84; HEAD
    answers from metadata without building anything.
    """
    layer, _, extension = name.partition(".")
    fmt = FORMATS.get(extension)
    if fmt is None:
        raise NotFound(f"Unknown format {extension!r}; the formats are {', '.join(FORMATS)}.")
    target = parse_crs(crs)
    fmt.check_crs(target)
    coll = catalogue.get(layer)
    table = coll.table()
    bom = bom and extension == "csv"
    # The table version, the filters and the format identify the bytes (the date in the name does not).
    etag = make_etag("download", layer, table.version, extension, sorted(filters.raw.items()), bom,
                     *([] if target.is_default else [target.uri]))
    modified = table.modified
    cached = not_modified(request, etag, modified)
    if cached is not None:
        return cached
    headers = validators(etag, modified)
    headers["Content-Disposition"] = (
        f'attachment; filename="{download_name(layer, filters, extension, target)}"')
    headers["Content-Crs"] = target.header
    # Selecting is cheap (the table is in memory) and gives HEAD the GET's very answers, 400s included;
    # building the file is what costs, and HEAD never does it.
    sel = await run_in_threadpool(_select, coll, table, filters, bom, target)
    if is_head(request):
        return _head(fmt, sel, headers)
    slots: ExportSlots = request.app.state.export_slots
    if fmt.costs(target):
        async with slots.slot():
            chunks, size = await run_in_threadpool(open_download, fmt, sel)
    else:
        chunks, size = await run_in_threadpool(open_download, fmt, sel)
    if size is not None:
        headers["Content-Length"] = str(size)
    return DownloadStream(chunks, stall_s=settings.stall_timeout_s, media_type=fmt.media_type,
                          headers=headers)
