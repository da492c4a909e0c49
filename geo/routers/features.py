"""OGC API - Features, Part 1 (Core, GeoJSON): landing page, conformance, collections, items."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from geo.catalogue import Collection
from geo.errors import LayerUnavailable, NotFound
from geo.formats import MEDIA_TYPES
from geo.html import link_list, page, wants_html
from geo.query import Filters, filters_dependency
from geo.responses import GEOJSON, OPENAPI, GeoJSONResponse, JSONResponse
from geo.routers.deps import CatalogueDep, CollectionDep, SettingsDep, base_url
from geo.spatial import AFGHANISTAN_BBOX

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]

FormatParam = Annotated[str | None, Query(description="`json` or `html`; by default from Accept.")]

router = APIRouter(tags=["OGC API - Features"])


@router.get("/", summary="Landing page")
def landing(request: Request, f: FormatParam = None) -> Response:
    """The landing page: what this service is and where to go next."""
    base = base_url(request)
    links = [
        {"href": f"{base}/", "rel": "self", "type": "application/json", "title": "This document"},
        {"href": f"{base}/api", "rel": "service-desc", "type": OPENAPI, "title": "The OpenAPI document"},
        {"href": f"{base}/api.html", "rel": "service-doc", "type": "text/html",
         "title": "The API documentation"},
        {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json",
         "title": "Conformance classes"},
        {"href": f"{base}/collections", "rel": "data", "type": "application/json",
         "title": "The collections"},
        {"href": f"{base}/map", "rel": "alternate", "type": "text/html", "title": "The web map"},
    ]
    title = "Afghanistan infrastructure & project mapper"
    description = ("Provinces, the Salang Pass tunnels and proposed infrastructure projects in "
                   "Afghanistan, served as OGC API - Features and as a web map.")
    if wants_html(request, f):
        body = (f"<p>{escape(description)}</p><p><a href=\"{base}/map\">Open the web map</a></p>"
                + link_list(links))
        return HTMLResponse(page(title, body))
    return JSONResponse({"title": title, "description": description, "links": links})


@router.get("/conformance", summary="Conformance classes")
def conformance() -> JSONResponse:
    """The conformance classes this service implements (and tests)."""
    return JSONResponse({"conformsTo": CONFORMANCE})


def _extent(collection: Collection) -> dict[str, Any]:
    try:
        table = collection.table()
        bbox = table.bounds() or AFGHANISTAN_BBOX
        start, end = table.interval()
    except LayerUnavailable:
        bbox, start, end = AFGHANISTAN_BBOX, None, None
    extent: dict[str, Any] = {"spatial": {"bbox": [list(bbox)], "crs": CRS84}}
    if collection.temporal:
        extent["temporal"] = {"interval": [[start, end]],
                              "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}
    return extent


def collection_doc(collection: Collection, base: str) -> dict[str, Any]:
    """The metadata document of one collection."""
    href = f"{base}/collections/{collection.id}"
    links = [
        {"href": href, "rel": "self", "type": "application/json", "title": collection.title},
        {"href": f"{href}/items", "rel": "items", "type": GEOJSON, "title": f"{collection.title}: items"},
    ]
    links += [
        {"href": f"{base}/layers/{collection.id}.{fmt}", "rel": "enclosure", "type": media,
         "title": f"Download {collection.title} ({fmt})"}
        for fmt, media in MEDIA_TYPES.items()
    ]
    return {
        "id": collection.id, "title": collection.title, "description": collection.description,
        "keywords": list(collection.keywords), "itemType": "feature",
        "crs": [CRS84], "storageCrs": CRS84,
        "extent": _extent(collection),
        "license": collection.licence, "attribution": collection.attribution,
        "links": links,
    }


@router.get("/collections", summary="The collections")
def collections(request: Request, catalogue: CatalogueDep) -> JSONResponse:
    """Every collection with its extent and links."""
    base = base_url(request)
    return JSONResponse({
        "links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"}],
        "collections": [collection_doc(c, base) for c in catalogue.collections.values()],
    })


@router.get("/collections/{collection_id}", summary="One collection")
def collection(request: Request, coll: CollectionDep) -> JSONResponse:
    """One collection's metadata."""
    return JSONResponse(collection_doc(coll, base_url(request)))


def _page_link(request: Request, rel: str, offset: int, limit: int) -> dict[str, Any]:
    params = {k: v for k, v in request.query_params.items() if k not in ("offset", "limit")}
    params.update({"offset": str(offset), "limit": str(limit)})
    href = f"{base_url(request)}{request.url.path}?{urlencode(params)}"
    return {"href": href, "rel": rel, "type": GEOJSON, "title": f"{rel} page"}


@router.get("/collections/{collection_id}/items", summary="Features of a collection",
            response_class=GeoJSONResponse)
def items(
    request: Request,
    coll: CollectionDep,
    settings: SettingsDep,
    filters: Annotated[Filters, Depends(filters_dependency)],
    limit: Annotated[int | None, Query(ge=1, description="Features per page (default 10, at most "
                                                         "10,000: larger values are clamped).")] = None,
    offset: Annotated[int, Query(ge=0, description="How many matching features to skip.")] = 0,
) -> GeoJSONResponse:
    """A page of features, filtered, with numberMatched and next/prev links."""
    size = min(limit or settings.default_limit, settings.max_limit)
    table = coll.table()
    matched = coll.select(table, filters)
    chosen = matched[offset:offset + size]
    self_href = str(request.url)
    links = [
        {"href": self_href, "rel": "self", "type": GEOJSON, "title": "This page"},
        {"href": f"{base_url(request)}/collections/{coll.id}", "rel": "collection",
         "type": "application/json", "title": coll.title},
    ]
    if offset + size < len(matched):
        links.append(_page_link(request, "next", offset + size, size))
    if offset > 0:
        links.append(_page_link(request, "prev", max(0, offset - size), size))
    extra = {
        "numberMatched": len(matched),
        "numberReturned": len(chosen),
        "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "links": links,
    }
    return GeoJSONResponse(table.feature_collection(chosen, extra), headers={"Content-Crs": f"<{CRS84}>"})


@router.get("/collections/{collection_id}/items/{feature_id}", summary="One feature",
            response_class=GeoJSONResponse)
def item(request: Request, coll: CollectionDep, feature_id: str) -> GeoJSONResponse:
    """One feature by id, or a 404 problem."""
    table = coll.table()
    index = table.position.get(feature_id)
    if index is None:
        raise NotFound(f"There is no feature {feature_id!r} in {coll.id}.")
    href = f"{base_url(request)}/collections/{coll.id}"
    links = [{"href": f"{href}/items/{feature_id}", "rel": "self", "type": GEOJSON},
             {"href": href, "rel": "collection", "type": "application/json", "title": coll.title}]
    # Splice the links into the cached encoding rather than re-serialising the feature.
    body = table.encoded[index][:-1] + b',"links":' + JSONResponse(links).body + b"}"
    return GeoJSONResponse(body, headers={"Content-Crs": f"<{CRS84}>"})

