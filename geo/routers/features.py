"""OGC API - Features, Parts 1 and 3: landing page, conformance, collections, items (the queryables
are with the schema and sortables, in geo/routers/schemas.py).

Every GET here answers JSON (GeoJSON for features) or HTML (`?f=html`, or a browser's Accept), and
carries validators: a conditional GET whose copy is current gets a 304 before any work is done.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote, unquote_plus, urlencode

import orjson
import shapely
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response

from geo import html, stats
from geo.catalogue import Catalogue, Collection, Page
from geo.crs import CONTENT_CRS_HEADER, URIS, CrsParam, feature_bytes, features_page, to_crs
from geo.crs import parse as parse_crs
from geo.errors import LayerUnavailable, NotFound
from geo.formats import MEDIA_TYPES
from geo.http.conditional import feature_etag, make_etag, not_modified, validators
from geo.openapi import problem_responses
from geo.query.featuretable import FeatureTable
from geo.query.params import CRS84, Filters, LimitParam, OffsetParam, filters_dependency, single_valued
from geo.responses import GEOJSON, OPENAPI, GeoJSONResponse, JSONResponse
from geo.routers.changes import CHANGES_REL
from geo.routers.deps import CatalogueDep, CollectionDep, base_url
from geo.routers.direct import direct_get
from geo.routers.lifecycle import history_link, missing_here
from geo.routers.tiles import CONFORMANCE as TILES_CONFORMANCE
from geo.routers.tiles import TILESETS_REL, TILING_SCHEMES_REL
from geo.routers.workflow import link as workflow_link
from geo.spatial import AFGHANISTAN_BBOX

OGC = "http://www.opengis.net/spec"
# Every class listed here passes its requirements, one test per id, in tests/test_conformance.py (its table,
# tests/conformance_table.py, says where each id comes from); nothing else is claimed.
CONFORMANCE = [
    f"{OGC}/ogcapi-features-1/1.0/conf/core",
    f"{OGC}/ogcapi-features-1/1.0/conf/geojson",
    f"{OGC}/ogcapi-features-1/1.0/conf/html",
    f"{OGC}/ogcapi-features-1/1.0/conf/oas30",
    f"{OGC}/ogcapi-features-2/1.0/conf/crs",
    f"{OGC}/ogcapi-features-3/1.0/conf/filter",
    f"{OGC}/ogcapi-features-3/1.0/conf/features-filter",
    f"{OGC}/ogcapi-features-3/1.0/conf/queryables",
    f"{OGC}/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    f"{OGC}/cql2/1.0/conf/cql2-text",
    f"{OGC}/cql2/1.0/conf/cql2-json",
    f"{OGC}/cql2/1.0/conf/basic-cql2",
    f"{OGC}/cql2/1.0/conf/advanced-comparison-operators",
    f"{OGC}/cql2/1.0/conf/basic-spatial-functions",
    f"{OGC}/cql2/1.0/conf/basic-spatial-functions-plus",
    f"{OGC}/cql2/1.0/conf/spatial-functions",
    f"{OGC}/cql2/1.0/conf/property-property",
    f"{OGC}/cql2/1.0/conf/arithmetic",
    f"{OGC}/ogcapi-features-4/1.0/conf/create-replace-delete",
    f"{OGC}/ogcapi-features-4/1.0/conf/update",
    f"{OGC}/ogcapi-features-4/1.0/conf/optimistic-locking-etags",
    # Part 5 (Schemas) names the classes of OGC API - Common - Part 3.
    f"{OGC}/ogcapi-common-3/1.0/conf/schemas",
    f"{OGC}/ogcapi-common-3/1.0/conf/returnables-and-receivables",
    f"{OGC}/ogcapi-common-3/1.0/conf/sortables",
    # OGC API - Tiles 1.0: core, tileset, tilesets-list, geodata-tilesets, mvt (geo/routers/tiles.py).
    *TILES_CONFORMANCE,
]
# Not claimed: ogcapi-features-4 `features` (with returnables-and-receivables in force it requires a JSON
# merge patch over the schema's view of a feature, which PATCH refuses); tests/test_conformance.py runs its
# tests as expected failures.
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
SCHEMA_REL = "http://www.opengis.net/def/rel/ogc/1.0/schema"
SORTABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/sortables"
SCHEMA_JSON = "application/schema+json"

FormatParam = Annotated[str | None, Query(
    pattern="^(json|html)$", description="`json` or `html`; by default chosen from Accept.")]

# No parameter may come twice (FastAPI would silently keep the last one).
router = APIRouter(tags=["OGC API - Features"], dependencies=[Depends(single_valued)])

HTML_OR_JSON: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"schema": {"type": "object"}},
                      "text/html": {"schema": {"type": "string"}}}}}
FEATURES_SCHEMA = {"$ref": "#/components/schemas/FeatureCollection"}


def _answer(request: Request, etag: str, last_modified: datetime | None, make: Any) -> Response:
    """A 304 when the client's copy is current; otherwise `make()`, with the validators attached."""
    cached = not_modified(request, etag, last_modified)
    if cached is not None:
        cached.headers["Vary"] = "Accept"
        return cached
    response: Response = make()
    response.headers.update(validators(etag, last_modified))
    response.headers["Vary"] = "Accept"
    return response


# The service root per (scheme, server, Host, root path), the four things base_url reads from the
# scope: it builds a URL from a copy of the scope, a few microseconds on every page. Bounded, because
# the Host header is the client's to choose.
_ROOTS: dict[tuple[Any, ...], str] = {}
_MAX_ROOTS = 256


def _service_root(request: Request) -> str:
    """base_url(request), kept per what it depends on."""
    scope = request.scope
    host = next((value for name, value in scope["headers"] if name == b"host"), None)
    server = scope.get("server")
    key = (scope.get("scheme", "http"), None if server is None else tuple(server), host,
           scope.get("app_root_path", scope.get("root_path", "")))
    root = _ROOTS.get(key)
    if root is None:
        if len(_ROOTS) >= _MAX_ROOTS:
            _ROOTS.clear()
        root = _ROOTS[key] = base_url(request)
    return root


def _alternate(href: str) -> dict[str, str]:
    return {"href": f"{href}?f=html", "rel": "alternate", "type": "text/html", "title": "This page as HTML"}


# A query of name=value pairs made only of characters that neither decoding nor quote_plus changes:
# urlencode(parse_qsl(query)) is the query itself, so its pairs can be kept as they are.
_PLAIN_PAIRS = re.compile(r"[A-Za-z0-9_.~-]+=[A-Za-z0-9_.~-]*(?:&[A-Za-z0-9_.~-]+=[A-Za-z0-9_.~-]*)*")


def _as_format(request: Request, base: str, fmt: str) -> str:
    """This request's URL, under the service root `base`, with `f=fmt` (the other parameters kept, in
    their order)."""
    url = request.url
    query = url.query
    if "f=" not in query:
        # No `f` to replace (every item page without one): the query as sent, without re-encoding it.
        return f"{base}{url.path}?{query}{'&' if query else ''}f={fmt}"
    if _PLAIN_PAIRS.fullmatch(query):
        # What the general case below gives for such a query, without decoding and re-encoding it.
        kept = [pair for pair in query.split("&") if not pair.startswith("f=")]
        return f"{base}{url.path}?{'&'.join([*kept, f'f={fmt}'])}"
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "f"] + [("f", fmt)]
    return f"{base}{url.path}?{urlencode(params)}"


def _self_and_alternate(request: Request, base: str, as_html: bool, title: str) -> list[dict[str, str]]:
    """`self` in the format answered and `alternate` in the other (/req/core/fc-links A, html/content);
    `base` is the service root (base_url: computed once per request, it parses the URL)."""
    here = {"href": str(request.url), "rel": "self", "type": "text/html" if as_html else GEOJSON,
            "title": title}
    if as_html:
        other = {"href": _as_format(request, base, "json"), "rel": "alternate", "type": GEOJSON,
                 "title": f"{title} as GeoJSON"}
    else:
        other = {"href": _as_format(request, base, "html"), "rel": "alternate", "type": "text/html",
                 "title": f"{title} as HTML"}
    return [here, other]


def _without_paging(query: str) -> str:
    """The query as sent, without its `offset` and `limit` (each pair kept as the client encoded it)."""
    kept = []
    for pair in query.split("&"):
        name = pair.partition("=")[0]
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if pair and name not in ("offset", "limit"):
            kept.append(pair)
    return "&".join(kept)


def _page_links(request: Request, base: str, page: Page, media: str) -> list[dict[str, Any]]:
    """`next`/`prev` links: this request's other parameters with the page's offsets and limit."""
    pages = [(rel, offset) for rel, offset in (("next", page.next_offset), ("prev", page.prev_offset))
             if offset is not None]
    if not pages:
        return []
    others = _without_paging(request.url.query)
    prefix = f"{base}{request.url.path}?" + (others + "&" if others else "")
    return [{"href": f"{prefix}offset={offset}&limit={page.limit}", "rel": rel, "type": media,
             "title": f"{rel} page"} for rel, offset in pages]


ITEMS_PATH = "/collections/{collection_id}/items"


def add_items_route(app: FastAPI) -> None:
    """Put the items route on the app's own router, ahead of the included routers (call it before
    including them). The busiest request: FastAPI tries the routes in order, and a route of an included
    router is matched twice per request (the app's routes, then the router's), which cost a page about
    10 us. The route declares this router's tags and dependencies itself. A DirectRoute: FastAPI's
    declarations (the OpenAPI document, every 400), answered without FastAPI's per-request parameter
    resolution (geo/routers/direct.py)."""
    direct_get(app.router, ITEMS_PATH, summary="Features of a collection", tags=list(router.tags),
               dependencies=list(router.dependencies), response_class=GeoJSONResponse,
               responses={200: {"headers": CONTENT_CRS_HEADER,
                                "content": {GEOJSON: {"schema": FEATURES_SCHEMA},
                                            "text/html": {"schema": {"type": "string"}}}},
                          **problem_responses(304, 400, 404, 503)})(items)


async def items(
    request: Request,
    coll: CollectionDep,
    filters: Annotated[Filters, Depends(filters_dependency)],
    limit: LimitParam = None,
    offset: OffsetParam = 0,
    f: FormatParam = None,
    crs: CrsParam = None,
) -> Response:
    """A page of features, filtered and sorted, with numberMatched and next/prev links.

    Every queryable of the collection (`/collections/{id}/queryables`) is a query parameter too:
    `?name=value` keeps the features whose property equals the value, read in the queryable's type
    (a number, an RFC 3339 date or date-time); for a queryable with an enumeration a comma-separated
    list keeps any of its values. Any other parameter is refused (400).

    Without `sortby` features come in the order they were added; new ones go to the end, so a
    client paging with `next` neither repeats nor misses a feature while others add projects.
    """
    target = parse_crs(crs)
    table = coll.table()
    as_html = html.wants_html(request, f)
    base = _service_root(request)
    etag = make_etag("items", table.version, base, str(request.url), as_html)
    cached = not_modified(request, etag, table.modified)
    if cached is not None:
        return cached
    page = coll.features(table, filters, offset=offset, limit=limit)
    chosen = page.indices
    media = "text/html" if as_html else GEOJSON
    links = [
        *_self_and_alternate(request, base, as_html, "This page"),
        {"href": f"{base}/collections/{coll.id}", "rel": "collection",
         "type": "application/json", "title": coll.title},
        *_page_links(request, base, page, media),
    ]
    headers = {**validators(etag, table.modified), "Content-Crs": target.header, "Vary": "Accept"}
    if as_html:
        features = [table.selected(int(i), filters.properties) if filters.properties is not None
                    else table.features[i] for i in chosen]
        wkts = [None if w is None else str(w)
                for w in shapely.to_wkt(to_crs(table.geometries[chosen], target), rounding_precision=-1)]
        shapes = table.geometries[chosen]
        return html.respond("items.html", headers, **_items_view(request, coll, page, features, wkts, shapes,
                                                                   base, links))
    extra = {"numberMatched": page.matched, "numberReturned": len(chosen), "links": links}
    return GeoJSONResponse(features_page(table, chosen, extra, filters.properties, target), headers=headers)


@router.get("/", summary="Landing page", responses={**HTML_OR_JSON, **problem_responses(304, 400)})
async def landing(request: Request, catalogue: CatalogueDep, f: FormatParam = None) -> Response:
    """The landing page: what this service is and where to go next."""
    base = base_url(request)
    links = [
        {"href": f"{base}/", "rel": "self", "type": "application/json", "title": "This document"},
        _alternate(f"{base}/"),
        {"href": f"{base}/api", "rel": "service-desc", "type": OPENAPI, "title": "The OpenAPI document"},
        {"href": f"{base}/api.html", "rel": "service-doc", "type": "text/html",
         "title": "The API documentation"},
        {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json",
         "title": "Conformance classes"},
        {"href": f"{base}/collections", "rel": "data", "type": "application/json",
         "title": "The collections"},
        {"href": f"{base}/map", "rel": "alternate", "type": "text/html", "title": "The web map"},
        {"href": f"{base}/changes", "rel": CHANGES_REL, "type": "application/json",
         "title": "Every change to the projects, in order, to follow or sync"},
        {"href": f"{base}/tileMatrixSets", "rel": TILING_SCHEMES_REL, "type": "application/json",
         "title": "The tiling schemes of the vector tiles"},
    ]
    title = "Afghanistan infrastructure & project mapper"
    description = ("Provinces, the Salang Pass tunnels and proposed infrastructure projects in "
                   "Afghanistan, served as OGC API - Features and as a web map.")
    if html.wants_html(request, f):
        return html.respond("landing.html", title=title, description=description, base=base, links=links,
                            **_landing_view(catalogue))
    return JSONResponse({"title": title, "description": description, "links": links})


@router.get("/conformance", summary="Conformance classes",
            responses={**HTML_OR_JSON, **problem_responses(400)})
async def conformance(request: Request, f: FormatParam = None) -> Response:
    """The conformance classes this service implements (and tests)."""
    if html.wants_html(request, f):
        base = base_url(request)
        links = [{"href": f"{base}/conformance", "rel": "alternate", "type": "application/json",
                  "title": "This document as JSON"}]
        return html.respond("conformance.html", title="Conformance", base=base, classes=CONFORMANCE,
                            links=links)
    return JSONResponse({"conformsTo": CONFORMANCE})


def _extent(collection: Collection, table: FeatureTable | None) -> dict[str, Any]:
    bbox, start, end = AFGHANISTAN_BBOX, None, None
    if table is not None:
        bbox = table.bounds() or AFGHANISTAN_BBOX
        start, end = table.interval()
    extent: dict[str, Any] = {"spatial": {"bbox": [list(bbox)], "crs": CRS84}}
    if collection.temporal:
        extent["temporal"] = {"interval": [[start, end]],
                              "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}
    return extent


def _table_or_none(collection: Collection) -> FeatureTable | None:
    try:
        return collection.table()
    except LayerUnavailable:
        return None


def queryable_parameters(catalogue: Catalogue) -> list[dict[str, Any]]:
    """The items' query parameters named after queryables (Part 3, /req/queryables-query-parameters/
    parameters A), as OpenAPI 3.0 parameters: one per name, with the queryable's schema (a name whose
    schema differs between collections is declared a string; each collection reads it in its own type).
    A collection whose data cannot be had now is left out."""
    found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    examples: dict[str, Any] = {}
    for cid, coll in catalogue.collections.items():
        table = _table_or_none(coll)
        for name, queryable in (coll.parameter_queryables(table) if table is not None else {}).items():
            schema = {k: v for k, v in queryable.schema().items() if k != "title"}
            found.setdefault(name, []).append((cid, schema))
            if name not in examples and table is not None and (value := _held(table, name)) is not None:
                examples[name] = value
    out = []
    for name, entries in found.items():
        schemas = [schema for _, schema in entries]
        schema = schemas[0] if all(s == schemas[0] for s in schemas) else {"type": "string"}
        listed = " (comma-separated: any of them)" if "enum" in schema else ""
        parameter = {
            "name": name, "in": "query", "required": False, "style": "form", "explode": False,
            "schema": schema,
            "description": f"Only the features whose `{name}` equals this value{listed}: a queryable of "
                           f"{', '.join(cid for cid, _ in entries)} (see `/collections/{{id}}/queryables`); "
                           "in other collections no feature matches it."}
        example = examples.get(name, _SAMPLES.get(schema.get("format") or schema["type"]))
        if "enum" in schema and example not in schema["enum"]:
            example = schema["enum"][0]
        parameter["example"] = str(example) if schema["type"] == "string" else example
        out.append(parameter)
    return out


# An example of each kind, for a queryable that no feature holds a value of yet.
_SAMPLES: dict[str, Any] = {"string": "x", "number": 0, "integer": 0, "boolean": True, "date": "2024-01-01",
                            "date-time": "2024-01-01T00:00:00Z"}


def _held(table: FeatureTable, name: str) -> Any:
    """A value that some feature of `table` holds for `name` (its id for `id`), or None."""
    if name == "id":
        return table.ids[0] if len(table) else None
    return next((v for f in table.features if (v := f["properties"].get(name)) is not None), None)


def collection_doc(collection: Collection, base: str, table: FeatureTable | None = None,
                   nested: bool = False) -> dict[str, Any]:
    """The metadata document of one collection; `nested` in /collections, whose global `crs` list its
    `crs` then points to (`#/crs`, /req/crs/fc-md-crs-list-global)."""
    href = f"{base}/collections/{collection.id}"
    links = [
        {"href": href, "rel": "self", "type": "application/json", "title": collection.title},
        _alternate(href),
        {"href": f"{href}/items", "rel": "items", "type": GEOJSON, "title": f"{collection.title}: items"},
        {"href": f"{href}/items?f=html", "rel": "items", "type": "text/html",
         "title": f"{collection.title}: items as HTML"},
        {"href": f"{href}/queryables", "rel": QUERYABLES_REL, "type": SCHEMA_JSON,
         "title": f"{collection.title}: queryables"},
        {"href": f"{href}/schema", "rel": SCHEMA_REL, "type": SCHEMA_JSON,
         "title": f"{collection.title}: schema"},
        {"href": f"{href}/sortables", "rel": SORTABLES_REL, "type": SCHEMA_JSON,
         "title": f"{collection.title}: sortables"},
        # OGC API - Tiles: its vector tiles (geo/routers/tiles.py).
        {"href": f"{href}/tiles", "rel": TILESETS_REL, "type": "application/json",
         "title": f"{collection.title}: vector tiles"},
    ]
    if collection.id == "projects":  # the allowed status changes (geo/routers/workflow.py)
        links.append(workflow_link(base))
    links += [
        {"href": f"{base}/layers/{collection.id}.{fmt}", "rel": "enclosure", "type": media,
         "title": f"Download {collection.title} ({fmt})"}
        for fmt, media in MEDIA_TYPES.items()
    ]
    return {
        "id": collection.id, "title": collection.title, "description": collection.description,
        "keywords": list(collection.keywords), "itemType": "feature",
        # Part 2: the CRSs the items can be had in (/req/crs/fc-md-crs-list), and the one they are
        # stored in, served without a transformation (/req/crs/fc-md-storageCrs).
        "crs": ["#/crs"] if nested else list(URIS), "storageCrs": CRS84,
        "extent": _extent(collection, table),
        "license": collection.licence, "attribution": collection.attribution,
        "links": links,
    }


def _tables(catalogue: Catalogue) -> dict[str, FeatureTable | None]:
    return {cid: _table_or_none(c) for cid, c in catalogue.collections.items()}


def _versions(tables: dict[str, FeatureTable | None]) -> tuple[str, ...]:
    return tuple(f"{cid}:{t.version if t is not None else 'unavailable'}" for cid, t in tables.items())


@router.get("/collections", summary="The collections",
            responses={**HTML_OR_JSON, **problem_responses(304, 400)})
async def collections(request: Request, catalogue: CatalogueDep, f: FormatParam = None) -> Response:
    """Every collection with its extent and links."""
    base = base_url(request)
    tables = _tables(catalogue)
    as_html = html.wants_html(request, f)
    etag = make_etag("collections", base, as_html, _versions(tables))

    def make() -> Response:
        docs = [collection_doc(c, base, tables[cid], nested=True) for cid, c in catalogue.collections.items()]
        links = [{"href": f"{base}/collections", "rel": "self", "type": "application/json",
                  "title": "The collections"}, _alternate(f"{base}/collections")]
        if as_html:
            views = [_collection_view(doc, tables[doc["id"]]) for doc in docs]
            return html.respond("collections.html", title="Collections", base=base, links=links,
                                collections=views, formats=list(MEDIA_TYPES))
        return JSONResponse({
            "links": links,
            "crs": list(URIS),
            "collections": docs,
        })
    return _answer(request, etag, None, make)


@router.get("/collections/{collection_id}", summary="One collection",
            responses={**HTML_OR_JSON, **problem_responses(304, 400, 404)})
async def collection(request: Request, coll: CollectionDep, f: FormatParam = None) -> Response:
    """One collection's metadata."""
    base = base_url(request)
    table = _table_or_none(coll)
    as_html = html.wants_html(request, f)
    version = table.version if table is not None else "unavailable"
    etag = make_etag("collection", coll.id, base, as_html, version)

    def make() -> Response:
        doc = collection_doc(coll, base, table)
        if as_html:
            view = _collection_view(doc, table)
            queryables = coll.queryables_of(table) if table is not None else ()
            return html.respond("collection.html", title=coll.title, base=base, c=view, links=doc["links"],
                                queryables=queryables, formats=list(MEDIA_TYPES),
                                map_data=html.map_data([], doc["extent"]["spatial"]["bbox"][0],
                                                       _outlines(request)))
        return JSONResponse(doc)
    return _answer(request, etag, None if table is None else table.modified, make)


@router.get("/collections/{collection_id}/items/{feature_id}", summary="One feature",
            response_class=GeoJSONResponse,
            responses={200: {"description": "The feature; its `ETag` is what `If-Match` takes on writes.",
                             "headers": CONTENT_CRS_HEADER,
                             "content": {GEOJSON: {"schema": {"$ref": "#/components/schemas/Feature"}},
                                         "text/html": {"schema": {"type": "string"}}}},
                       **problem_responses(304, 400, 404, 503)})
async def item(request: Request, coll: CollectionDep, feature_id: str, f: FormatParam = None,
               crs: CrsParam = None) -> Response:
    """One feature by id, or a 404 problem."""
    target = parse_crs(crs)
    table = coll.table()
    index = table.position.get(feature_id)
    if index is None:
        raise await missing_here(request, coll.id, feature_id)  # 404, or 410 for a deleted project
    as_html = html.wants_html(request, f)
    # The ETag is the feature's content: a write to another feature does not change it.
    etag = feature_etag(table.encoded[index])
    if as_html:
        etag = make_etag(etag, "html")
    if not target.is_default:
        etag = make_etag(etag, target.uri)
    base = base_url(request)
    href = f"{base}/collections/{coll.id}"
    links = [{"href": f"{href}/items/{feature_id}", "rel": "self", "type": GEOJSON, "title": "This feature"},
             _alternate(f"{href}/items/{feature_id}"),
             {"href": href, "rel": "collection", "type": "application/json", "title": coll.title}]
    if coll.id == "projects":
        links.append(history_link(base, feature_id))

    def make() -> Response:
        if as_html:
            feature = table.features[index]
            shape = to_crs(table.geometries[[index]], target)[0]
            wkt = None if shape is None else str(shapely.to_wkt(shape, rounding_precision=-1))
            page_links = [*_self_and_alternate(request, base, True, "This feature"), *links[2:]]
            view = _item_view(request, coll, feature, table.geometries[[index]], wkt, base, page_links)
            return html.respond("item.html", **view)
        # Splice the links into the cached encoding rather than re-serialising the feature.
        body = feature_bytes(table, index, target)[:-1] + b',"links":' + JSONResponse(links).body + b"}"
        return GeoJSONResponse(body, headers={"Content-Crs": target.header})
    return _answer(request, etag, table.modified, make)



# ---------------------------------------------------------------- the HTML views' contents

# The page sizes the items page offers (and the current one, when it is another).
PAGE_SIZES = (10, 25, 50, 100, 500)


def _titles(coll: Collection) -> dict[str, str]:
    """Property name -> title, from the collection's declared schema (none for inferred ones)."""
    return {p.name: p.title for p in coll.schema.properties if p.title} if coll.schema is not None else {}


def _geojson(geometries: Any) -> list[Any]:
    """CRS84 shapes as GeoJSON geometries (None stays None), for the page's map."""
    return [None if g is None else orjson.loads(g) for g in shapely.to_geojson(geometries)]


def _for_display(shapes: Any) -> Any:
    """Shapes for a page's small map: about 100 m of detail (0.001 degrees), which the map cannot show
    finer at the zoom a page of features is framed at; it halves the provinces' page. The table's WKT
    keeps every vertex."""
    return shapely.set_precision(shapely.simplify(shapes, 0.001, preserve_topology=True), 1e-5)


def _outlines(request: Request) -> list[Any]:
    """The provinces' outlines, simplified to about 23 kB (kept per version of the layer), drawn under
    the pages' maps in place of a basemap; none when the layer is unavailable."""
    try:
        table = request.app.state.catalogue.get("provinces").table()
    except (LayerUnavailable, NotFound):
        return []

    def simplified() -> list[Any]:
        # 0.02 degrees (about 2 km) is finer than a page's map shows the whole country at.
        shapes = shapely.simplify(table.geometries, 0.02, preserve_topology=True)
        return _geojson(shapely.set_precision(shapes, 0.001))
    outlines: list[Any] = table.derived("html outlines", simplified)
    return outlines


def _selects(request: Request, coll: Collection) -> list[dict[str, Any]]:
    """The filter form's drop-downs: one per filter field of the schema, with its vocabulary."""
    if coll.schema is None:
        return []
    out = []
    for prop in coll.schema.filters():
        if prop.filterable is not None and prop.filterable.values_of == "provinces":
            names = request.app.state.catalogue.province_names()
            options = [{"value": code, "label": f"{name} ({code})"}
                       for code, name in sorted(names.items(), key=lambda kv: kv[1])]
        else:
            options = [{"value": v, "label": v.replace("_", " ").capitalize()} for v in prop.enum]
        current = request.query_params.get(prop.name, "")
        if current and current not in {o["value"] for o in options}:
            options.insert(0, {"value": current, "label": current})  # a list (a,b) as it was asked
        out.append({"name": prop.name, "label": prop.title or prop.name, "options": options,
                    "current": current})
    return out


def _items_view(request: Request, coll: Collection, page: Page, features: list[dict[str, Any]],
                wkts: list[str | None], shapes: Any, base: str,
                links: list[dict[str, Any]]) -> dict[str, Any]:
    """What items.html shows: the map, the filter form, the paging links and the table."""
    path = f"{base}{request.url.path}"
    titles = _titles(coll)
    names: list[str] = []
    for feature in features:
        names += [key for key in feature["properties"] if key not in names]
    hrefs = [f"{path}/{quote(str(f['id']), safe='')}?f=html" for f in features]
    rows = [{"id": f["id"], "href": link, "wkt": wkt, "geometry_type": (f.get("geometry") or {}).get("type"),
             "cells": [html.field(n, f["properties"].get(n)) for n in names]}
            for f, wkt, link in zip(features, wkts, hrefs, strict=True)]
    selects = _selects(request, coll)
    in_form = {"f", "offset", "limit", "bbox", *(s["name"] for s in selects)}
    others = _without_paging(request.url.query)
    prefix = f"{path}?" + (others + "&" if others else "")
    by_rel = {ln["rel"]: ln["href"] for ln in links}
    sizes = sorted({*PAGE_SIZES, page.limit})
    map_features = [html.map_feature(f["id"], g, f["properties"], link)
                    for f, g, link in zip(features, _geojson(_for_display(shapes)), hrefs, strict=True)]
    return {
        "title": f"{coll.title}: items", "base": base, "coll": coll, "links": links,
        "matched": page.matched, "returned": len(features), "first": page.offset + 1, "limit": page.limit,
        "action": path, "selects": selects, "bbox": request.query_params.get("bbox", ""), "sizes": sizes,
        "hidden": [(k, v) for k, v in request.query_params.multi_items() if k not in in_form],
        "nav": {"first": f"{prefix}offset=0&limit={page.limit}" if page.offset > 0 else None,
                "prev": by_rel.get("prev"), "next": by_rel.get("next")},
        "columns": [{"name": n, "label": html.label(n, titles)} for n in names], "rows": rows,
        # The provinces' own page draws the provinces: no outlines under them.
        "map_data": html.map_data(map_features,
                                  outlines=None if coll.id == "provinces" else _outlines(request)),
    }


def _landing_view(catalogue: Catalogue) -> dict[str, Any]:
    """What landing.html shows: each layer with its count, projects by status, the latest changes."""
    tables = _tables(catalogue)
    layers = [{"id": cid, "title": c.title, "description": c.description,
               "count": None if tables[cid] is None else len(tables[cid] or ())}
              for cid, c in catalogue.collections.items()]
    projects = tables.get("projects")
    statuses: list[dict[str, Any]] = []
    latest: list[dict[str, Any]] = []
    if projects is not None:
        figures, _ = stats.collect(catalogue, Filters())
        statuses = [{"status": name, "count": f["count"]} for name, f in figures["by_status"].items()]
        table = projects

        def newest() -> list[dict[str, Any]]:
            # The most recently changed first: ISO 8601 UTC timestamps sort as text. Kept per version:
            # this decodes every project.
            order = sorted(range(len(table)), reverse=True,
                           key=lambda i: str(table.features[i]["properties"].get("updated_at") or ""))
            return [{"id": table.ids[i], **table.features[i]["properties"]} for i in order[:5]]
        latest = projects.derived("html latest", newest)
    return {"layers": layers, "statuses": statuses, "latest": latest, "formats": list(MEDIA_TYPES)}


def _collection_view(doc: dict[str, Any], table: FeatureTable | None) -> dict[str, Any]:
    """One collection's facts for collections.html and collection.html."""
    west, south, east, north = doc["extent"]["spatial"]["bbox"][0]
    interval = doc["extent"].get("temporal", {}).get("interval", [[None, None]])[0]
    modified = table.modified.isoformat() if table is not None and table.modified is not None else None
    return {"doc": doc, "count": None if table is None else len(table), "modified": modified,
            "extent_text": f"{west:.4f}° to {east:.4f}° east, {south:.4f}° to {north:.4f}° north",
            "interval": " to ".join(html.date_text(v) if v else "open" for v in interval)
                        if any(interval) else ""}


def _item_view(request: Request, coll: Collection, feature: dict[str, Any], shapes: Any, wkt: str | None,
               base: str, links: list[dict[str, Any]]) -> dict[str, Any]:
    """What item.html shows: the map, every field by label, the alternative names, the downloads."""
    props = feature["properties"]
    fid = str(feature["id"])
    href = f"{base}/collections/{coll.id}/items/{quote(fid, safe='')}"
    fields = html.fields(props, _titles(coll))
    return {
        "title": str(props.get("name") or fid), "base": base, "coll": coll, "links": links,
        "fields": fields, "names": [f for f in fields if f["kind"] == "rtl"], "wkt": wkt,
        "geometry_type": (feature.get("geometry") or {}).get("type"), "formats": list(MEDIA_TYPES),
        "json_href": f"{href}?f=json", "map_href": f"{base}/map?{urlencode({'focus': fid})}",
        "map_data": html.map_data([html.map_feature(fid, _geojson(shapes)[0], props, f"{href}?f=html")],
                                  outlines=_outlines(request)),
    }
