"""Write access: `Authorization: Bearer <key>` with a key from GEO_API_KEYS."""

from __future__ import annotations

import hmac

from fastapi import Request

from geo.errors import Unauthorized, WritesDisabled
from geo.settings import Settings

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="geo"'}


def require_key(request: Request) -> str:
    """Dependency: the caller's valid key, or a 401/403 problem saying what to do."""
    settings: Settings = request.app.state.settings
    keys = settings.keys()
    if not keys:
        raise WritesDisabled(
            "Writes are disabled because no API key is configured. Start the service with "
            "GEO_API_KEYS=<key>[,<key>...] and send 'Authorization: Bearer <key>'.")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("This write needs 'Authorization: Bearer <key>'.", headers=CHALLENGE)
    token = token.strip()
    # compare_digest on every key: the time taken says nothing about how close a guess was.
    if not any(hmac.compare_digest(token.encode(), k.encode()) for k in keys):
        raise Unauthorized("The API key is not valid.", headers=CHALLENGE)
    return token
