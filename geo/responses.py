"""Response classes that serialise with orjson and carry the right media types."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

GEOJSON = "application/geo+json"
PROBLEM = "application/problem+json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"


def dumps(content: Any) -> bytes:
    """Serialise to JSON bytes (non-ASCII kept, numpy and datetimes handled)."""
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


class JSONResponse(Response):
    """`application/json` rendered by orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialise the content, passing bytes through untouched (pre-serialised pages)."""
        return content if isinstance(content, bytes) else dumps(content)


class GeoJSONResponse(JSONResponse):
    """`application/geo+json`."""

    media_type = GEOJSON


class ProblemResponse(JSONResponse):
    """RFC 9457 problem details."""

    media_type = PROBLEM
