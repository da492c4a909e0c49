"""Turn every error into RFC 9457 problem JSON, in one place."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from geo.errors import GeoError
from geo.responses import ProblemResponse

log = logging.getLogger(__name__)

TYPE_BASE = "urn:geo:problem:"
# The methods a 405's `Allow` may list, in its order: reads, then writes.
METHOD_ORDER = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
# Narrows the routed methods to those allowed now (e.g. no writes on a read-only collection): given the
# request, the path parameters and the routed methods, in METHOD_ORDER.
AllowNow = Callable[[Request, dict[str, Any], tuple[str, ...]], tuple[str, ...]]


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


def routed_methods(request: Request) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Every method some route takes at this request's path, and the path's parameters.

    Starlette's own 405 names only the methods of the first route whose path matched (GET alone on a
    feature); a 405 must list all of them (RFC 9110 15.5.6). Each method is tried against the routes
    (their public `matches`, which also sees into included routers). HEAD goes wherever GET does
    (geo.http.head).
    """
    found: list[str] = []
    # Set by the router's method-less match (included routers' matches do not return them).
    params: dict[str, Any] = dict(request.path_params)
    for method in METHOD_ORDER:
        probe = {**request.scope, "method": method}
        for route in request.app.router.routes:
            match, child = route.matches(probe)
            if match is Match.FULL:
                found.append(method)
                params = params or dict(child.get("path_params", {}))
                break
    if "GET" in found and "HEAD" not in found:
        found.insert(1, "HEAD")
    return tuple(found), params


def install(app: FastAPI, allow_now: AllowNow | None = None) -> None:
    """Register the handlers that map errors to problem JSON; `allow_now` narrows a 405's `Allow`."""

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
        headers = dict(getattr(exc, "headers", None) or {})
        detail = str(exc.detail)
        if exc.status_code == 405:
            methods, params = routed_methods(request)
            if allow_now is not None:
                methods = allow_now(request, params, methods)
            headers["Allow"] = ", ".join(methods)
            detail = f"{request.method} is not allowed here; `Allow` lists the methods that are."
        return problem(exc.status_code, title, detail, slug=title.lower().replace(" ", "-"),
                       instance=request.url.path, headers=headers or None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> ProblemResponse:
        # Log the trace for operators; never show it to clients.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "The server failed; the error is logged.", slug="internal",
                       instance=request.url.path)
