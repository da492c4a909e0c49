"""gzip for clients that ask, without breaking validators or squeezing what is already compressed."""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo.http.conditional import GZIP_SUFFIX

# GeoParquet is zstd-compressed inside: gzip would cost CPU for nothing.
EXCLUDED = (*DEFAULT_EXCLUDED_CONTENT_TYPES, "application/vnd.apache.parquet")


class Compression:
    """Starlette's GZipMiddleware, plus a distinct strong ETag for the gzipped representation."""

    def __init__(self, app: ASGIApp, minimum_size: int = 1024, level: int = 5) -> None:
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size, compresslevel=level,
                                   exclude_content_types=EXCLUDED)
        self.app = self.gzip  # the next layer, as every middleware here names it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Compress through GZipMiddleware and re-tag what it compressed."""
        if scope["type"] != "http":
            await self.gzip(scope, receive, send)
            return

        asked = Headers(scope=scope).get("if-none-match", "")

        async def retag(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                etag = headers.get("etag")
                if etag and etag.endswith('"'):
                    gz = etag[:-1] + GZIP_SUFFIX
                    # RFC 9110 8.8.3: a strong tag names one exact byte sequence; gzip makes another.
                    # A 304 names the representation the client holds, which may be the gzipped one.
                    zipped = headers.get("content-encoding") == "gzip"
                    if zipped or (message["status"] == 304 and gz in asked):
                        headers["etag"] = gz
            await send(message)

        await self.gzip(scope, receive, retag)
