"""OGC API - Features, Part 4: adding projects."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from geo.auth import require_key
from geo.body import read_json
from geo.errors import ReadOnly
from geo.projects import new_project
from geo.responses import GeoJSONResponse
from geo.routers.deps import CatalogueDep, CollectionDep, SettingsDep, base_url
from geo.validation import check_feature

router = APIRouter(tags=["OGC API - Features - Part 4"])

FEATURE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/geo+json": {"schema": {"type": "object"}, "example": {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [69.1723, 34.5281]},
            "properties": {"name": "Girls' secondary school", "category": "school", "status": "proposed"},
        }}},
    }
}


@router.post("/collections/{collection_id}/items", status_code=201, summary="Add a project",
             response_class=GeoJSONResponse, openapi_extra=FEATURE_BODY,
             responses={201: {"description": "Created; `Location` names the new feature."}})
async def create_item(
    request: Request,
    coll: CollectionDep,
    catalogue: CatalogueDep,
    settings: SettingsDep,
    _key: Annotated[str, Depends(require_key)],
) -> GeoJSONResponse:
    """Add a project from a GeoJSON Feature; the server sets id, province and timestamps."""
    if not coll.editable:
        raise ReadOnly(f"{coll.id} is read-only; only projects can be added.", headers={"Allow": "GET, HEAD"})
    body = await read_json(request, settings.max_body_bytes)
    checked = check_feature(body, catalogue.place)
    feature = new_project(checked, catalogue.province_names())
    catalogue.store.add(feature)
    location = f"{base_url(request)}/collections/{coll.id}/items/{feature['id']}"
    return GeoJSONResponse(feature, status_code=201, headers={"Location": location})
