"""CORS: any web page may read; only the configured origins may write.

Starlette's CORSMiddleware applies one policy to every method, so this small ASGI middleware
answers preflights itself: reads (GET, HEAD) are open to `*`; writes are allowed only for the
origins in GEO_CORS_ORIGINS. Writes always need `Authorization`, which forces a preflight, so a page
from another origin never gets to send one.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo.problems import problem

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_HEADERS = "Accept, Accept-Language, If-None-Match, If-Modified-Since"
WRITE_HEADERS = f"{READ_HEADERS}, Authorization, Content-Type, If-Match"
EXPOSED = "ETag, Last-Modified, Location, Content-Crs, Content-Disposition"
MAX_AGE = "600"


class CORSMiddleware:
    """Open reads, writes only from `write_origins` (`*` in it allows any origin to write)."""

    def __init__(self, app: ASGIApp, write_origins: frozenset[str]) -> None:
        self.app = app
        self.write_origins = write_origins

    def _may_write(self, origin: str) -> bool:
        return "*" in self.write_origins or origin in self.write_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer preflights; add the CORS headers to actual responses."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        requested = headers.get("access-control-request-method")
        if method == "OPTIONS" and requested:
            await self._preflight(origin, requested.upper(), scope, receive, send)
            return
        if method in READ_METHODS:
            extra = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSED}
        elif self._may_write(origin):
            extra = {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": EXPOSED,
                     "Vary": "Origin"}
        else:
            extra = {}

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                out = MutableHeaders(scope=message)
                for key, value in extra.items():
                    if key == "Vary":
                        out.add_vary_header(value)
                    else:
                        out[key] = value
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, origin: str, requested: str, scope: Scope, receive: Receive,
                         send: Send) -> None:
        if requested in READ_METHODS:
            headers = {"Access-Control-Allow-Origin": "*",
                       "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
                       "Access-Control-Allow-Headers": READ_HEADERS, "Access-Control-Max-Age": MAX_AGE}
        elif requested in WRITE_METHODS and self._may_write(origin):
            headers = {"Access-Control-Allow-Origin": origin,
                       "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE",
                       "Access-Control-Allow-Headers": WRITE_HEADERS, "Access-Control-Max-Age": MAX_AGE,
                       "Vary": "Origin"}
        else:
            response = problem(403, "Origin not allowed", f"{origin} may not send {requested} requests here; "
                               "writes from browsers are allowed only from the origins in GEO_CORS_ORIGINS.",
                               slug="cors-origin", instance=scope["path"],
                               errors=[{"field": "Origin", "message": "not allowed to write"}])
            await response(scope, receive, send)
            return
        await Response(status_code=204, headers=headers)(scope, receive, send)
