"""The API docs page (/api.html): Swagger UI served by the service itself, like the map's files."""

from __future__ import annotations

from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from geo.http.securityheaders import page_policy
from geo.web import assets

SWAGGER = "swagger-ui-5.35.0"


def swagger_page(title: str, openapi_url: str) -> HTMLResponse:
    """Swagger UI for the OpenAPI document at `openapi_url`, every file from /static/vendor/, with a
    Content-Security-Policy that allows its one inline script by hash."""
    page = get_swagger_ui_html(
        openapi_url=openapi_url, title=title,
        swagger_js_url=assets.url("vendor", f"{SWAGGER}/swagger-ui-bundle.js"),
        swagger_css_url=assets.url("vendor", f"{SWAGGER}/swagger-ui.css"),
        swagger_favicon_url=assets.url("vendor", f"{SWAGGER}/favicon-32x32.png"),
        # Swagger UI would otherwise show a badge image from the public validator's host.
        swagger_ui_parameters={"validatorUrl": None})
    body = bytes(page.body).decode("utf-8")
    return HTMLResponse(body, headers={"Content-Security-Policy": page_policy(body),
                                       "Cache-Control": "no-cache"})
