"""gzip for clients that ask, without breaking validators or squeezing what is already compressed.

A request that asks for gzip goes through Starlette's GZipMiddleware. One that does not (most API
clients) gets what Starlette's identity responder gives it, `Vary: Accept-Encoding` on a response that
could have been compressed, from `Identity` here: the same rules without the set-up Starlette repeats
on every request (normalising the excluded types, parsing the headers twice), which cost an item page
several microseconds.
"""

from __future__ import annotations

from functools import lru_cache

from starlette.datastructures import MutableHeaders
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo.http import first_values
from geo.http.conditional import GZIP_SUFFIX

# GeoParquet is zstd-compressed inside: gzip would cost CPU for nothing.
EXCLUDED = (*DEFAULT_EXCLUDED_CONTENT_TYPES, "application/vnd.apache.parquet")
# As GZipMiddleware normalises its exclusions (media type only, lower case).
_EXCLUDED = frozenset(t.partition(";")[0].strip().lower() for t in EXCLUDED)


@lru_cache(maxsize=256)
def _excluded(content_type: bytes | None) -> bool:
    """Whether GZipMiddleware leaves this content type alone (its own test, on the media type; kept per
    value: a service sends few)."""
    media_type = (content_type or b"").decode("latin-1").partition(";")[0].strip().lower()
    kinds = {media_type, media_type.partition("/")[0] + "/*"}
    if media_type.startswith("application/grpc+"):
        kinds.add("application/grpc")
    return not kinds.isdisjoint(_EXCLUDED)


def add_vary(headers: list[tuple[bytes, bytes]], value: bytes) -> None:
    """`MutableHeaders(raw=headers).add_vary_header(value)` without building one: every `vary` value and
    `value`, comma-joined, in the place of the first `vary` (the others dropped), or appended."""
    values = [v for k, v in headers if k == b"vary"]
    if not values:
        headers.append((b"vary", value))
        return
    first = next(i for i, (k, _) in enumerate(headers) if k == b"vary")
    headers[first] = (b"vary", b", ".join([*values, value]))
    if len(values) > 1:
        headers[first + 1:] = [h for h in headers[first + 1:] if h[0] != b"vary"]


class Identity:
    """Starlette's IdentityResponder for one response: the start message is held back until the first
    body shows whether the response could have been compressed (then it says `Vary: Accept-Encoding`);
    a response already encoded, partial (206) or of an excluded type passes as it is. Its start message
    is re-tagged as Compression re-tags (`_retag`; `asked` is the request's If-None-Match)."""

    __slots__ = ("asked", "initial", "minimum_size", "passing", "retag", "send", "started")

    def __init__(self, send: Send, minimum_size: int, asked: str = "") -> None:
        self.send = send
        self.minimum_size = minimum_size
        self.asked = asked
        self.initial: Message = {}
        self.passing = False
        self.retag = False
        self.started = False

    async def __call__(self, message: Message) -> None:
        """Send `message` on, as IdentityResponder.send_with_compression would."""
        kind = message["type"]
        if kind == "http.response.start":
            self.initial = message
            message.setdefault("headers", [])
            content_type, encoding, etag = first_values(message["headers"], b"content-type",
                                                        b"content-encoding", b"etag")
            self.passing = encoding is not None or message["status"] == 206 or _excluded(content_type)
            # What `_retag` would change: only a tagged response that is gzipped or a 304.
            self.retag = etag is not None and (encoding == b"gzip" or message["status"] == 304)
            if self.passing:
                await self._start()
        elif kind in ("http.response.body", "http.response.pathsend") and self.passing:
            await self.send(message)
        elif kind == "http.response.body" and not self.started:
            self.started = True
            body = message.get("body", b"")
            if len(body) >= self.minimum_size or message.get("more_body", False):
                add_vary(self.initial["headers"], b"Accept-Encoding")
            await self._start()
            await self.send(message)
        elif kind == "http.response.pathsend":
            await self._start()
            await self.send(message)
        elif kind == "http.response.body":
            message["body"] = message.get("body", b"")  # as Starlette's responder leaves it
            await self.send(message)
        elif kind in ("http.response.early_hint", "http.response.trailers"):
            await self.send(message)

    async def _start(self) -> None:
        if self.retag:
            _retag(self.initial, self.asked)
        await self.send(self.initial)


class Compression:
    """Starlette's GZipMiddleware, plus a distinct strong ETag for the gzipped representation."""

    def __init__(self, app: ASGIApp, minimum_size: int = 1024, level: int = 5) -> None:
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size, compresslevel=level,
                                   exclude_content_types=EXCLUDED)
        self.app = self.gzip  # the next layer, as every middleware here names it
        self.inner = app
        self.minimum_size = minimum_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Compress through GZipMiddleware and re-tag what it compressed."""
        if scope["type"] != "http":
            await self.gzip(scope, receive, send)
            return
        encodings, condition = first_values(scope["headers"], b"accept-encoding", b"if-none-match")
        asked = "" if condition is None else condition.decode("latin-1")
        if encodings is None or b"gzip" not in encodings:
            await self.inner(scope, receive, Identity(send, self.minimum_size, asked))
            return

        async def retag(message: Message) -> None:
            if message["type"] == "http.response.start":
                _retag(message, asked)
            await send(message)

        await self.gzip(scope, receive, retag)


def _retag(message: Message, asked: str) -> None:
    """Give a gzipped response's strong ETag its own tag (RFC 9110 8.8.3: a strong tag names one exact
    byte sequence; gzip makes another). A 304 names the representation the client holds, which may be
    the gzipped one."""
    etag_raw, encoding = first_values(message.get("headers", []), b"etag", b"content-encoding")
    if etag_raw is None or (encoding != b"gzip" and message["status"] != 304):
        return  # nothing to re-tag: no tag, or neither gzipped nor a 304
    etag = etag_raw.decode("latin-1")
    if not etag.endswith('"'):
        return
    gz = etag[:-1] + GZIP_SUFFIX
    if encoding == b"gzip" or (message["status"] == 304 and gz in asked):
        headers = MutableHeaders(scope=message)
        headers["etag"] = gz
