"""`Idempotency-Key` on POST (draft-ietf-httpapi-idempotency-key-header): a client that retries a POST
(after a timeout, a dropped connection, a crash) sends the same key, and the service creates at most one
project and answers every retry with it.

The store remembers each key, scoped by the API key's name, for IDEMPOTENCY_WINDOW_S (24 hours), in its
permanent record of changes, so the promise holds across server processes and restarts; two concurrent
POSTs with one key meet under the store's write lock (geo.store.changes.Replayed). A key sent again
with another body is a client's mistake: 422, nothing written.
"""

from __future__ import annotations

import hashlib

import orjson
from fastapi import Request

from geo.errors import IdempotencyKeyReused, InvalidInput
from geo.store.changes import Replayed

HEADER = "Idempotency-Key"
# Long enough for a UUID or a client's own scheme, short enough to index.
MAX_LENGTH = 255


def key_of(request: Request) -> str | None:
    """The request's Idempotency-Key (the draft sends it as a quoted string; a bare token is taken too),
    or None; 400 naming the header when it is empty, too long or not printable ASCII."""
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    if len(values) > 1:
        raise InvalidInput.about(HEADER, "sent more than once")
    raw = values[0].strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1]
    if not raw or len(raw) > MAX_LENGTH or not all(" " <= c <= "~" for c in raw):
        raise InvalidInput.about(HEADER, f"1 to {MAX_LENGTH} printable ASCII characters, the same on every "
                                         "retry of one request")
    return raw


def request_hash(body: object) -> str:
    """A digest of a request body as parsed (key order and spacing do not matter): tells a retry of the
    same request from a reuse of its key for another."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_replay(replayed: Replayed, digest: str | None) -> str:
    """The id of the project a retry gets, once its body is the first request's (else 422)."""
    if replayed.request_hash is not None and digest is not None and replayed.request_hash != digest:
        raise IdempotencyKeyReused(
            f"{HEADER}: this key was used for another request body (which made project "
            f"{replayed.fid!r}); nothing was written. Use a new key for a new request.",
            errors=[{"field": HEADER, "message": "used before with another body", "made": replayed.fid}])
    return replayed.fid
