"""A fast lane for the busiest request, GET /collections/{id}/items, around FastAPI's own routing.

FastAPI spends most of an item request resolving its dozen query parameters. For a request whose
parameters are all well-formed, this middleware parses them directly and calls the very same
endpoint function, so the answer is identical. Anything unusual (an unknown or repeated parameter,
a value FastAPI would refuse, a filter the service refuses) falls through to FastAPI, which answers
it, error documents included, exactly as it always did.

Deciding costs a few string checks: `_arguments` never raises, whatever the query string holds, and
it admits a `limit` or `offset` only when the route would read it the same way (`query.is_count`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from geo.catalogue import Catalogue
from geo.errors import GeoError
from geo.query.params import PARAMETERS, filters_from, is_count
from geo.routers.features import items
from geo.settings import Settings

ITEMS = re.compile(r"^/collections/([^/]+)/items$")
OTHERS = frozenset({"limit", "offset", "f"})


def _arguments(query: str) -> dict[str, Any] | None:
    """The endpoint's arguments from a query string, or None when FastAPI should judge it (never raises)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        return None  # a repeated parameter: FastAPI's rule (the last wins) applies there
    params = dict(pairs)
    if any(name not in PARAMETERS and name not in OTHERS for name in params):
        return None
    limit, offset, fmt = params.get("limit"), params.get("offset", "0"), params.get("f")
    # ASCII digits only: str.isdigit() alone admits "²" and Arabic-Indic digits, which int() then
    # refuses or reads differently from the route.
    if (limit is not None and not (is_count(limit) and int(limit) >= 1)) or not is_count(offset):
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
        # `_arguments` never raises (tests/test_fastlane.py feeds it hostile query strings).
        args = _arguments(scope.get("query_string", b"").decode("latin-1"))
        response: Response | None = None
        if args is not None:
            try:
                coll = self.catalogue.get(match.group(1))
                filters = filters_from(args["filters"])
                response = await items(Request(scope, receive), coll, self.settings, filters,
                                       args["limit"], args["offset"], args["f"])
            except GeoError:
                # Let FastAPI's route raise it again and answer with its problem document.
                response = None
        if response is None:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)
