"""HTTP validators: strong ETags from content versions, and 304 answers to conditional GETs."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from functools import lru_cache

from fastapi import Request
from starlette.responses import Response

from geo.errors import PreconditionFailed
from geo.http import first_values


def make_etag(*parts: object) -> str:
    """A strong ETag for a representation identified by `parts` (versions, filters, format)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()
    return f'"{digest}"'


def validators(etag: str, last_modified: datetime | None = None) -> dict[str, str]:
    """The `ETag` (and `Last-Modified`) headers for a response."""
    headers = {"ETag": etag}
    if last_modified is not None:
        headers["Last-Modified"] = http_date_of(last_modified)
    return headers


@lru_cache(maxsize=64)
def http_date_of(when: datetime) -> str:
    """An aware datetime as an HTTP-date (IMF-fixdate, GMT). Kept per value: every page of a version
    carries the same one, and formatting it cost a few microseconds per response."""
    return format_datetime(when.astimezone(UTC), usegmt=True)


# geo.http.compression marks a gzipped representation's tag with this suffix (it is another
# representation, so it needs its own strong tag); conditionals treat both tags as the same data.
GZIP_SUFFIX = '-gz"'


def base_etag(tag: str) -> str:
    """The tag without the gzip marker: `"abc-gz"` -> `"abc"`."""
    return tag[: -len(GZIP_SUFFIX)] + '"' if tag.endswith(GZIP_SUFFIX) else tag


def etag_matches(header: str, etag: str) -> bool:
    """Whether an If-None-Match value names `etag` (weak comparison, RFC 9110 13.1.2; gzip marker and
    `W/` ignored), or is `*`."""
    etag = base_etag(etag)
    candidates = [base_etag(c.strip().removeprefix("W/")) for c in header.split(",")]
    return "*" in candidates or etag in candidates


def not_modified(request: Request, etag: str, last_modified: datetime | None = None) -> Response | None:
    """A 304 response when the client's copy is current (If-None-Match, else If-Modified-Since)."""
    # The validators are formatted only for a 304: most requests carry no condition at all. Both
    # headers are found in one pass over the request's (Headers.get would scan once per name).
    if_none_match, since = (None if raw is None else raw.decode("latin-1") for raw in first_values(
        request.scope["headers"], b"if-none-match", b"if-modified-since"))
    if if_none_match is not None:
        if not etag_matches(if_none_match, etag):
            return None
        return Response(status_code=304, headers=validators(etag, last_modified))
    if since and last_modified is not None:
        client_time = http_date(since)
        # To the microsecond, not the whole second the header shows: two versions written within one
        # second share a Last-Modified, and the later must not answer 304 to a client holding the
        # earlier. So a version written at 10.3 s is "not modified since" 11 s, but not since 10 s
        # (clients that revalidate with If-None-Match, as browsers do, get their 304 either way).
        if client_time is not None and last_modified.timestamp() <= client_time:
            return Response(status_code=304, headers=validators(etag, last_modified))
    return None


def http_date(value: str) -> float | None:
    """An HTTP-date as a POSIX timestamp; None when it is not one (the header is then ignored)."""
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:  # "-0000", RFC 5322's unknown zone: HTTP dates are GMT
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def feature_etag(encoded: bytes) -> str:
    """The ETag of one stored feature: a digest of its encoding (other features' writes leave it alone)."""
    return make_etag("feature", encoded)


def check_if_match(header: str | None, etag: str) -> None:
    """Raise PreconditionFailed unless `If-Match` is absent or names `etag` (or `*`)."""
    if header is None:
        return
    # If-Match uses the strong comparison (RFC 9110 13.1.1): a weak tag never matches.
    candidates = [base_etag(c.strip()) for c in header.split(",")]
    if "*" not in candidates and etag not in candidates:
        raise PreconditionFailed(
            f"The feature has changed since you read it (its ETag is now {etag}); GET it again and "
            "re-apply your change.", headers={"ETag": etag},
            errors=[{"field": "If-Match", "message": "does not match the current ETag"}])
