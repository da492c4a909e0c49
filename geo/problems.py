"""Turn every error into RFC 9457 problem JSON, in one place."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from geo.errors import GeoError
from geo.responses import ProblemResponse

log = logging.getLogger(__name__)

TYPE_BASE = "urn:geo:problem:"


def problem(status: int, title: str, detail: str, *, slug: str, errors: list[dict[str, Any]] | None = None,
            instance: str | None = None, headers: dict[str, str] | None = None) -> ProblemResponse:
    """Build one problem response."""
    body: dict[str, Any] = {"type": TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    return ProblemResponse(body, status_code=status, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        # "query.limit" reads better for people than ["query", "limit"].
        out.append({"field": ".".join(loc[1:]) or ".".join(loc), "in": loc[0] if loc else "",
                    "message": err.get("msg", "invalid")})
    return out


def install(app: FastAPI) -> None:
    """Register the handlers that map errors to problem JSON."""

    @app.exception_handler(GeoError)
    async def _geo_error(request: Request, exc: GeoError) -> ProblemResponse:
        return problem(exc.status, exc.title, exc.detail, slug=exc.type_slug, errors=exc.errors,
                       instance=request.url.path, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> ProblemResponse:
        errors = _field_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(400, "Invalid input", detail, slug="invalid-input", errors=errors,
                       instance=request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        return problem(exc.status_code, title, str(exc.detail), slug=title.lower().replace(" ", "-"),
                       instance=request.url.path, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> ProblemResponse:
        # Log the trace for operators; never show it to clients.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "The server failed; the error is logged.", slug="internal",
                       instance=request.url.path)
