"""Assemble the FastAPI application from settings: `create_app(settings)`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from geo import __version__, openapi
from geo.catalogue import Catalogue
from geo.errors import StoreUnavailable
from geo.formats.slots import ExportSlots
from geo.http import problems
from geo.http.compression import Compression
from geo.http.cors import CORSMiddleware
from geo.http.head import HeadAsGet
from geo.http.responsecache import ResponseCache
from geo.http.securityheaders import SecurityHeaders
from geo.lru import PageCache
from geo.ratelimit import WriteRateLimit
from geo.responses import OPENAPI, JSONResponse
from geo.routers import (
    changes,
    downloads,
    features,
    imports,
    lifecycle,
    map,
    schemas,
    static,
    stats,
    tiles,
    transactions,
    workflow,
)
from geo.routers.dispatch import DirectDispatch
from geo.settings import Settings
from geo.store import GeoJSONFileStore, ProjectStore, StoreRefresh
from geo.tiles.responses import TileResponses
from geo.web.apidocs import swagger_page

log = logging.getLogger(__name__)


def open_store(settings: Settings) -> ProjectStore:
    """The project store the settings ask for: PostGIS when GEO_DATABASE_URL is set, else the file.

    Raises StoreUnavailable (the database cannot be reached) or StoreCorrupt: the service won't start."""
    if settings.database_url:
        from geo.store.postgis import PostGISStore  # here: the file store needs no database driver

        try:
            return PostGISStore(settings.database_url, lock_timeout_s=settings.store_lock_timeout_s,
                                pool_max=settings.database_pool_max, poll_s=settings.database_poll_s,
                                connect_timeout_s=settings.database_connect_timeout_s)
        except StoreUnavailable as exc:
            # Name the setting, so the operator knows what to fix (the URL in it is masked).
            raise StoreUnavailable(f"GEO_DATABASE_URL: {exc}") from exc
    return GeoJSONFileStore(settings.projects, lock_timeout_s=settings.store_lock_timeout_s,
                            journal_max_bytes=settings.journal_max_bytes,
                            journal_max_age_s=settings.journal_max_age_s)


def _set_openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    app.openapi_schema = openapi.build(app, settings)
    return app.openapi_schema


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application. Opening a corrupt store raises StoreCorrupt: the service won't start."""
    settings = settings or Settings()
    store = open_store(settings)
    catalogue = Catalogue(settings, store)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        catalogue.warm()
        yield
        store.close()

    app = FastAPI(
        title="Afghanistan infrastructure & project mapper",
        version=__version__,
        description="Provinces, the Salang Pass tunnels and infrastructure projects as OGC API - Features.",
        openapi_url=None, docs_url=None, redoc_url=None,
        default_response_class=JSONResponse,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.catalogue = catalogue
    app.state.map_cache = PageCache(settings.page_cache_entries, settings.page_cache_bytes)
    app.state.export_slots = ExportSlots(settings.max_concurrent_exports, settings.export_wait_s)
    app.state.write_limit = WriteRateLimit(settings.write_rate_per_key)
    problems.install(app, allow_now=transactions.allow_now)  # a 405 lists only what may be done now
    # Built once, in OpenAPI 3.0 (see geo/openapi.py); FastAPI's own `app.openapi` would write 3.1.
    app.openapi = lambda: app.openapi_schema or _set_openapi(app, settings)  # type: ignore[method-assign]
    # Outermost last: CORS, HEAD as GET, then the response cache of item pages (it keeps compressed
    # pages too), then gzip (level 5 trades a little size for much less CPU than the default 9).
    # Innermost: the items, the first route, answered without FastAPI's layers within (the module says
    # what it skips and why the answers are the same).
    app.add_middleware(DirectDispatch, fastapi_app=app)
    app.add_middleware(Compression, minimum_size=1024, level=5)
    # The tiles' own response cache (geo/tiles/responses.py), inside the items' one.
    app.add_middleware(TileResponses, catalogue=catalogue, max_bytes=settings.tile_cache_bytes)
    app.add_middleware(ResponseCache, catalogue=catalogue, max_bytes=settings.response_cache_bytes,
                       max_entries=settings.response_cache_entries)
    # Outside the cache: another process's write is re-read (in a thread) before it looks.
    app.add_middleware(StoreRefresh, store=store)
    app.add_middleware(HeadAsGet)
    app.add_middleware(CORSMiddleware, write_origins=settings.write_origins())
    # Outermost: nosniff and the HTML pages' CSP on every response, problems and preflights too.
    app.add_middleware(SecurityHeaders)

    # The routers first: FastAPI tries routes in order, and the items are the busiest requests (their
    # route on the app's own router, ahead of all: geo.routers.features.add_items_route); the API
    # document after them.
    features.add_items_route(app)
    for module in (features, schemas, transactions, lifecycle, workflow, changes, imports, downloads, map,
                   stats, tiles, static):
        app.include_router(module.router)

    @app.get("/api", include_in_schema=False)
    def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi(), media_type=OPENAPI)

    @app.get("/api.html", include_in_schema=False)
    def openapi_page() -> HTMLResponse:
        return swagger_page(app.title, "/api")  # Swagger UI from /static/vendor, not a CDN

    return app
