"""OGC API - Features, Part 4: add, replace, update and delete projects; OPTIONS says what is allowed.

Every write needs the same key and passes the same checks as POST. A route reads the body, builds and
checks the new version outside the store's lock, then makes one explicit store write (`add`,
`replace`, `delete`). `If-Match` (optional) is compared by the store with the feature's current ETag
under its cross-process lock, so two writers holding the same ETag cannot both succeed. With
`If-Match`, a feature that does not exist answers 412, not 404 (/req/create-replace-delete/
put-rid-exception B; RFC 9110 13.1.1: the condition is false when there is no current representation).

OPTIONS answers 200 with `Allow` (/req/create-replace-delete/options-response), listing the methods
allowed at that moment for that collection and feature; on a feature that does not exist it answers
404, like GET. Where PATCH is allowed, `Accept-Patch` (RFC 5789 3.1) names the patch formats; where
POST is, `Accept-Post` names the feature formats.
"""

from __future__ import annotations

from typing import Annotated, Any

import shapely.geometry
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from geo import idempotency
from geo.auth import require_admin, require_key, writes_configured
from geo.catalogue import Catalogue, Collection
from geo.crs import geometry_to_crs84
from geo.crs import parse_header as parse_crs_header
from geo.duplicates import ALLOW, PARAMETER, DuplicateParam, find_duplicate, refuse
from geo.errors import (
    InvalidFeature,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    ReadOnly,
    StoreBusy,
    UnsupportedMediaType,
)
from geo.http.body import read_json
from geo.openapi import problem_responses
from geo.projects import client_view, merge_patch, new_project, replace_project
from geo.responses import GEOJSON, GeoJSONResponse
from geo.routers.deps import CatalogueDep, CollectionDep, SettingsDep, base_url
from geo.routers.direct import direct_route
from geo.routers.lifecycle import ITEMS, missing, missing_here
from geo.settings import Settings
from geo.store.base import RETRY_AFTER_S, Feature, check_write, etag_of
from geo.store.changes import Replayed, WriteMeta
from geo.validation import CheckedFeature, check_feature
from geo.workflow import CHANGE_MEMBER, StatusChangeRequest, take_change

router = APIRouter(tags=["OGC API - Features - Part 4"])

EXAMPLE = {
    "type": "Feature",
    "geometry": {"type": "Point", "coordinates": [69.1723, 34.5281]},
    "properties": {"name": "Girls' secondary school", "category": "school", "status": "proposed"},
}
# The Feature's foreign member `status_change` (geo/workflow.py): why the status changes, kept in its
# `status_history` entry, not as a property.
CHANGE_SCHEMA = {CHANGE_MEMBER: StatusChangeRequest.model_json_schema()}
FEATURE_BODY = {"requestBody": {"required": True, "content": {
    "application/geo+json": {"schema": {"allOf": [{"$ref": "#/components/schemas/Feature"}, {
        "type": "object", "properties": CHANGE_SCHEMA}]}, "example": EXAMPLE}}}}
# POST's retry key (geo/idempotency.py), declared here because the route reads its headers itself.
POST_EXTRA = {**FEATURE_BODY, "parameters": [{
    "name": idempotency.HEADER, "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_LENGTH},
    "description": "A key of the client's choosing (a UUID), the same on every retry of this POST: however "
                   "many arrive, within 24 hours, across restarts, one project is made and every retry gets "
                   "it (201, `Location`, `Idempotent-Replayed: true`). The key with another body: 422."}]}
# The patch formats PATCH takes (JSON merge patch, RFC 7396; plain JSON read the same way), and the
# feature formats POST and PUT take: what Accept-Patch and Accept-Post name.
PATCH_TYPES = ("application/merge-patch+json", "application/json")
FEATURE_TYPES = (GEOJSON, "application/json")
ACCEPT_PATCH = {"Accept-Patch": ", ".join(PATCH_TYPES)}
ACCEPT_POST = {"Accept-Post": ", ".join(FEATURE_TYPES)}
PATCH_BODY = {"requestBody": {"required": True, "content": {
    media: {"schema": {"type": "object", "properties": {
        "properties": {"type": "object"}, "geometry": {"type": "object"}, **CHANGE_SCHEMA}},
        "example": {"properties": {"status": "approved", "budget_usd": 1200000},
                    CHANGE_MEMBER: {"note": "Approved by the provincial council",
                                    "source": "https://example.org/decision-42"}}}
    for media in PATCH_TYPES}}}
WRITE_ERRORS = problem_responses(400, 401, 403, 404, 405, 408, 409, 412, 413, 415, 422, 429, 503)
FEATURE_OK = {"description": "The feature as stored; `ETag` is its new version.",
              "content": {GEOJSON: {"schema": {"$ref": "#/components/schemas/Feature"}}}}
ALLOWED = {"description": "`Allow` lists the methods allowed now (with `Accept-Patch` / `Accept-Post` "
                          "where PATCH / POST is one of them); no body.",
           "headers": {name: {"schema": {"type": "string"}}
                       for name in ("Allow", "Accept-Patch", "Accept-Post")}}
IfMatch = Annotated[str | None, Header(
    alias="If-Match", description="Only write if the feature's ETag is still this one (else 412).")]
Duplicate = Annotated[DuplicateParam | None, Query(
    alias=PARAMETER, description=f"`{ALLOW}`: add the project even when one of the same name and category "
                                 "lies within 100 m (else 409 naming it in `errors[0].duplicate_of`).")]
PATCH_KEYS = frozenset({"type", "id", "geometry", "properties", "links"})


def _writable(coll: Collection, settings: Settings) -> bool:
    # An unreadable keys file offers no writes here; the writes themselves answer 503 saying why.
    return coll.editable and writes_configured(settings)


READS = ("GET", "HEAD", "OPTIONS")
ITEMS_WRITES = ("POST",)
ITEM_WRITES = ("PUT", "PATCH", "DELETE")


def allowed(coll: Collection, settings: Settings, writes: tuple[str, ...]) -> tuple[str, ...]:
    """The methods allowed now on a resource of `coll` whose writes would be `writes`."""
    return READS + writes if _writable(coll, settings) else READS


def allow_headers(methods: tuple[str, ...]) -> dict[str, str]:
    """`Allow`, and `Accept-Patch` / `Accept-Post` when PATCH / POST is allowed."""
    headers = {"Allow": ", ".join(methods)}
    if "PATCH" in methods:
        headers.update(ACCEPT_PATCH)
    if "POST" in methods:
        headers.update(ACCEPT_POST)
    return headers


def allow_now(request: Request, path_params: dict[str, Any], methods: tuple[str, ...]) -> tuple[str, ...]:
    """A 405's `Allow` (see geo.http.problems): the routed methods, less the writes when the collection in
    the path cannot be written now (read-only, no keys, or no such collection)."""
    collection_id = path_params.get("collection_id")
    if collection_id is None:
        return methods
    state = request.app.state
    try:
        writable = _writable(state.catalogue.get(collection_id), state.settings)
    except NotFound:
        writable = False
    return methods if writable else tuple(m for m in methods if m not in ITEMS_WRITES + ITEM_WRITES)


def _require_editable(coll: Collection) -> None:
    if not coll.editable:
        raise ReadOnly(f"{coll.id} is read-only; only projects can be written.",
                       headers={"Allow": ", ".join(READS)})


def _written(request: Request, coll: Collection, feature: Feature, status_code: int = 200) -> GeoJSONResponse:
    location = f"{base_url(request)}/collections/{coll.id}/items/{feature['id']}"
    headers = {"ETag": etag_of(feature)}
    if status_code == 201:
        headers["Location"] = location
    return GeoJSONResponse(feature, status_code=status_code, headers=headers)


@router.options("/collections/{collection_id}/items", status_code=200, summary="Methods on the items",
                responses={200: ALLOWED, **problem_responses(404, 503)})
async def items_options(coll: CollectionDep, settings: SettingsDep) -> Response:
    """Which methods the items accept (GIS clients ask before offering editing)."""
    return Response(status_code=200, headers=allow_headers(allowed(coll, settings, ITEMS_WRITES)))


@router.options("/collections/{collection_id}/items/{feature_id}", status_code=200,
                summary="Methods on one feature",
                responses={200: ALLOWED, **problem_responses(404, 503)})
async def item_options(coll: CollectionDep, settings: SettingsDep, feature_id: str) -> Response:
    """Which methods one feature accepts; 404 when there is no such feature (nothing to write)."""
    if coll.table().position.get(feature_id) is None:
        raise NotFound(f"There is no feature {feature_id!r} in {coll.id}.")
    return Response(status_code=200, headers=allow_headers(allowed(coll, settings, ITEM_WRITES)))


# A DirectRoute (geo/routers/direct.py): the body is read by the route itself, so what FastAPI resolves
# per request is the key and the collection; the plan does that without re-reading the declarations
# (a POST took 1,031 us in-process with FastAPI's resolution, 887 us this way).
@direct_route(router, "/collections/{collection_id}/items", methods=["POST"], status_code=201,
              summary="Add a project", response_class=GeoJSONResponse, openapi_extra=POST_EXTRA,
              responses={201: {"description": "Created; `Location` names the new feature.",
                               "content": {GEOJSON: {"schema": {"$ref": "#/components/schemas/Feature"}}}},
                         **WRITE_ERRORS})
async def create_item(
    request: Request,
    coll: CollectionDep,
    catalogue: CatalogueDep,
    settings: SettingsDep,
    _key: Annotated[str, Depends(require_key)],
    duplicate: Duplicate = None,
) -> GeoJSONResponse:
    """Add a project from a GeoJSON Feature; the server sets id, province and timestamps. A project of
    the same name and category within 100 m of a stored one is refused (409) unless `duplicate=allow`.
    With `Idempotency-Key`, a retry gets the project the first request made (geo/idempotency.py)."""
    _require_editable(coll)
    key = idempotency.key_of(request)
    raw = await read_json(request, settings.max_body_bytes)
    meta = WriteMeta(by=key_name(request), idempotency_key=key,
                     request_hash=None if key is None else idempotency.request_hash(raw))
    body, change = take_change(_body_in_crs84(request, raw))
    checked = check_feature(body, catalogue.place)
    feature = new_project(checked, catalogue.province_names(), by=meta.by, change=change)
    # The duplicate check reads the store's snapshot and the write fsyncs: both off the event loop.
    stored, replayed = await run_in_threadpool(_add, catalogue, feature, checked, duplicate != ALLOW,
                                               base_url(request), meta)
    response = _written(request, coll, stored, 201)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def key_name(request: Request) -> str | None:
    """The name of the key that authorised this request, when keys have names (set by geo/auth.py as
    `request.state.key_name`); never the key itself."""
    name = getattr(request.state, "key_name", None)
    return name if isinstance(name, str) and name else None


def _add(catalogue: Catalogue, feature: Feature, checked: CheckedFeature, guard: bool, base: str,
         meta: WriteMeta) -> tuple[Feature, bool]:
    """Store a new project, first refusing (409) a duplicate of a stored one when `guard` is on; return it
    and whether it is an earlier request's project (a retry with its Idempotency-Key: nothing written).
    Blocking: run it in a worker thread."""
    store = catalogue.store
    try:
        if guard:
            name, category = checked.properties["name"], checked.properties["category"]
            match = find_duplicate(store.snapshot(), name, category, shapely.geometry.shape(checked.geometry))
            if match is not None:
                # A retry's own project (one its Idempotency-Key made, maybe by a concurrent first request)
                # is no duplicate: it is answered as the replay it is.
                earlier = store.idempotent(meta) if meta.idempotency_key is not None else None
                if earlier is not None:
                    raise earlier
                raise refuse(match, name, f"{base}{ITEMS}/{match.of}")
        # A retry the guard let through (off, or its project not found) is recognised by the store, under
        # its lock, as the add of a key already used (Replayed).
        return store.add(feature, meta), False
    except Replayed as replayed:
        fid = idempotency.check_replay(replayed, meta.request_hash)
        # The record may be ahead of this server's table (another request's commit, not yet applied
        # here: PostGIS applies its own write just after the commit): read the store up to date first.
        current = store.snapshot().get(fid) or store.refresh().get(fid)
        if current is None:
            raise missing(catalogue, "projects", fid, base) from None
        return current, True


# How many times PUT or PATCH rebuilds its new version when the feature changed under it (see _rewrite).
WRITE_ATTEMPTS = 3


def _rewrite(catalogue: Catalogue, feature_id: str, if_match: str | None, body: object, *,
             patch: bool, by: str | None = None, change: StatusChangeRequest | None = None) -> Feature:
    """PUT (`body` is the whole client feature) and PATCH (`body` is a merge patch): build the next
    version of the stored feature, check it, and store it. Blocking: run it in a worker thread.

    No lost update. The next version depends on the version it is built from (PATCH merges into it;
    both keep its `created_at` and extend its `status_history`), and it is built and checked outside the
    store's lock, so that validation and province assignment never hold the lock. The store then
    writes it only over that same version: `replace(..., if_match=<its ETag>)` compares under the lock.
    So the status workflow (geo/workflow.py, 409) is checked against the version that is replaced.
    If another write landed in between, the store writes nothing and raises PreconditionFailed; the
    feature is then read again, the client's own If-Match is checked against the new version (412 when
    it no longer holds, 404 or 412 when the feature was deleted) and the version rebuilt. After
    WRITE_ATTEMPTS such collisions the answer is 503 with Retry-After.
    """
    store = catalogue.store
    for _attempt in range(WRITE_ATTEMPTS):
        # Off the event loop, snapshot() first re-reads a file another process changed; after a collision
        # the store has already installed the version it collided with.
        current = check_write(feature_id, store.snapshot().get(feature_id), if_match)
        client_feature = _patched(body, current) if patch else body
        new = replace_project(current, check_feature(client_feature, catalogue.place),
                              catalogue.province_names(), by=by, change=change)
        try:
            return store.replace(feature_id, new, if_match=etag_of(current), meta=WriteMeta(by=by))
        except PreconditionFailed:
            continue  # changed since `current` was read: nothing was written; read and build again
    raise StoreBusy(f"Project {feature_id!r} was changed by other writes {WRITE_ATTEMPTS} times while this "
                    "one was being prepared; nothing was written. Try again shortly.",
                    headers={"Retry-After": RETRY_AFTER_S})


@router.put("/collections/{collection_id}/items/{feature_id}", summary="Replace a project",
            response_class=GeoJSONResponse, openapi_extra=FEATURE_BODY,
            responses={200: FEATURE_OK, **WRITE_ERRORS})
async def replace_item(
    request: Request, coll: CollectionDep, catalogue: CatalogueDep, settings: SettingsDep,
    feature_id: str, _key: Annotated[str, Depends(require_key)], if_match: IfMatch = None,
) -> GeoJSONResponse:
    """Replace a project with a new GeoJSON Feature (same checks as POST; id and created_at stay)."""
    _require_editable(coll)
    body, change = take_change(_body_in_crs84(request, await read_json(request, settings.max_body_bytes)))
    try:
        new = await run_in_threadpool(_rewrite, catalogue, feature_id, if_match, body, patch=False,
                                      by=key_name(request), change=change)
    except NotFound:
        raise await missing_here(request, coll.id, feature_id) from None  # 410 when deleted before
    return _written(request, coll, new)


def _body_in_crs84(request: Request, body: object) -> object:
    """The body with its geometry carried into CRS84 from the CRS its `Content-Crs` header names (Part 4
    /req/features/content-crs-header, /req/features/crs-other-crs: a CRS this service does not offer is a
    400 that lists those it does); without the header the body is CRS84, as RFC 7946 says."""
    crs = parse_crs_header(request.headers.get("content-crs"))
    if crs.is_default or not isinstance(body, dict) or "geometry" not in body:
        return body
    return {**body, "geometry": geometry_to_crs84(body["geometry"], crs)}


def _check_patch_type(request: Request) -> None:
    """A PATCH must say what its body is (/req/update/patch-content-type B: 400 without it), in a
    patch format this service reads (else 415 with `Accept-Patch`, RFC 5789 2.2)."""
    content_type = request.headers.get("content-type")
    if content_type is None:
        raise InvalidInput("A PATCH needs a Content-Type: send the patch as "
                           f"{' or '.join(PATCH_TYPES)}.",
                           errors=[{"field": "Content-Type", "message": "missing"}])
    media = content_type.split(";")[0].strip().lower()
    if media not in PATCH_TYPES:
        raise UnsupportedMediaType(f"Send the patch as {' or '.join(PATCH_TYPES)}, not {media!r}.",
                                   headers=dict(ACCEPT_PATCH))


def _patched(body: object, current: Feature) -> Feature:
    """The client feature a merge patch makes of `current` (422 for a patch that is not one)."""
    if not isinstance(body, dict):
        raise InvalidFeature("body: a JSON merge patch object is required",
                             errors=[{"field": "body", "message": "must be an object"}])
    unknown = sorted(set(body) - PATCH_KEYS)
    if unknown:
        raise InvalidFeature(f"{', '.join(unknown)}: a patch may change only properties and geometry",
                             errors=[{"field": u, "message": "cannot be patched"} for u in unknown])
    view = client_view(current)
    if "properties" in body:
        if not isinstance(body["properties"], dict):
            raise InvalidFeature("properties: must be an object",
                                 errors=[{"field": "properties", "message": "must be an object"}])
        view["properties"] = merge_patch(view["properties"], body["properties"])
    if "geometry" in body:
        view["geometry"] = body["geometry"]
    return view


@router.patch("/collections/{collection_id}/items/{feature_id}", summary="Update a project",
              response_class=GeoJSONResponse, openapi_extra=PATCH_BODY,
              responses={200: FEATURE_OK, **WRITE_ERRORS})
async def update_item(
    request: Request, coll: CollectionDep, catalogue: CatalogueDep, settings: SettingsDep,
    feature_id: str, _key: Annotated[str, Depends(require_key)], if_match: IfMatch = None,
) -> GeoJSONResponse:
    """Update a project: a JSON merge patch of `properties` (null removes one), and/or a new `geometry`."""
    _require_editable(coll)
    _check_patch_type(request)
    body, change = take_change(_body_in_crs84(request, await read_json(request, settings.max_body_bytes)))
    try:
        new = await run_in_threadpool(_rewrite, catalogue, feature_id, if_match, body, patch=True,
                                      by=key_name(request), change=change)
    except NotFound:
        raise await missing_here(request, coll.id, feature_id) from None  # 410 when deleted before
    return _written(request, coll, new)


@router.delete("/collections/{collection_id}/items/{feature_id}", status_code=204,
               summary="Delete a project",
               responses={204: {"description": "Deleted."},
                          **problem_responses(400, 401, 403, 404, 405, 412, 429, 503)})
async def delete_item(
    request: Request, coll: CollectionDep, catalogue: CatalogueDep, feature_id: str,
    by: Annotated[str, Depends(require_admin)], if_match: IfMatch = None,
) -> Response:
    """Delete a project (admin keys only): it leaves the items, the map, the stats and the downloads, and
    keeps its history; an admin can restore it (POST .../restore)."""
    _require_editable(coll)
    try:
        await run_in_threadpool(catalogue.store.delete, feature_id, if_match, WriteMeta(by=by))
    except NotFound:
        raise await missing_here(request, coll.id, feature_id) from None  # 410 when deleted before
    return Response(status_code=204)
