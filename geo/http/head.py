"""HEAD answered like GET, without the body (RFC 9110 9.3.2), for every GET route.

FastAPI routes declare GET only; `curl -I`, link checkers and download managers ask HEAD first.
The request reaches the route as a GET marked with `HEAD_SCOPE_KEY`, so a route whose body is
expensive to build (a GeoPackage, a zipped Shapefile) can answer from metadata instead (`is_head`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEAD_SCOPE_KEY = "geo.http.head"


def is_head(request: Request) -> bool:
    """Whether this GET is really a HEAD: only the status and headers will be sent."""
    return bool(request.scope.get(HEAD_SCOPE_KEY, False))


class HeadAsGet:
    """Run a HEAD request as a GET and send the same status and headers with an empty body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass other requests through untouched."""
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b""})
                return
            await send(message)

        await self.app({**scope, "method": "GET", HEAD_SCOPE_KEY: True}, receive, without_body)
