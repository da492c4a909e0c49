"""The web map at /map: a small page; the browser fetches the data from the API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from geo.auth import writes_configured
from geo.formats import MEDIA_TYPES
from geo.http.conditional import make_etag, not_modified
from geo.http.securityheaders import page_policy
from geo.lru import PageCache
from geo.query.params import Filters, filters_dependency
from geo.routers.deps import CatalogueDep, SettingsDep
from geo.web import assets
from geo.web.page import MapOptions, render_page

router = APIRouter(tags=["Map"])
# Besides the projects' filters, which the page shows as controls, what it does not pass on to the API
# it calls: `properties` would strip the cards. Other item parameters (bbox, datetime, CQL2 filter, ...)
# pass through as given.
NOT_PASSED_ON = ("properties",)


@router.get("/map", response_class=HTMLResponse, summary="The web map")
def web_map(request: Request, catalogue: CatalogueDep, settings: SettingsDep,
            filters: Annotated[Filters, Depends(filters_dependency)]) -> Response:
    """The Folium web map; `status`, `category`, `province`, `bbox` and `datetime` filter the projects.

    It takes the filters of the items, queryables included; other parameters are ignored.

    The page holds no features: its script fetches them from the items and /stats, with these filters.
    """
    projects = catalogue.get("projects")
    table = projects.table()
    # A page a person opens from a link: parameters that are neither filters nor queryables (utm_source,
    # fbclid, ...) are dropped, not refused, and not passed on to the API the page calls. The names of
    # every collection's queryables (the projects' among them) are looked up only when there are any.
    if filters.params:
        filters = filters.keeping(catalogue.parameter_names())
    # Checked as the items check them (an unknown status or category is a 400); nothing is selected.
    projects.check(filters, table)
    formats = tuple(MEDIA_TYPES)
    # assets.version(): the page links its scripts and styles by content hash, so it changes with them.
    # The editor is offered only where writes are possible (a key configured and readable): a read-only
    # service shows no "Edit" button that could never work.
    editing = writes_configured(settings)
    key = ("map", settings.map_tiles, settings.map_tiles_attribution, settings.max_limit, formats, editing,
           settings.map_tiled_above, assets.version(), tuple(sorted(filters.raw.items())))
    etag = make_etag(*key)
    answer = not_modified(request, etag)
    if answer is not None:
        return answer
    cache: PageCache = request.app.state.map_cache
    page = cache.get(key)
    if page is None:
        options = MapOptions(tiles=settings.map_tiles, tiles_attribution=settings.map_tiles_attribution,
                             filters=filters.equals,
                             query={k: v for k, v in filters.raw.items()
                                    if k not in projects.filters and k not in NOT_PASSED_ON},
                             formats=formats, limit=settings.max_limit, editing=editing,
                             tiled_above=settings.map_tiled_above)
        page = render_page(options)
        cache.put(key, page)
    return HTMLResponse(page, headers={"ETag": etag, "Cache-Control": "no-cache",
                                       "Content-Security-Policy": page_policy(page, settings.map_tiles)})
