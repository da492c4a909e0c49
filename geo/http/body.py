"""Read a request body within the size limit and the time limit (as bytes, or as JSON)."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import Request
from starlette.requests import ClientDisconnect

from geo.errors import InvalidInput, PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from geo.validation import parse_json

JSON_TYPES = ("application/json", "application/geo+json", "application/merge-patch+json")


async def read_bytes(request: Request, limit: int, timeout_s: float | None = None, *, what: str = "body",
                     setting: str = "") -> bytes:
    """The body's bytes; 413 past `limit` bytes (checked while streaming, and first on a declared length),
    and 408 when the whole body has not arrived within `timeout_s` (default: the app's GEO_BODY_TIMEOUT_S).

    `what` names the body in the messages ("body", "file"); `setting`, the setting that sets the limit.
    """
    declared = request.headers.get("content-length")
    too_big = f"The {what} is larger than the limit of {limit:,} bytes{f' ({setting})' if setting else ''}."
    if declared and declared.isascii() and declared.isdigit() and (
            len(declared) > 18 or int(declared) > limit):
        raise PayloadTooLarge(too_big)
    if timeout_s is None:
        timeout_s = request.app.state.settings.body_timeout_s
    chunks: list[bytes] = []
    size = 0
    # A total deadline, not one per chunk: a client trickling a byte a second must not keep the
    # request (and the connection) open for as long as it likes.
    with anyio.move_on_after(timeout_s) as deadline:
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(too_big)
                chunks.append(chunk)
        except ClientDisconnect:
            # Nobody is left to answer; a problem (not a logged traceback) ends the request quietly.
            raise InvalidInput(f"The client closed the connection before sending the whole {what}.") from None
    if deadline.cancelled_caught:
        # The rest of the body may still come: close the connection rather than read it as a request.
        raise RequestTimeout(f"The request {what} did not arrive within {timeout_s:g} seconds.",
                             headers={"Connection": "close"})
    return b"".join(chunks)


async def read_json(request: Request, limit: int, timeout_s: float | None = None) -> Any:
    """The parsed body; 413 past `limit` bytes (checked while streaming), 415 if not JSON, and 408 when
    the whole body has not arrived within `timeout_s` (default: the app's GEO_BODY_TIMEOUT_S)."""
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media not in JSON_TYPES:
        raise UnsupportedMediaType(f"Send the feature as JSON ({', '.join(JSON_TYPES)}), not {media!r}.")
    return parse_json(await read_bytes(request, limit, timeout_s))
