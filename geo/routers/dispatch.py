"""`DirectDispatch`: the innermost middleware, which answers the app's first GET routes itself.

Between the app's middleware and a route's handler FastAPI runs eight layers per request: its exception
middleware, its exit stack, the router's loop, the route's `handle`, the body limit, and the request
wrapper with two more exit stacks and an exception wrapper. For the items (a new page every request, see
the README's performance section) those layers cost about as much as the middleware of the whole app.

`DirectDispatch` tries the routes FastAPI would try first, in its order, as long as they are read-only
`DirectRoute`s (GET only: answering one twice changes nothing): the first that matches the path is
answered by its own handler (`DirectRoute.direct`), and the response sent. Everything else, and any
request whose handler raises (a refused parameter, an unknown collection, a bug), goes through the app
unchanged: FastAPI then answers it as it always does, its exception handlers turning the error into the
problem response. Nothing has been sent by then, because a handler returns its response and does not send
it. A request FastAPI's native telemetry follows goes the whole way too, so its span is named by route.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from geo.routers.direct import DirectRoute

# Where FastAPI's native telemetry keeps a request's span (FastAPI >= 0.165); such requests take the
# whole way, where the router names the span after the route.
TELEMETRY_SCOPE_KEY = "fastapi.telemetry"
READ_ONLY = frozenset({"GET", "HEAD"})


def leading_direct_gets(app: FastAPI) -> tuple[DirectRoute, ...]:
    """The app's first routes, in FastAPI's order, up to the first that is not a GET-only DirectRoute
    with a direct handler (a later route is reached only when none of these matches)."""
    leading: list[DirectRoute] = []
    for route in app.router.routes:
        if (not isinstance(route, DirectRoute) or route.direct is None or not route.methods
                or not route.methods <= READ_ONLY):
            break
        leading.append(route)
    return tuple(leading)


class DirectDispatch:
    """Answers a GET that one of the app's leading DirectRoutes matches without FastAPI's inner layers."""

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self._routes: tuple[DirectRoute, ...] | None = None  # found at the first request: routes come later

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer from a leading DirectRoute, or pass the request on."""
        if scope["type"] != "http" or scope["method"] != "GET" or TELEMETRY_SCOPE_KEY in scope:
            await self.app(scope, receive, send)
            return
        routes = self._routes
        if routes is None:
            routes = self._routes = leading_direct_gets(self.fastapi_app)
        for route in routes:
            match, child_scope = route.matches(scope)
            if match is Match.NONE:
                continue
            if match is not Match.FULL:
                break  # the path is this route's, not the method: FastAPI says what is allowed
            handler = route.direct
            assert handler is not None  # leading_direct_gets keeps only routes that have one
            scope.update(child_scope)  # as the router does (path_params, endpoint, route)
            try:
                response = await handler(Request(scope, receive, send))
            except Exception:
                break  # FastAPI answers it, with its exception handlers
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
