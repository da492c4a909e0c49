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
- **Every change is kept** (geo.store.changes): each write records, in the same atomic, durable step,
  one `Change` per project it touched, numbered in commit order, with the key's name (`meta.by`). The
  record outlives compaction and is the source of `history`, `changes` (the feed), soft delete and
  idempotent adds. A deleted project leaves the features but not the record: `deleted` finds it,
  `restore` brings it back, and its id is never used again (`add` refuses an id the record knows).
- **The same errors.** StoreBusy (503, Retry-After) when the write lock is not had in time;
  StoreWriteFailed (503) when the store cannot be read or written; NotFound and PreconditionFailed as
  `check_write` decides. All are geo.errors problems: a route lets them through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import orjson

from geo.errors import NotFound, PreconditionFailed
from geo.http.conditional import check_if_match, feature_etag
from geo.query.featuretable import FeatureTable
from geo.store.changes import Change, Replayed, WriteMeta

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

    def add(self, feature: Feature, meta: WriteMeta | None = None) -> Feature:
        """Store a new feature, its `id` already set, after the others; return it as stored.

        When `meta.idempotency_key` was recorded for the same `meta.by` within IDEMPOTENCY_WINDOW_S,
        nothing is written and Replayed names the project the first add made (checked under the lock:
        two concurrent adds with one key store one project). Raises StoreBusy (lock not had in time),
        StoreWriteFailed (store unreadable or unwritable), or ValueError when the id exists or existed
        (a caller's bug: ids come from geo.projects.new_id and are never reused).
        """
        ...

    def add_many(self, features: Sequence[Feature], meta: WriteMeta | None = None) -> list[Feature]:
        """Store new features, their `id`s already set and unique, after the others and in order, in ONE
        atomic, durable write: all of them are stored or none (after a crash at any moment too), and
        other store objects see them appear together, as one new version. Return them as stored.

        An empty list writes nothing. Raises ValueError when an id exists, existed, repeats, or an item is
        not a feature (nothing stored), StoreBusy, StoreWriteFailed (DatabaseUnavailable is one) as `add`
        does. `meta.idempotency_key` is not used here.
        """
        ...

    def idempotent(self, meta: WriteMeta) -> Replayed | None:
        """What an `add` with `meta` would raise as Replayed now (its Idempotency-Key was seen for the same
        `by` within the window), else None: a read, without the lock, so a retry is answered before the
        duplicate guard (whose 409 it would otherwise meet). Blocking: call it from a thread."""
        ...

    def replace(self, fid: str, feature: Feature, if_match: str | None = None,
                meta: WriteMeta | None = None) -> Feature:
        """Make `feature` (whose `id` is `fid`) the stored version of `fid`; return it as stored.

        `if_match` is an If-Match value (entity tags, or `*`), compared under the lock with the current
        ETag. Raises NotFound (no such feature, no If-Match), PreconditionFailed (If-Match given and
        the feature is missing or has another ETag), StoreBusy, StoreWriteFailed, or ValueError when
        `feature["id"]` is not `fid`. The change is recorded as `status` when the status changed.
        """
        ...

    def delete(self, fid: str, if_match: str | None = None, meta: WriteMeta | None = None) -> None:
        """Remove feature `fid` from the features; the record keeps it (soft delete: see `restore`).

        Raises NotFound, PreconditionFailed, StoreBusy or StoreWriteFailed, as `replace` does.
        """
        ...

    def restore(self, fid: str, meta: WriteMeta | None = None) -> Feature:
        """Bring deleted `fid` back, as it was when deleted, after the others; return it.

        Raises NotFound (never existed), geo.errors.Conflict (it exists now), StoreBusy, StoreWriteFailed.
        """
        ...

    def changes(self, since: int = 0, limit: int = 100) -> list[Change]:
        """Up to `limit` recorded changes with `seq > since`, in order (blocking I/O: call from a thread)."""
        ...

    def seq_before(self, at: datetime) -> int:
        """The last seq recorded before time `at` (0 when none): `changes(since=...)` from it lists the
        changes made at or after `at`."""
        ...

    def history(self, fid: str) -> list[Change]:
        """Every recorded change of `fid`, in order (empty when it never existed)."""
        ...

    def deleted(self, fid: str) -> Change | None:
        """The change that deleted `fid` when it is deleted now, else None."""
        ...

    def load(self, features: Iterable[Feature]) -> int:
        """Store `features`, ids and order kept, into this EMPTY store in one atomic, durable write;
        return how many. Raises ValueError (nothing stored) when the store is not empty or an id repeats.
        """
        ...

    def close(self) -> None:
        """Release what the store holds."""
        ...
