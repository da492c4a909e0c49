"""The web map at /map, filtered like the items."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from geo.catalogue import Catalogue
from geo.errors import LayerUnavailable
from geo.mapview import render_map
from geo.pagecache import PageCache
from geo.query import Filters, filters_dependency
from geo.routers.deps import CatalogueDep

router = APIRouter(tags=["Map"])


def _layer(catalogue: Catalogue, cid: str) -> tuple[dict[str, Any] | None, str]:
    try:
        table = catalogue.get(cid).table()
    except LayerUnavailable:
        return None, "unavailable"
    return {"type": "FeatureCollection", "features": list(table.features)}, table.version


@router.get("/map", response_class=HTMLResponse, summary="The web map")
def web_map(request: Request, catalogue: CatalogueDep,
            filters: Annotated[Filters, Depends(filters_dependency)]) -> HTMLResponse:
    """The Folium web map; `status`, `category`, `province`, `bbox` and `datetime` filter the projects."""
    projects = catalogue.get("projects")
    table = projects.table()
    chosen = projects.select(table, filters)
    provinces, pv = _layer(catalogue, "provinces")
    salang, sv = _layer(catalogue, "salang")
    cache: PageCache = request.app.state.map_cache
    key = (table.version, pv, sv, tuple(sorted(filters.raw.items())))
    page = cache.get(key)
    if page is None:
        page = render_map(provinces, salang, [table.features[i] for i in chosen], catalogue.province_names())
        cache.put(key, page)
    return HTMLResponse(page)
