"""OGC API - Tiles (1.0): vector tiles (MVT) of every collection on WebMercatorQuad, their tileset
metadata, and the tile matrix set's definition.

Tiles take the items' filters (`status`, `category`, `province`, `datetime`, CQL2 `filter`, queryables)
with the items' semantics. A tile is identified by its ETag (collection version, filters, z/row/col): a
conditional GET of a current copy is a 304, and finished tile responses are kept within
GEO_TILE_CACHE_BYTES (geo/tiles/responses.py). A tile in which no feature lies is a 204 No Content
(OGC API - Tiles allows it for an empty tile; a client then draws nothing without decoding anything).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from geo.errors import InvalidInput, NotFound
from geo.http.conditional import make_etag, not_modified, validators
from geo.openapi import problem_responses
from geo.query.params import Filters, filters_dependency, single_valued
from geo.responses import JSONResponse
from geo.routers.deps import CollectionDep, base_url
from geo.tiles.build import tile_bytes
from geo.tiles.encode import MEDIA_TYPE
from geo.tiles.grid import CRS_3857, MAX_ZOOM, TMS_ID, TMS_URI, Tile, definition

OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0"
TILESETS_REL = f"{OGC_REL}/tilesets-vector"
TILING_SCHEME_REL = f"{OGC_REL}/tiling-scheme"
TILING_SCHEMES_REL = f"{OGC_REL}/tiling-schemes"
# What this router implements of OGC API - Tiles 1.0, listed in /conformance (geo/routers/features.py):
# tests/test_conformance.py checks each requirement of these classes.
CONFORMANCE = [f"http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/{name}"
               for name in ("core", "tileset", "tilesets-list", "geodata-tilesets", "mvt")]

router = APIRouter(tags=["OGC API - Tiles"], dependencies=[Depends(single_valued)])

# The JSON documents' 200, documented as objects (the app's default response class would be documented
# as a string).
JSON_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"schema": {"type": "object"}}}}}


# tileRow and tileCol as OGC API - Tiles documents them (/req/core/tc-tilerow-definition and
# tc-tilecol-definition: integer, minimum 0). They are read as text so that `_integer` answers a bad one
# with a problem naming it; what it accepts is exactly such an integer.
TILE_INDEX: dict[str, Any] = {"type": "integer", "minimum": 0}


def _tms(tile_matrix_set_id: str) -> None:
    if tile_matrix_set_id != TMS_ID:
        raise NotFound.about("tileMatrixSetId", f"{tile_matrix_set_id[:40]!r} is not a tile matrix set here "
                                                f"(only {TMS_ID})")


def _integer(field: str, text: str) -> int:
    """A path segment as an integer, or a 400 problem naming the field."""
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise InvalidInput.about(field, f"{text[:40]!r} is not a non-negative integer")
    return int(text)


@router.get("/tileMatrixSets", summary="The tile matrix sets",
            responses={**JSON_DOC, **problem_responses(400)})
async def tile_matrix_sets(request: Request) -> JSONResponse:
    """The tiling schemes tiles are served in: WebMercatorQuad."""
    href = f"{base_url(request)}/tileMatrixSets/{TMS_ID}"
    return JSONResponse({"tileMatrixSets": [{
        "id": TMS_ID, "title": definition().get("title", TMS_ID), "uri": TMS_URI,
        "links": [{"href": href, "rel": "self", "type": "application/json", "title": TMS_ID}]}]})


@router.get("/tileMatrixSets/{tileMatrixSetId}", summary="A tile matrix set's definition",
            responses={**JSON_DOC, **problem_responses(400, 404)})
async def tile_matrix_set(tile_matrix_set_id: Annotated[str, Path(alias="tileMatrixSetId")]) -> JSONResponse:
    """The definition of WebMercatorQuad (OGC Two Dimensional Tile Matrix Set 2.0, from morecantile)."""
    _tms(tile_matrix_set_id)
    return JSONResponse(definition())


def _tileset(base: str, coll_id: str, title: str) -> dict[str, Any]:
    """The tileset's summary: what it is and where its metadata and scheme are."""
    href = f"{base}/collections/{coll_id}/tiles/{TMS_ID}"
    return {"title": f"{title}: vector tiles", "dataType": "vector", "crs": CRS_3857,
            "tileMatrixSetURI": TMS_URI,
            "links": [{"href": href, "rel": "self", "type": "application/json", "title": "This tileset"},
                      {"href": f"{base}/tileMatrixSets/{TMS_ID}", "rel": TILING_SCHEME_REL,
                       "type": "application/json", "title": TMS_ID}]}


@router.get("/collections/{collection_id}/tiles", summary="A collection's tilesets",
            responses={**JSON_DOC, **problem_responses(400, 404)})
async def tilesets(request: Request, coll: CollectionDep) -> JSONResponse:
    """The collection's vector tilesets (one, on WebMercatorQuad)."""
    base = base_url(request)
    return JSONResponse({"links": [{"href": f"{base}/collections/{coll.id}/tiles", "rel": "self",
                                    "type": "application/json", "title": "The tilesets"}],
                         "tilesets": [_tileset(base, coll.id, coll.title)]})


@router.get("/collections/{collection_id}/tiles/{tileMatrixSetId}", summary="A collection's tileset",
            responses={**JSON_DOC, **problem_responses(400, 404)})
async def tileset(request: Request, coll: CollectionDep,
                  tile_matrix_set_id: Annotated[str, Path(alias="tileMatrixSetId")]) -> JSONResponse:
    """The tileset's metadata: the tile URL template (`{tileMatrix}/{tileRow}/{tileCol}`, i.e. z/y/x),
    its layer (named after the collection) and zoom range."""
    _tms(tile_matrix_set_id)
    base = base_url(request)
    doc = _tileset(base, coll.id, coll.title)
    template = f"{base}/collections/{coll.id}/tiles/{TMS_ID}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"
    doc["links"] += [
        {"href": template, "rel": "item", "type": MEDIA_TYPE, "templated": True,
         "title": "A tile (the items' filters apply as query parameters)"},
        {"href": f"{base}/collections/{coll.id}", "rel": "collection", "type": "application/json",
         "title": coll.title}]
    # The zooms served (the matrix set defines 0 to 24): clients such as GDAL list only these.
    doc["tileMatrixSetLimits"] = [{"tileMatrix": str(z), "minTileRow": 0, "maxTileRow": (1 << z) - 1,
                                   "minTileCol": 0, "maxTileCol": (1 << z) - 1} for z in range(MAX_ZOOM + 1)]
    doc["layers"] = [{"id": coll.id, "title": coll.title, "dataType": "vector",
                      "minTileMatrix": "0", "maxTileMatrix": str(MAX_ZOOM)}]
    doc["minTileMatrix"], doc["maxTileMatrix"] = "0", str(MAX_ZOOM)
    return JSONResponse(doc)


@router.get("/collections/{collection_id}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
            summary="A vector tile (MVT)", response_class=Response,
            responses={200: {"content": {MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}},
                       204: {"description": "No feature lies in this tile."},
                       **problem_responses(304, 400, 404, 503)})
async def tile(request: Request, coll: CollectionDep,
               filters: Annotated[Filters, Depends(filters_dependency)],
               tile_matrix_set_id: Annotated[str, Path(alias="tileMatrixSetId")],
               tile_matrix: Annotated[str, Path(alias="tileMatrix", description="The zoom level, 0 to 18.",
                                                examples=["5"])],
               tile_row: Annotated[str, Path(alias="tileRow", description="The row (y), from the north.",
                                             json_schema_extra=TILE_INDEX)],
               tile_col: Annotated[str, Path(alias="tileCol", description="The column (x), from the west.",
                                             json_schema_extra=TILE_INDEX)],
               ) -> Response:
    """The collection's features in one tile, as a Mapbox Vector Tile with one layer named after the
    collection. At zooms below 14 the projects' points are clustered: a cluster is a point with
    `cluster`, `count` and `count_<status>`; a point alone in its cell, and every feature from zoom 14,
    carries `id`, `name`, `status`, `category` and `province` (the other layers: their names)."""
    _tms(tile_matrix_set_id)
    where = Tile.checked(_integer("tileMatrix", tile_matrix), _integer("tileRow", tile_row),
                         _integer("tileCol", tile_col))
    table = coll.table()
    etag = make_etag("tile", coll.id, table.version, where, sorted(request.query_params.multi_items()))
    cached = not_modified(request, etag, table.modified)
    if cached is not None:
        return cached
    # Kept by geo.tiles.responses.TileResponses as it leaves the app, gzipped or not.
    body = tile_bytes(coll, table, filters, where)
    headers = validators(etag, table.modified)
    if not body:
        return Response(status_code=204, headers=headers)
    return Response(body, media_type=MEDIA_TYPE, headers=headers)
