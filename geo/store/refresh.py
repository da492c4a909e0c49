"""ASGI middleware that brings the project store up to date off the event loop, before each request.

Another process's write is noticed with a stat of the store's journal (cheap, on the loop); its new
lines are read and applied in a worker thread while the loop serves other requests. Routes then take
the store's snapshot without doing any I/O beyond that stat.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from geo.store.base import ProjectStore


class StoreRefresh:
    """Re-read a store another process changed, in a thread, before the request goes on."""

    def __init__(self, app: ASGIApp, store: ProjectStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refresh when stale, then pass the request on unchanged."""
        if scope["type"] == "http" and self.store.stale():
            await run_in_threadpool(self.store.refresh)
        await self.app(scope, receive, send)
