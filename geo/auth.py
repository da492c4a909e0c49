"""Write access: `Authorization: Bearer <key>`, a key of a role high enough, within the write rate.

Two sources of keys:

- named keys (geo.keys): each has a name and a role, `editor` (create and update) or `admin` (also
  delete, and the admin-only routes: `require_role("admin")`); managed with `geo keys`, stored hashed
  in GEO_KEYS_FILE (default `.geo-keys.json` beside the projects store);
- GEO_API_KEYS, either a comma-separated list (each item one key, whatever it starts with) or
  `@/path/to/file`: one key per line, whatever characters the line holds (commas included), blank
  lines and lines starting with `#` ignored, a UTF-8 byte-order mark stripped. Those keys are admins,
  known by the name `env-key-<first 6 hex digits of the key's SHA-256>`, so the key itself need never
  be written anywhere.

Both files are read again when their (inode, size, mtime) changes, and at least once a second, so a
created, revoked or rotated key takes effect within a second in every server process, without a
restart and without a read per request.

A request that passes gets its key's name on `request.state.key_name` (and the role on
`request.state.key_role`): the name, never the key, is what the service records. A missing, unknown or
revoked key answers the same 401; a valid key whose role is too low, 403. The rate limit counts per key
name.
"""

from __future__ import annotations

import functools
import hmac
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import Request

from geo.errors import Forbidden, KeysUnavailable, TooManyRequests, Unauthorized, WritesDisabled
from geo.keys import (
    EMPTY,
    ROLES,
    CachedFile,
    KeyRingCorrupt,
    KeyTable,
    env_key_name,
    parse_table,
    role_allows,
)

if TYPE_CHECKING:
    from geo.ratelimit import WriteRateLimit
    from geo.settings import Settings

log = logging.getLogger(__name__)

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="geo"'}
# Even with an unchanged (inode, size, mtime) a file is read again after this long: an in-place
# rewrite of the same size within one mtime tick would otherwise go unnoticed.
RECHECK_S = 1.0
UNREADABLE = ("Writes are unavailable: the service's API keys file cannot be read. Try again later; "
              "if it persists, tell the operator.")
EMPTY_FILE = ("Writes are unavailable for a moment: the service's API keys file holds no keys (it may be "
              "being rewritten). Try again in a second; if it persists, tell the operator.")
# One answer for a missing, unknown or revoked key: which of them it was is not the caller's business.
NOT_AUTHORISED = "This write needs a valid API key, sent as 'Authorization: Bearer <key>'."
ROLE_TOO_LOW = "The API key sent may not make this request."
# The role GEO_API_KEYS keys have.
ENV_ROLE = "admin"


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


class _Reporter:
    """Logs a file's problem once per change of state: a missing file must not log a line per request."""

    def __init__(self) -> None:
        self._last = ""

    def report(self, problem: str) -> None:
        if problem != self._last:
            self._last = problem
            log.warning("%s; writes answer 503 until it is fixed", problem)

    def clear(self) -> None:
        self._last = ""


class KeyFile:
    """The keys held in one GEO_API_KEYS=@file, cached until the file changes."""

    def __init__(self, path: Path, recheck_s: float = RECHECK_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        # A lambda: parse_key_lines is looked up when the file is read (tests count its calls).
        self._file = CachedFile(path, lambda data: parse_key_lines(data), recheck_s, clock)
        self._reporter = _Reporter()

    def keys(self) -> frozenset[str]:
        """The current keys; raises KeysUnavailable (503) when the file is missing, unreadable or empty."""
        try:
            keys = self._file.read()
        except (OSError, UnicodeDecodeError) as exc:
            self._reporter.report(f"the API keys file {self.path} cannot be read: {exc}")
            raise KeysUnavailable(UNREADABLE) from None
        if not keys:
            self._reporter.report(f"the API keys file {self.path} holds no keys")
            raise KeysUnavailable(EMPTY_FILE, headers={"Retry-After": "1"})
        self._reporter.clear()
        return keys


class NamedKeyFile:
    """The named keys of one GEO_KEYS_FILE, cached until the file changes; no file means no keys."""

    def __init__(self, path: Path, recheck_s: float = RECHECK_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._file = CachedFile(path, parse_table, recheck_s, clock)
        self._reporter = _Reporter()

    def table(self) -> KeyTable:
        """The current keys; raises KeysUnavailable (503) when the file exists but cannot be used."""
        try:
            table = self._file.read()
        except FileNotFoundError:
            table = EMPTY
        except (OSError, KeyRingCorrupt) as exc:
            self._reporter.report(f"the named keys file {self.path} cannot be used: {exc}")
            raise KeysUnavailable(UNREADABLE) from None
        self._reporter.clear()
        return table


_files: dict[str, KeyFile] = {}
_named: dict[Path, NamedKeyFile] = {}
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


def named_keys(settings: Settings) -> KeyTable:
    """The named keys of the settings' keys file; raises KeysUnavailable for a file that cannot be used."""
    path = settings.keys_path()
    named = _named.get(path)
    if named is None:
        with _files_lock:
            named = _named.setdefault(path, NamedKeyFile(path))
    return named.table()


def writes_configured(settings: Settings) -> bool:
    """Whether writes are on: some valid key is configured and readable (never raises)."""
    for source in (settings.keys, lambda: named_keys(settings).active):
        try:
            if source():
                return True
        except KeysUnavailable:
            pass
    return False


@dataclass(frozen=True)
class Caller:
    """Who sent a request: its key's name and role."""

    name: str
    role: str


def _matching(sent: bytes, keys: frozenset[str]) -> str | None:
    # compare_digest on every key: the time taken says nothing about how close a guess was.
    found = None
    for key in keys:
        if hmac.compare_digest(sent, key.encode("utf-8")):
            found = key
    return found


def _bearer(request: Request) -> bytes | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    # Starlette decodes headers as Latin-1: encoding back gives the bytes the client sent, so a UTF-8
    # key sent as UTF-8 matches.
    return token.encode("latin-1")


def authenticate(request: Request) -> Caller:
    """The caller of a write: 403 when no key is configured, 401 for a missing, unknown or revoked key,
    503 when a keys file that might hold the key cannot be read."""
    settings: Settings = request.app.state.settings
    unavailable: KeysUnavailable | None = None
    try:
        table = named_keys(settings)
    except KeysUnavailable as exc:
        table, unavailable = EMPTY, exc
    try:
        env = settings.keys()
    except KeysUnavailable as exc:
        env, unavailable = frozenset(), unavailable or exc
    if unavailable is None and not env and not table.active:
        raise WritesDisabled(
            "Writes are disabled because no API key is configured. Create one with `geo keys create NAME "
            "--role editor|admin`, or start the service with GEO_API_KEYS=<key>[,<key>...], and send "
            "'Authorization: Bearer <key>'.")
    sent = _bearer(request)
    if sent is not None:
        named = table.match(sent)
        if named is not None:
            return Caller(named.name, named.role)
        key = _matching(sent, env)
        if key is not None:
            return Caller(env_key_name(key), ENV_ROLE)
    # A file that cannot be read might hold this key: say so rather than that the key is wrong.
    if unavailable is not None:
        raise unavailable
    raise Unauthorized(NOT_AUTHORISED, headers=CHALLENGE)


def require_role(role: str) -> Callable[[Request], Awaitable[str]]:
    """A dependency admitting keys of `role` or higher: it returns the key's name, sets
    `request.state.key_name` / `key_role`, and takes a token of the key's write rate."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    async def dependency(request: Request) -> str:
        # Async: it compares hashes and takes a token (a stat of a keys file at most), so it runs on
        # the event loop rather than costing every write a hop to the thread pool.
        caller = authenticate(request)
        if not role_allows(caller.role, role):
            raise Forbidden(ROLE_TOO_LOW)
        limit: WriteRateLimit | None = getattr(request.app.state, "write_limit", None)
        wait = limit.take(caller.name) if limit is not None else None
        if wait is not None:
            assert limit is not None
            raise TooManyRequests(
                f"This key sent writes faster than the service allows ({limit.rate:g} per second, bursts "
                f"of {limit.capacity:g}). Wait {wait} s before the next write.",
                headers={"Retry-After": str(wait)})
        request.state.key_name = caller.name
        request.state.key_role = caller.role
        return caller.name

    dependency.__name__ = dependency.__qualname__ = f"require_{role}"
    return dependency


require_editor = require_role("editor")
require_admin = require_role("admin")
# Any valid key: editor is the lowest role (create, update, import).
require_key = require_editor
