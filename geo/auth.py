"""Write access: `Authorization: Bearer <key>` with a key from GEO_API_KEYS, within the write rate.

GEO_API_KEYS is either a comma-separated list (each item one key, whatever it starts with) or
`@/path/to/file`: one key per line, whatever characters the line holds (commas included), blank
lines and lines starting with `#` ignored, a UTF-8 byte-order mark stripped. The file is read again
when its (inode, size, mtime) changes, and at least once a second, so a rotated key takes effect
within a second without a restart and without a read per request.
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import Request

from geo.errors import KeysUnavailable, TooManyRequests, Unauthorized, WritesDisabled

if TYPE_CHECKING:
    from geo.ratelimit import WriteRateLimit
    from geo.settings import Settings

log = logging.getLogger(__name__)

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="geo"'}
# Even with an unchanged (inode, size, mtime) the file is read again after this long: an in-place
# rewrite of the same size within one mtime tick would otherwise go unnoticed.
RECHECK_S = 1.0
UNREADABLE = ("Writes are unavailable: the service's API keys file cannot be read. Try again later; "
              "if it persists, tell the operator.")
EMPTY = ("Writes are unavailable for a moment: the service's API keys file holds no keys (it may be "
         "being rewritten). Try again in a second; if it persists, tell the operator.")

Identity = tuple[int, int, int, int]


@dataclass(frozen=True)
class _Reading:
    identity: Identity
    at: float
    keys: frozenset[str]


def parse_key_lines(data: bytes) -> frozenset[str]:
    """The keys in a keys file's bytes: one per line; `#` comments and blank lines skipped.

    Raises UnicodeDecodeError for bytes that are not UTF-8.
    """
    # utf-8-sig drops a byte-order mark (Notepad writes one) that would otherwise join the first key.
    text = data.decode("utf-8-sig")
    # split("\n"), not splitlines(): a key may hold any character, only the newline ends it.
    lines = (line.strip() for line in text.split("\n"))
    return frozenset(line for line in lines if line and not line.startswith("#"))


@functools.lru_cache(maxsize=16)
def parse_key_list(raw: str) -> frozenset[str]:
    """The keys in a comma-separated list (`#` has no special meaning there)."""
    return frozenset(k.strip() for k in raw.split(",") if k.strip())


class KeyFile:
    """The keys held in one file, cached until the file changes."""

    def __init__(self, path: Path, recheck_s: float = RECHECK_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.recheck_s = recheck_s
        self._clock = clock
        self._reading: _Reading | None = None
        self._lock = threading.Lock()
        self._last_problem = ""

    def keys(self) -> frozenset[str]:
        """The current keys; raises KeysUnavailable (503) when the file is missing, unreadable or empty."""
        try:
            st = os.stat(self.path)
            identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            reading = self._reading
            if reading is None or reading.identity != identity or \
                    self._clock() - reading.at >= self.recheck_s:
                reading = self._read(identity)
        except (OSError, UnicodeDecodeError) as exc:
            self._report(f"the API keys file {self.path} cannot be read: {exc}")
            raise KeysUnavailable(UNREADABLE) from None
        if not reading.keys:
            self._report(f"the API keys file {self.path} holds no keys")
            raise KeysUnavailable(EMPTY, headers={"Retry-After": "1"})
        self._last_problem = ""
        return reading.keys

    def _read(self, identity: Identity) -> _Reading:
        with self._lock:  # one reader at a time; the others take its result
            reading = self._reading
            if reading is not None and reading.identity == identity and \
                    self._clock() - reading.at < self.recheck_s:
                return reading
            reading = _Reading(identity, self._clock(), parse_key_lines(self.path.read_bytes()))
            self._reading = reading
            return reading

    def _report(self, problem: str) -> None:
        # Once per change of state: a missing file must not write a log line per request.
        if problem != self._last_problem:
            self._last_problem = problem
            log.warning("%s; writes answer 503 until it is fixed", problem)


_files: dict[str, KeyFile] = {}
_files_lock = threading.Lock()


def configured_keys(spec: str | None) -> frozenset[str]:
    """The keys GEO_API_KEYS names (a list, or `@path`); raises KeysUnavailable for an unusable file."""
    if not spec:
        return frozenset()
    if not spec.startswith("@"):
        return parse_key_list(spec)
    with _files_lock:
        key_file = _files.get(spec)
        if key_file is None:
            key_file = _files[spec] = KeyFile(Path(spec[1:]))
    return key_file.keys()


def writes_configured(settings: Settings) -> bool:
    """Whether writes are on: at least one key is configured and readable (never raises)."""
    try:
        return bool(settings.keys())
    except KeysUnavailable:
        return False


def _matching(token: str, keys: frozenset[str]) -> str | None:
    # Starlette decodes headers as Latin-1: encoding back gives the bytes the client sent, so a
    # UTF-8 key sent as UTF-8 matches. compare_digest on every key: the time taken says nothing
    # about how close a guess was.
    sent = token.encode("latin-1")
    found = None
    for key in keys:
        if hmac.compare_digest(sent, key.encode("utf-8")):
            found = key
    return found


async def require_key(request: Request) -> str:
    """Dependency: the caller's valid key, or a 401/403/429/503 problem saying what to do.

    Async: it only compares keys and takes a token (a stat of a keys file at most), so it runs on the
    event loop rather than costing every write a hop to the thread pool."""
    settings: Settings = request.app.state.settings
    keys = settings.keys()
    if not keys:
        raise WritesDisabled(
            "Writes are disabled because no API key is configured. Start the service with "
            "GEO_API_KEYS=<key>[,<key>...] and send 'Authorization: Bearer <key>'.")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("This write needs 'Authorization: Bearer <key>'.", headers=CHALLENGE)
    key = _matching(token.strip(), keys)
    if key is None:
        raise Unauthorized("The API key is not valid.", headers=CHALLENGE)
    limit: WriteRateLimit | None = getattr(request.app.state, "write_limit", None)
    wait = limit.take(key) if limit is not None else None
    if wait is not None:
        assert limit is not None
        raise TooManyRequests(
            f"This key sent writes faster than the service allows ({limit.rate:g} per second, bursts of "
            f"{limit.capacity:g}). Wait {wait} s before the next write.", headers={"Retry-After": str(wait)})
    return key
