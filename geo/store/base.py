"""The interface every project store implements, and what each implementation must guarantee.

A store holds the features of the `projects` collection. Reads come from `snapshot()`, an immutable
version; writes are explicit methods, `add` (and `add_many`, several in one write), `replace` and
`delete`, which take whole features (the store knows nothing of the project rules: the route builds and
checks the new version first).

Every implementation (the GeoJSON file with its journal, geo.store.geojson_file; PostgreSQL with PostGIS,
geo.store.postgis) must
guarantee:

- **Reads never wait for writers.** `snapshot()` returns the last complete version, whatever a writer
  is doing; a version is never seen half-written.
- **Writes are atomic and serialised.** A write changes the store as a whole or not at all, and writes
  to one store, from any number of processes, happen one at a time, each on the latest version (a
  store that reads a cache re-reads what changed before it writes), so no acknowledged write is lost.
- **Durable before return.** When a write method returns, the change survives a crash or power cut.
  When it raises, nothing was changed.
- **If-Match is compared under the lock.** `replace` and `delete` test `if_match` against the ETag of
  the feature as it is at the moment of writing, in the same critical section as the write (never on a
  snapshot taken earlier), so two writers holding one ETag cannot both succeed. The test is
  `check_write` below, on the ETag `etag_of` gives: the same one GET sends
  (geo.http.conditional.feature_etag).
- **Ids are kept.** `add` and `add_many` never overwrite an existing id; `replace` never changes a
  feature's id; none of them reorders the other features. New ids come from the caller
  (geo.projects.new_id, random), so a store need not remember the ids of deleted features.
- **The same errors.** StoreBusy (503, Retry-After) when the write lock is not had in time;
  StoreWriteFailed (503) when the store cannot be read or written; NotFound and PreconditionFailed as
  `check_write` decides. All are geo.errors problems: a route lets them through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import orjson

from geo.errors import NotFound, PreconditionFailed
from geo.http.conditional import check_if_match, feature_etag
from geo.query.featuretable import FeatureTable

# A GeoJSON Feature as parsed JSON (its members' values are any JSON value).
Feature = dict[str, Any]
# Seconds a client is asked to wait (Retry-After) when a write found the store busy.
RETRY_AFTER_S = "2"


def etag_of(feature: Feature) -> str:
    """The ETag of a stored feature: what GET sends for it and what If-Match is compared with."""
    return feature_etag(orjson.dumps(feature))


def check_write(fid: str, current: Feature | None, if_match: str | None) -> Feature:
    """The feature a replace or delete of `fid` writes over (`current`, None when there is none), once
    the write may go ahead.

    Raises NotFound (absent, no If-Match) or PreconditionFailed (If-Match given, and the feature is
    absent or its ETag is not one that `if_match` names). An absent feature fails any If-Match, even
    `*`: the condition is false when there is no current representation (RFC 9110 13.1.1), and Part 4
    (/req/create-replace-delete/put-rid-exception B) asks for 412.
    """
    if current is None and if_match is None:
        raise NotFound(f"There is no project {fid!r}.")
    if current is None:
        raise PreconditionFailed(
            f"There is no project {fid!r}, so `If-Match` cannot hold; nothing was written (PUT does not "
            "create projects: POST to the items).",
            errors=[{"field": "If-Match", "message": "the feature does not exist"}])
    check_if_match(if_match, etag_of(current))
    return current


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
        """Store a new feature, its `id` already set, after the others; return it as stored.

        Raises StoreBusy (lock not had in time), StoreWriteFailed (store unreadable or unwritable), or
        ValueError when the id exists (a caller's bug: ids come from geo.projects.new_id).
        """
        ...

    def add_many(self, features: Sequence[Feature]) -> list[Feature]:
        """Store new features, their `id`s already set and unique, after the others and in order, in ONE
        atomic, durable write: all of them are stored or none (after a crash at any moment too), and
        other store objects see them appear together, as one new version. Return them as stored.

        An empty list writes nothing. Raises ValueError when an id exists, repeats, or an item is not a
        feature (nothing stored), StoreBusy, StoreWriteFailed (DatabaseUnavailable is one) as `add` does.
        """
        ...

    def replace(self, fid: str, feature: Feature, if_match: str | None = None) -> Feature:
        """Make `feature` (whose `id` is `fid`) the stored version of `fid`; return it as stored.

        `if_match` is an If-Match value (entity tags, or `*`), compared under the lock with the current
        ETag. Raises NotFound (no such feature, no If-Match), PreconditionFailed (If-Match given and
        the feature is missing or has another ETag), StoreBusy, StoreWriteFailed, or ValueError when
        `feature["id"]` is not `fid`.
        """
        ...

    def delete(self, fid: str, if_match: str | None = None) -> None:
        """Remove feature `fid`.

        Raises NotFound, PreconditionFailed, StoreBusy or StoreWriteFailed, as `replace` does.
        """
        ...

    def load(self, features: Iterable[Feature]) -> int:
        """Store `features`, ids and order kept, into this EMPTY store in one atomic, durable write;
        return how many. Raises ValueError (nothing stored) when the store is not empty or an id repeats.
        """
        ...

    def close(self) -> None:
        """Release what the store holds."""
        ...
