"""uvicorn's HTTP protocol with two bounds it lacks: the request head's size and the time it may take.

uvicorn (0.54, httptools) accepts request headers of any size (a 10 MB header is read whole into
memory) and starts no timer until the first response: a client that connects and sends nothing,
or sends its headers a byte at a time (slowloris), keeps its connection, and a place under
`--limit-concurrency`, for as long as it likes. `geo serve` runs this protocol instead: past
uvicorn's `h11_max_incomplete_event_size` bytes of request line and headers (the limit uvicorn
applies with h11, here applied to httptools too) the request gets uvicorn's own 400, and a head not
complete within `head_timeout_s` of its first byte (or of the connection opening) gets a 408 and
the connection is closed. Bodies are bounded by the app (geo.http.body), downloads by geo.routers.downloads.

A module-level class, configured through uvicorn's config only, so that worker processes (which
receive the config pickled) run it too.
"""

from __future__ import annotations

import asyncio
from typing import Any

# The parser callbacks overridden here (on_message_begin, on_url, on_header, on_headers_complete)
# are httptools' own callback names, which uvicorn's protocol implements.
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD = 64 * 1024
HEAD_TIMEOUT_S = 10.0
_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: 30\r\nconnection: close\r\n\r\nRequest headers took too long.")


class HeadTooLarge(Exception):
    """The request line and headers are over the limit (uvicorn answers the parser error with 400)."""


class GuardedHttpTools(HttpToolsProtocol):
    """HttpToolsProtocol with a size limit and a deadline on each request head."""

    head_timeout_s = HEAD_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_head: int = self.config.h11_max_incomplete_event_size or MAX_HEAD
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.logger.warning("Closed a connection whose request headers took over %g s.",
                                self.head_timeout_s)
            self.transport.write(_TIMEOUT)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock: a connection that never sends a request is closed like a slow one."""
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock."""
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        """A new request head begins: count its bytes, within the deadline (between requests no
        deadline runs: uvicorn's keep-alive timeout closes an idle connection)."""
        super().on_message_begin()
        self._head_bytes = 0
        self._arm()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head:
            raise HeadTooLarge(f"request head over {self.max_head} bytes")

    def on_url(self, url: bytes) -> None:
        """Part of the request line."""
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header (as the parser delivers it)."""
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The head is in: the deadline no longer applies (the app bounds the body)."""
        self._disarm()
        super().on_headers_complete()
