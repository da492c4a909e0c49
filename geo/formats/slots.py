"""At most N expensive downloads are built at once; the rest wait a little, then get a 503.

A filtered GeoPackage or KML of a large layer takes a CPU for seconds, and each distinct filter is
built anew: without a bound, a handful of clients could keep every core busy. Waiting is polled on
the event loop (no thread is held while a download waits), and the slot is held only while the file
is written, not while a slow client reads it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from geo.errors import ExportsBusy

POLL_S = 0.05


class ExportSlots:
    """`size` slots; `slot()` takes one within `wait_s` seconds or raises ExportsBusy (503)."""

    def __init__(self, size: int, wait_s: float, retry_after_s: int = 5) -> None:
        self.size = size
        self.wait_s = wait_s
        self.retry_after_s = retry_after_s
        # A thread-safe counter, not an event-loop primitive: apps are driven from several loops in
        # tests, and the release may happen on another thread.
        self._free = threading.BoundedSemaphore(size)
        self.waiting = 0  # downloads waiting for a slot right now

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the duration of the block."""
        deadline = time.monotonic() + self.wait_s
        self.waiting += 1
        try:
            while not self._free.acquire(blocking=False):
                if time.monotonic() >= deadline:
                    raise ExportsBusy(
                        f"{self.size} downloads are being built right now, the most this service builds "
                        f"at once; try again in {self.retry_after_s} seconds.",
                        headers={"Retry-After": str(math.ceil(self.retry_after_s))})
                await anyio.sleep(POLL_S)
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self._free.release()
