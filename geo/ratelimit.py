"""A per-key write rate limit: one token bucket per API key, in this process.

Each key may write `rate` times per second on average, and in a burst up to `capacity` =
max(1, 2 * rate) writes at once (so a client that was idle for two seconds may send two seconds'
worth at once). Every authorised write attempt takes a token, whether or not it then passes
validation. The buckets live in one process: with N worker processes a key may write up to N times
the rate. Only keys that passed authentication reach a bucket, so their number is bounded by the
configured keys.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class WriteRateLimit:
    """Token buckets by key; `rate` 0 turns the limit off."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, 2.0 * rate)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when counted)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether writes are limited at all."""
        return self.rate > 0

    def take(self, key: str) -> int | None:
        """Take a token for `key`: None when the write may go ahead, else whole seconds to wait (>= 1)."""
        if not self.enabled:
            return None
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - then) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return None
            self._buckets[key] = (tokens, now)
        # Retry-After is in whole seconds: round up so a client that waits that long finds a token.
        return max(1, math.ceil((1.0 - tokens) / self.rate))
