"""One error hierarchy for the service; `geo.http.problems` maps it to RFC 9457 responses."""

from __future__ import annotations

from typing import Any, Self


class GeoError(Exception):
    """Base of every error the service reports to a client."""

    status: int = 500
    title: str = "Internal error"
    type_slug: str = "internal"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}

    @classmethod
    def about(cls, field: str, message: str) -> Self:
        """This error about one field: the detail reads `field: message` and `errors` names the field."""
        return cls(f"{field}: {message}", errors=[{"field": field, "message": message}])


class InvalidInput(GeoError):
    """The request is malformed: a parameter or body field is wrong (the fields say which)."""

    status, title, type_slug = 400, "Invalid input", "invalid-input"


class InvalidFeature(GeoError):
    """A feature body is well-formed JSON but breaks the project rules."""

    status, title, type_slug = 422, "Invalid feature", "invalid-feature"


class NotFound(GeoError):
    """The collection or feature does not exist."""

    status, title, type_slug = 404, "Not found", "not-found"


class Unauthorized(GeoError):
    """A write came without a valid API key."""

    status, title, type_slug = 401, "Unauthorized", "unauthorized"


class Forbidden(GeoError):
    """A valid API key whose role does not allow this request (an editor's DELETE)."""

    status, title, type_slug = 403, "Forbidden", "forbidden"


class WritesDisabled(GeoError):
    """No API key is configured, so the service refuses every write."""

    status, title, type_slug = 403, "Writes are disabled", "writes-disabled"


class PayloadTooLarge(GeoError):
    """The request body is over the configured limit."""

    status, title, type_slug = 413, "Payload too large", "payload-too-large"


class UnsupportedMediaType(GeoError):
    """The request body is not JSON."""

    status, title, type_slug = 415, "Unsupported media type", "unsupported-media-type"


class RequestTimeout(GeoError):
    """The client did not send the whole request body within the configured time."""

    status, title, type_slug = 408, "Request timeout", "request-timeout"


class ExportsBusy(GeoError):
    """Every export slot is taken by other downloads being built; the client may retry shortly."""

    status, title, type_slug = 503, "Service busy", "exports-busy"


class LayerUnavailable(GeoError):
    """A layer's source data cannot be had right now; the detail says how to fix it."""

    status, title, type_slug = 503, "Layer unavailable", "layer-unavailable"


class StoreWriteFailed(GeoError):
    """The store could not be written (disk full, read-only, I/O error); nothing was changed."""

    status, title, type_slug = 503, "Store unavailable", "store-write-failed"


class StoreFull(StoreWriteFailed):
    """The disk that holds the store is full; nothing was changed, reads go on, Retry-After says when to
    try again."""

    status, title, type_slug = 503, "Store full", "store-full"


class DatabaseUnavailable(StoreWriteFailed):
    """The PostGIS store's database cannot be reached; nothing was written, reads go on from the last
    snapshot, and Retry-After says when to try again."""

    status, title, type_slug = 503, "Database unavailable", "database-unavailable"


class PreconditionFailed(GeoError):
    """`If-Match` named a version of the resource that is no longer current."""

    status, title, type_slug = 412, "Precondition failed", "precondition-failed"


class StoreBusy(GeoError):
    """Other writes kept the store (its lock held past the configured timeout) or the feature (changed
    again each time this write was prepared) busy; nothing was changed, and Retry-After says when to retry."""

    status, title, type_slug = 503, "Store busy", "store-busy"


class KeysUnavailable(GeoError):
    """The API keys file is missing, unreadable or empty, so no write can be authorised right now."""

    status, title, type_slug = 503, "API keys unavailable", "keys-unavailable"


class TooManyRequests(GeoError):
    """This key sent writes faster than GEO_WRITE_RATE_PER_KEY allows."""

    status, title, type_slug = 429, "Too many requests", "too-many-requests"


class ReadOnly(GeoError):
    """The collection cannot be written."""

    status, title, type_slug = 405, "Method not allowed", "read-only"


class StoreCorrupt(Exception):
    """The store on disk cannot be read; the service refuses to start rather than overwrite it."""


class StoreUnavailable(Exception):
    """The configured store cannot be opened; the service refuses to start."""


class Gone(GeoError):
    """The project was deleted: its id is kept (never reused) and its history stays readable."""

    status, title, type_slug = 410, "Gone", "gone"


class Conflict(GeoError):
    """The request conflicts with the project's state (a restore of a project that is not deleted)."""

    status, title, type_slug = 409, "Conflict", "conflict"


class IdempotencyKeyReused(GeoError):
    """An Idempotency-Key came again with a different request body (draft-ietf-httpapi-idempotency-key)."""

    status, title, type_slug = 422, "Idempotency key reused", "idempotency-key-reused"
