"""A fast lane for the busiest request, GET /collections/{id}/items, around FastAPI's own routing.

FastAPI spends most of an item request resolving its dozen query parameters. For a request whose
parameters are all well-formed, this middleware parses them directly and calls the very same
endpoint function, so the answer is identical. Anything unusual (an unknown or repeated parameter,
a value FastAPI would refuse, any error at all) falls through to FastAPI, which answers it, error
documents included, exactly as it always did.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from geo.catalogue import Catalogue
from geo.errors import GeoError
from geo.query import PARAMETERS, filters_from
from geo.routers.features import items
from geo.settings import Settings

ITEMS = re.compile(r"^/collections/([^/]+)/items$")
OTHERS = frozenset({"limit", "offset", "f"})


def _arguments(query: str) -> dict[str, Any] | None:
    """The endpoint's arguments from a query string, or None when FastAPI should judge it."""
    pairs = parse_qsl(query, keep_blank_values=True)
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        return None  # a repeated parameter: FastAPI's rule (the last wins) applies there
    params = dict(pairs)
    if any(name not in PARAMETERS and name not in OTHERS for name in params):
        return None
    limit, offset, fmt = params.get("limit"), params.get("offset", "0"), params.get("f")
    if (limit is not None and not (limit.isdigit() and int(limit) >= 1)) or not offset.isdigit():
        return None
    if fmt not in (None, "json", "html"):
        return None
    return {"filters": {name: params.get(name) for name in PARAMETERS},
            "limit": None if limit is None else int(limit), "offset": int(offset), "f": fmt}


class ItemsFastLane:
    """Answer well-formed GET item-page requests without FastAPI's parameter machinery."""

    def __init__(self, app: ASGIApp, catalogue: Catalogue, settings: Settings) -> None:
        self.app = app
        self.catalogue = catalogue
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request here when it qualifies, else pass it on."""
        match = ITEMS.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope["method"] != "GET" or match.group(1) not in self.catalogue.collections:
            await self.app(scope, receive, send)
            return
        args = _arguments(scope.get("query_string", b"").decode("latin-1"))
        if args is None:
            await self.app(scope, receive, send)
            return
        try:
            coll = self.catalogue.get(match.group(1))
            filters = filters_from(args["filters"])
            response = await items(Request(scope, receive), coll, self.settings, filters,
                                   args["limit"], args["offset"], args["f"])
        except GeoError:
            # Let FastAPI's route raise it again and answer with its problem document.
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)
