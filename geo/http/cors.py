"""CORS: any web page may read; only the configured origins may write.

Starlette's CORSMiddleware applies one policy to every method, so this small ASGI middleware
answers preflights itself: reads (GET, HEAD) are open to `*`; writes are allowed only for the
origins in GEO_CORS_ORIGINS. Writes always need `Authorization`, which forces a preflight, so a page
from another origin never gets to send one.

Reads carry `Access-Control-Allow-Origin: *` whether or not the request named an Origin, so they do
not vary by Origin; the answers that do (writes, write preflights) say `Vary: Origin`. Headers are
added to a copy of the response's header list, never to the list itself (it may be a cached one).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo.http import first_values
from geo.http.problems import problem

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_HEADERS = "Accept, Accept-Language, If-None-Match, If-Modified-Since"
# X-Filename: the import endpoint reads a file's format from its name when the type does not say.
# Idempotency-Key: a POST's retry key (geo/idempotency.py).
WRITE_HEADERS = (f"{READ_HEADERS}, Authorization, Content-Type, Content-Crs, If-Match, Idempotency-Key, "
                 "X-Filename")
# What a web client on another origin may read: validators, where a new feature is, the CRS, the file
# name, and what to do next after a refusal (Allow, Accept-Patch/Post, Retry-After, WWW-Authenticate).
EXPOSED = ("ETag, Last-Modified, Location, Content-Crs, Content-Disposition, "
           "Allow, Accept-Patch, Accept-Post, Retry-After, WWW-Authenticate, Link, Idempotent-Replayed")
EXPOSED_B = EXPOSED.encode("ascii")
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
        origin, requested = (None if raw is None else raw.decode("latin-1") for raw in first_values(
            scope["headers"], b"origin", b"access-control-request-method"))
        method = scope["method"]
        if origin is not None and method == "OPTIONS" and requested:
            await self._preflight(origin, requested.upper(), scope, receive, send)
            return
        if method in READ_METHODS:
            # The same for every request, with or without Origin: nothing varies, so a shared cache may
            # give one copy to everyone (no Vary: Origin needed, and none of its cache fragmentation).
            extra = [(b"access-control-allow-origin", b"*"), (b"access-control-expose-headers", EXPOSED_B)]
        elif origin is not None and self._may_write(origin):
            extra = [(b"access-control-allow-origin", origin.encode("latin-1")),
                     (b"access-control-expose-headers", EXPOSED_B)]
        else:
            extra = []
        # A write's CORS headers depend on its Origin (allowed or not): say so, whatever it was.
        vary = method not in READ_METHODS

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = _with_headers(message, extra, vary)
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
                               errors=[{"field": "Origin", "message": "not allowed to write"}],
                               headers={"Vary": "Origin"})
            await response(scope, receive, send)
            return
        await Response(status_code=204, headers=headers)(scope, receive, send)


def _with_headers(message: Message, extra: list[tuple[bytes, bytes]], vary: bool) -> Message:
    """The start message with the CORS headers, as a new message with a new header list: the one given
    may be a cached response's, shared by later requests from other origins."""
    if not extra and not vary:
        return message
    if not vary:  # a read: the two headers appended, nothing to merge
        return {**message, "headers": [*message.get("headers", []), *extra]}
    out = MutableHeaders(raw=list(message.get("headers", [])))
    for name, value in extra:
        out.raw.append((name, value))
    out.add_vary_header("Origin")
    return {**message, "headers": out.raw}
