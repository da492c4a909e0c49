"""`POST /collections/projects/import`: a spreadsheet or GIS file of new projects, checked row by row.

The body is the file's bytes (CSV, XLSX, GeoJSON, GeoPackage; `Content-Type` says which, or the name in
`X-Filename`). The answer is the import report as JSON (geo.importing.report), a dry run unless
`dry_run=false`: an editor sees what would happen, then confirms. The rows are checked by the same
functions as POST to the items, and the valid ones written in one atomic step. Auth, the write rate and
the body timeout are those of the other writes; the size limit is GEO_MAX_IMPORT_BYTES.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.concurrency import run_in_threadpool

from geo.auth import require_key
from geo.errors import InvalidInput, ReadOnly
from geo.http.body import read_bytes
from geo.importing.columns import parse_map
from geo.importing.run import ImportOptions, run_import
from geo.importing.sources import MEDIA_TYPES, kind_of
from geo.openapi import problem_responses
from geo.responses import JSONResponse
from geo.routers.deps import CatalogueDep, SettingsDep
from geo.routers.transactions import key_name

router = APIRouter(tags=["Import"])

EXAMPLE_CSV = ("name,category,status,budget_usd,lon,lat\r\n"
               "Girls' secondary school,school,proposed,1200000,69.1723,34.5281\r\n")
REQUEST_BODY = {"requestBody": {"required": True, "description": "The file's bytes.", "content": {
    media: {"schema": {"type": "string", "format": "binary"}, **({"example": EXAMPLE_CSV}
                                                                   if media == "text/csv" else {})}
    for media in MEDIA_TYPES}}}
_ROW_ITEM = {"type": "object", "properties": {
    "row": {"type": "integer", "description": "The row as the file numbers it (the header is row 1; "
                                              "GeoJSON and GeoPackage: the feature, from 1)."},
    "field": {"type": "string", "nullable": True}, "column": {"type": "string", "nullable": True},
    "reason": {"type": "string"}}}
REPORT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {
    "format": {"type": "string", "enum": ["csv", "xlsx", "geojson", "gpkg"]},
    "dry_run": {"type": "boolean"},
    "written": {"type": "boolean", "description": "Whether the store was changed."},
    "read": {"type": "integer", "description": "Rows read (blank rows left out)."},
    "valid": {"type": "integer", "description": "Rows that passed every check (duplicates aside)."},
    "imported": {"type": "integer", "description": "Rows imported, or that would be on a dry run."},
    "rejected_rows": {"type": "integer"},
    "rejected": {"type": "array", "items": _ROW_ITEM, "description": "Each reason a row was rejected."},
    "duplicates": {"type": "array", "items": {"type": "object", "properties": {
        "row": {"type": "integer"}, "of": {"type": "string", "description": "A project id, or `row N`."},
        "distance_m": {"type": "number"}, "name": {"type": "string"}}}},
    "duplicates_allowed": {"type": "boolean"},
    "skipped": {"type": "array", "items": {"type": "object", "properties": {
        "row": {"type": "integer"}, "reason": {"type": "string"}}}},
    "ids": {"type": "array", "items": {"type": "string"}, "description": "The new projects' ids."},
    "columns": {"type": "object", "properties": {
        "mapped": {"type": "object", "additionalProperties": {"type": "string"}},
        "ignored": {"type": "array", "items": {"type": "string"}}}},
}}
REPORT_OK = {"description": "The import report (also when rows were rejected, or nothing was written).",
             "content": {"application/json": {"schema": REPORT_SCHEMA}}}


async def read_upload(request: Request, limit: int, timeout_s: float) -> bytes:
    """The file's bytes (413 past `limit`, 408 past `timeout_s`: geo.http.body.read_bytes); 400 when empty."""
    data = await read_bytes(request, limit, timeout_s, what="file", setting="GEO_MAX_IMPORT_BYTES")
    if not data:
        raise InvalidInput.about("file", "the body is empty: send the file's bytes")
    return data


@router.post(
    "/collections/projects/import", summary="Import projects from a file", response_class=JSONResponse,
    openapi_extra=REQUEST_BODY,
    responses={200: REPORT_OK, **problem_responses(400, 401, 403, 405, 408, 413, 415, 429, 503)})
async def import_projects(
    request: Request,
    catalogue: CatalogueDep,
    settings: SettingsDep,
    _key: Annotated[str, Depends(require_key)],
    dry_run: Annotated[bool, Query(description="Only report what would happen (the default).")] = True,
    all_or_nothing: Annotated[bool, Query(
        description="Write nothing if any row is rejected.")] = False,
    allow_duplicates: Annotated[bool, Query(
        description="Import rows whose name and category match a project within 100 m.")] = False,
    column_map: Annotated[str | None, Query(
        alias="map", description="Columns to fields where the names do not say: `column=field,...` "
                                 "(fields: the project's, lon, lat, wkt, province, ignore).")] = None,
    filename: Annotated[str | None, Header(
        alias="X-Filename", description="The file's name: its extension tells the format when the "
                                        "Content-Type does not.")] = None,
) -> JSONResponse:
    """Check every row of a CSV, XLSX, GeoJSON or GeoPackage file with the rules of POST and answer the
    report; unless `dry_run=true` (the default), write the valid rows in one atomic step."""
    projects = catalogue.get("projects")
    if not projects.editable:
        raise ReadOnly("projects is read-only here: nothing can be imported.", headers={"Allow": ""})
    options = ImportOptions(dry_run=dry_run, all_or_nothing=all_or_nothing,
                            allow_duplicates=allow_duplicates, mapping=_mapping(column_map),
                            by=key_name(request))
    data = await read_upload(request, settings.max_import_bytes, settings.body_timeout_s)
    kind = kind_of(data, request.headers.get("content-type"), filename)
    # Reading and checking thousands of rows, and the write's fsync, are blocking: off the event loop.
    result = await run_in_threadpool(run_import, data, kind, catalogue, options)
    return JSONResponse(result.report.to_json())


def _mapping(spec: str | None) -> dict[str, str]:
    # A JSON file path is a CLI form only: over HTTP a `map` is always pairs.
    if spec and "=" not in spec:
        raise InvalidInput.about("map", "must be column=field pairs separated by commas")
    return parse_map(spec)
