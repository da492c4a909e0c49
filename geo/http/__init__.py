"""HTTP plumbing, one module each: plain ASGI middleware (CORS, security headers, gzip, HEAD, the
response cache), conditional requests (ETags and 304s), problem responses, the request-body reader and the
uvicorn protocol that bounds request heads. Here: `first_values`, the header lookup the middleware share."""

from __future__ import annotations

from collections.abc import Iterable


def first_values(headers: Iterable[tuple[bytes, bytes]], *names: bytes) -> list[bytes | None]:
    """The first value of each of `names` (lower case, as ASGI gives header names) in one pass over a
    header list, as Starlette's `Headers.get` reads them (None: absent). Each middleware used to build
    a `Headers` and look each name up in turn, a pass (and a KeyError when absent) per name."""
    found: list[bytes | None] = [None] * len(names)
    missing = len(names)
    for name, value in headers:
        if name in names:
            at = names.index(name)
            if found[at] is None:
                found[at] = value
                missing -= 1
                if not missing:
                    break
    return found
