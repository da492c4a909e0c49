"""The permanent record of changes every project store keeps: what the history, soft delete, the changes
feed and idempotent POSTs are read from.

Each acknowledged write leaves one `Change` per project it touched, numbered by `seq` in commit order
(1, 2, 3... with no gaps and never reused), kept for ever. A store's journal or compaction never removes
them: the embedded store keeps them in an SQLite ledger beside its file (geo.store.ledger), the PostGIS
store in its `project_changes` table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

# What happened to a project. `status` is an update whose `status` property changed; `restore` brings a
# deleted project back as it was when deleted.
Op = Literal["create", "update", "status", "delete", "restore"]
OPS: tuple[Op, ...] = ("create", "update", "status", "delete", "restore")
# How long an Idempotency-Key is remembered (at least 24 hours, as the issue and the IETF draft ask).
IDEMPOTENCY_WINDOW_S = 24 * 3600


@dataclass(frozen=True)
class WriteMeta:
    """Who makes a write, and the client's retry key for a POST (never the API key itself)."""

    by: str | None = None  # the key's name
    idempotency_key: str | None = None  # as the client sent it; the store scopes it by `by`
    request_hash: str | None = None  # a digest of the request body, to tell a retry from a reuse


@dataclass(frozen=True)
class Change:
    """One project's change, as the store recorded it."""

    seq: int
    at: datetime  # UTC
    op: Op
    fid: str
    by: str | None
    feature: dict[str, Any] | None  # the project after the change; None for a delete


class Replayed(Exception):  # an outcome to act on, not a failure
    """An `add` whose Idempotency-Key (same `by`) was seen within the window: nothing was written; the
    project that the first request created is `fid`, and `request_hash` the digest that request sent."""

    def __init__(self, fid: str, request_hash: str | None) -> None:
        super().__init__(fid)
        self.fid = fid
        self.request_hash = request_hash


def op_of(before: dict[str, Any] | None, after: dict[str, Any]) -> Op:
    """The op of a write that makes `after` the project that was `before` (None: a new project)."""
    if before is None:
        return "create"
    if before["properties"].get("status") != after["properties"].get("status"):
        return "status"
    return "update"


def scoped_key(meta: WriteMeta | None) -> str | None:
    """The key under which a store remembers `meta`'s Idempotency-Key: one client's keys never meet
    another's."""
    if meta is None or meta.idempotency_key is None:
        return None
    return f"{meta.by or ''}\n{meta.idempotency_key}"
