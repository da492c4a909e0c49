"""Read a JSON request body within the size limit."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from geo.errors import PayloadTooLarge, UnsupportedMediaType
from geo.validation import parse_json

JSON_TYPES = ("application/json", "application/geo+json", "application/merge-patch+json")


async def read_json(request: Request, limit: int) -> Any:
    """The parsed body; 413 past `limit` bytes (checked while streaming), 415 if not JSON."""
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media not in JSON_TYPES:
        raise UnsupportedMediaType(f"Send the feature as JSON ({', '.join(JSON_TYPES)}), not {media!r}.")
    declared = request.headers.get("content-length")
    too_big = f"The body is larger than the limit of {limit:,} bytes."
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(too_big)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(too_big)
        chunks.append(chunk)
    return parse_json(b"".join(chunks))
