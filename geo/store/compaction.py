"""When the store's journal is folded into the store file: a background thread that decides.

The thread wakes when the journal has grown past GEO_JOURNAL_MAX_BYTES (a write tells it) or when
the oldest change not yet folded in has waited GEO_JOURNAL_MAX_AGE_S, and asks the store to compact
(geo.store.geojson_file.GeoJSONFileStore.compact: the folding itself, atomic and safe against other
processes; geo.store.storefile.encode_table: the new file's bytes). A compaction that fails (a full
disk) is logged and tried again later; the journal and the old file stay as they were. The thread
holds the store only weakly: a store dropped without `close` lets its thread end.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Protocol

from geo.errors import GeoError

log = logging.getLogger(__name__)

# The longest a failed compaction waits before it is tried again.
RETRY_MAX_S = 30.0


class Compactable(Protocol):
    """What the thread needs of a store."""

    def pending(self) -> tuple[int, float | None]:
        """Bytes of changes not yet folded in, and when (time.monotonic) the oldest of them was seen."""
        ...

    def compact(self) -> bool:
        """Fold the journal into the store file; False when there was nothing to do here."""
        ...


class Compactor:
    """A daemon thread that compacts a store when its journal is large or old enough."""

    def __init__(self, store: Compactable, max_bytes: int, max_age_s: float) -> None:
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._store = weakref.ref(store)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._retry_at = 0.0
        self._thread = threading.Thread(target=self._run, name="store-compaction", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        """Look at the journal now (a write made it larger)."""
        self._wake.set()

    def stop(self) -> None:
        """End the thread, waiting for a compaction in progress to finish."""
        self._stop.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _due(self, size: int, since: float | None, now: float) -> bool:
        if now < self._retry_at or size == 0:
            return False
        return size >= self.max_bytes or (since is not None and now - since >= self.max_age_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            store = self._store()
            if store is None:
                return
            size, since = store.pending()
            now = time.monotonic()
            if self._due(size, since, now):
                retry = now + max(1.0, min(RETRY_MAX_S, self.max_age_s))
                try:
                    if not store.compact():
                        # Another process is compacting or just did: look again shortly.
                        self._retry_at = now + 1.0
                except (OSError, GeoError) as exc:  # a full disk, a busy lock: expected, said plainly
                    self._retry_at = retry
                    log.error("compaction of the project store failed (%s); the store file and its journal "
                              "are as they were, and it will be tried again", exc)
                except Exception:  # a background thread must outlive any failure
                    self._retry_at = retry
                    log.exception("compaction of the project store failed; the store file and its journal "
                                  "are as they were, and it will be tried again")
                continue
            # Wake at the age limit of the oldest change (or a retry), or when a write nudges.
            wait = self.max_age_s if since is None else since + self.max_age_s - now
            wait = max(wait, self._retry_at - now, 0.05)
            del store  # hold the store only weakly while asleep
            self._wake.wait(wait)
            self._wake.clear()
