"""The interface every project store implements."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from geo.featuretable import FeatureTable

Feature = dict[str, Any]
# A change computes the next version of one feature from the current one (None when absent).
Change = Callable[[Feature | None], Feature | None]

PROJECT_FILTERS = ("status", "category", "province")
PROJECT_TEMPORAL = ("start_date", "end_date")


@runtime_checkable
class ProjectStore(Protocol):
    """Where projects live. Reads come from an immutable snapshot; writes are atomic and durable."""

    editable: bool

    def snapshot(self) -> FeatureTable:
        """The last complete version of the features; never waits for a writer.

        Off the event loop it is brought up to date first if another process changed the store; on the
        event loop it does nothing that blocks (see `StoreRefresh`).
        """
        ...

    def stale(self) -> bool:
        """Whether another process changed the store since the snapshot was taken (cheap, non-blocking)."""
        ...

    def refresh(self) -> FeatureTable:
        """Bring the snapshot up to date (blocking I/O: call it from a thread) and return it."""
        ...

    def add(self, feature: Feature) -> Feature:
        """Store a new feature (its `id` already set) and return it as stored."""
        ...

    def change(self, fid: str, change: Change) -> Feature | None:
        """Apply `change` to feature `fid` under the store's lock; None from it deletes the feature."""
        ...

    def close(self) -> None:
        """Release what the store holds."""
        ...
