"""Whole-layer downloads at /layers/{id}.{format}, filtered like the items."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi.responses import Response

from geo.errors import NotFound
from geo.formats import MEDIA_TYPES
from geo.query import Filters, filters_dependency
from geo.routers.deps import CatalogueDep

router = APIRouter(tags=["Downloads"])


def download_name(layer: str, filters: Filters, extension: str) -> str:
    """A clear file name: layer, filter values and date, e.g. projects_status-proposed_2026-11-29.geojson."""
    parts = [layer] + [f"{k}-{v}" for k, v in sorted(filters.raw.items()) if k != "bbox"]
    if "bbox" in filters.raw:
        parts.append("bbox")
    safe = "_".join(parts).replace(",", "+").replace("/", "--")
    safe = "".join(ch if ch.isalnum() or ch in "-_+." else "-" for ch in safe)
    return f"{safe}_{datetime.now(UTC):%Y-%m-%d}.{extension}"


@router.get("/layers/{name}", summary="Download a whole layer")
def download(
    catalogue: CatalogueDep,
    name: Annotated[str, PathParam(description="`{layer}.{format}`, e.g. `projects.geojson`.")],
    filters: Annotated[Filters, Depends(filters_dependency)],
) -> Response:
    """The layer as a file, with the same filters as items."""
    layer, _, fmt = name.partition(".")
    if fmt not in MEDIA_TYPES:
        raise NotFound(f"Unknown format {fmt!r}; the formats are {', '.join(MEDIA_TYPES)}.")
    coll = catalogue.get(layer)
    table = coll.table()
    chosen = coll.select(table, filters)
    body = table.feature_collection(chosen, {"name": layer})
    disposition = f'attachment; filename="{download_name(layer, filters, fmt)}"'
    return Response(body, media_type=MEDIA_TYPES[fmt], headers={"Content-Disposition": disposition})
