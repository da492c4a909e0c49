"""Named API keys with roles, kept hashed in a JSON file (GEO_KEYS_FILE, default `.geo-keys.json` beside
the projects store): what `geo keys create|list|revoke` manage and what geo.auth reads.

The file holds, per key, its name, role, hash, when it was created and when it was revoked (null while
it is valid); never the key. It is written whole, atomically and durably (geo.fsutil), under a lock so
that two `geo keys` commands run at once cannot lose each other's change; a new file is created with
mode 0600, an existing one keeps its mode and owner (an operator may have made it readable to the
service's group). A server reads it again when its (inode, size, mtime) changes and at least once a
second (`CachedFile`), so a created or revoked key takes effect within a second in every process.

Why a plain SHA-256 and not a slow, salted password hash: a key is `secrets.token_urlsafe(32)`, 256
random bits. Slow hashes and salts protect guessable secrets (passwords) from a dictionary or a
precomputed table; no table or guessing covers 2**256 keys, so a leaked file gives nothing away with
either. A slow hash would instead make every request, and every wrong key sent by anyone, cost
milliseconds of CPU: a denial of service for free. One SHA-256 costs about a microsecond.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from geo.errors import KeysUnavailable
from geo.fsutil import LockTimeout, atomic_write_bytes, exclusive_lock
from geo.settings import Settings

# Lowest first: each role may do what the roles before it may.
ROLES = ("editor", "admin")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# The names GEO_API_KEYS keys are known by (geo.auth.env_key_name); no named key may take one.
ENV_PREFIX = "env-key-"
HASH_PREFIX = "sha256:"
HASH_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")
LOCK_TIMEOUT_S = 10.0
T = TypeVar("T")


class KeyRingError(Exception):
    """A `geo keys` request that cannot be done as asked (a bad or taken name, an unknown key)."""


class KeyRingCorrupt(Exception):
    """The keys file cannot be read or does not hold keys as this module writes them."""


@dataclass(frozen=True)
class NamedKey:
    """One named key as the file holds it: never the key itself, only its hash."""

    name: str
    role: str
    hash: str
    created: str
    revoked: str | None = None


def key_hash(key: bytes) -> str:
    """The stored hash of a key (as the client sends it, in bytes): `sha256:<hex>`."""
    return HASH_PREFIX + hashlib.sha256(key).hexdigest()


@functools.lru_cache(maxsize=256)
def env_key_name(key: str) -> str:
    """The name a GEO_API_KEYS key is known by: it tells keys apart without revealing them."""
    return ENV_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()[:6]


def role_allows(role: str, needed: str) -> bool:
    """Whether a key of `role` may do what needs `needed`."""
    return ROLES.index(role) >= ROLES.index(needed)


def now_text() -> str:
    """The current time as the file records it (RFC 3339, UTC, whole seconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _record(item: Any, where: str) -> NamedKey:
    if not isinstance(item, dict):
        raise KeyRingCorrupt(f"{where}: not an object")
    name, role, hashed = item.get("name"), item.get("role"), item.get("hash")
    created, revoked = item.get("created"), item.get("revoked")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise KeyRingCorrupt(f"{where}: `name` is missing or not a valid key name")
    if role not in ROLES:
        raise KeyRingCorrupt(f"{where} ({name}): `role` must be one of {', '.join(ROLES)}")
    # The message never quotes the hash: it is no key, but it is nobody's business either.
    if not isinstance(hashed, str) or not HASH_PATTERN.fullmatch(hashed):
        raise KeyRingCorrupt(f"{where} ({name}): `hash` is not sha256:<64 hex digits>")
    if not isinstance(created, str) or not (revoked is None or isinstance(revoked, str)):
        raise KeyRingCorrupt(f"{where} ({name}): `created` must be a time, `revoked` a time or null")
    return NamedKey(name, role, hashed, created, revoked)


def parse_keys(data: bytes) -> tuple[NamedKey, ...]:
    """The keys a keys file's bytes hold; an empty file holds none. Raises KeyRingCorrupt."""
    if not data.strip():
        return ()
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise KeyRingCorrupt(f"not valid JSON ({exc})") from None
    items = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise KeyRingCorrupt('not a keys file: expected {"keys": [...]}')
    keys = tuple(_record(item, f"keys[{i}]") for i, item in enumerate(items))
    names = [k.name for k in keys]
    if len(set(names)) != len(names):
        raise KeyRingCorrupt("a key name appears twice")
    return keys


def serialise_keys(keys: tuple[NamedKey, ...]) -> bytes:
    """The bytes of a keys file holding `keys` (one key per line: a diff shows what changed)."""
    lines = ",\n".join("  " + json.dumps(asdict(k), ensure_ascii=False) for k in keys)
    return ('{"keys": [\n' + lines + ("\n" if keys else "") + "]}\n").encode()


@dataclass(frozen=True)
class KeyTable:
    """The keys of a file, as a server checks them: the valid ones by the digest of the key."""

    keys: tuple[NamedKey, ...]
    active: tuple[tuple[bytes, NamedKey], ...]

    @classmethod
    def of(cls, keys: tuple[NamedKey, ...]) -> KeyTable:
        """The table of these keys (revoked ones are kept for `keys`, left out of `active`)."""
        active = tuple((bytes.fromhex(k.hash.removeprefix(HASH_PREFIX)), k)
                       for k in keys if k.revoked is None)
        return cls(keys, active)

    def match(self, sent: bytes) -> NamedKey | None:
        """The valid key whose hash is that of `sent`, or None."""
        digest = hashlib.sha256(sent).digest()
        found = None
        # compare_digest against every key, no early exit: the time says nothing of which key was close.
        for stored, key in self.active:
            if hmac.compare_digest(digest, stored):
                found = key
        return found


EMPTY = KeyTable((), ())


def parse_table(data: bytes) -> KeyTable:
    """`parse_keys`, as a KeyTable."""
    return KeyTable.of(parse_keys(data))


Identity = tuple[int, int, int, int]


class CachedFile(Generic[T]):
    """A file's parsed content, read again when its (device, inode, size, mtime) changes and at least
    every `recheck_s` seconds (an in-place rewrite of the same size within one mtime tick changes none
    of them); one stat per call otherwise. `read` raises what stat, reading or `parse` raise."""

    def __init__(self, path: Path, parse: Callable[[bytes], T], recheck_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.recheck_s = recheck_s
        self._parse = parse
        self._clock = clock
        self._reading: tuple[Identity, float, T] | None = None
        self._lock = threading.Lock()

    def read(self) -> T:
        """The file's current content, parsed."""
        st = os.stat(self.path)
        identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        reading = self._reading
        if reading is not None and reading[0] == identity and self._clock() - reading[1] < self.recheck_s:
            return reading[2]
        with self._lock:  # one reader at a time; the others take its result
            reading = self._reading
            if reading is not None and reading[0] == identity and \
                    self._clock() - reading[1] < self.recheck_s:
                return reading[2]
            value = self._parse(self.path.read_bytes())
            self._reading = (identity, self._clock(), value)
            return value


class KeyRing:
    """The keys file, as `geo keys` changes it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> tuple[NamedKey, ...]:
        """Every key in the file (none when there is no file). Raises KeyRingCorrupt."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return ()
        except OSError as exc:
            raise KeyRingCorrupt(f"cannot be read ({exc.strerror or exc})") from None
        return parse_keys(data)

    def create(self, name: str, role: str) -> str:
        """Add a key named `name` with `role`; return the key (shown once: only its hash is kept)."""
        if not NAME_PATTERN.fullmatch(name) or name.startswith(ENV_PREFIX):
            raise KeyRingError(f"{name!r} is not a usable key name: 1 to 64 letters, digits, '.', '_' or "
                               f"'-', starting with a letter or digit, and not starting with {ENV_PREFIX!r}")
        if role not in ROLES:
            raise KeyRingError(f"the role must be one of {', '.join(ROLES)}")
        key = secrets.token_urlsafe(32)

        def add(keys: tuple[NamedKey, ...]) -> tuple[NamedKey, ...]:
            if any(k.name == name for k in keys):
                # A revoked key keeps its name: the history of changes records names, and one name
                # must mean one key for ever.
                raise KeyRingError(f"a key named {name!r} exists already (revoked keys keep their names); "
                                   "choose another name")
            return (*keys, NamedKey(name, role, key_hash(key.encode()), now_text()))

        self._update(add)
        return key

    def revoke(self, name: str) -> NamedKey:
        """Revoke the key named `name` (at once, for good); return it as revoked. Revoking a revoked key
        changes nothing."""
        found: list[NamedKey] = []

        def mark(keys: tuple[NamedKey, ...]) -> tuple[NamedKey, ...]:
            out = []
            for k in keys:
                if k.name == name:
                    k = k if k.revoked else NamedKey(k.name, k.role, k.hash, k.created, now_text())
                    found.append(k)
                out.append(k)
            if not found:
                raise KeyRingError(f"there is no key named {name!r} (geo keys list names them)")
            return tuple(out)

        self._update(mark)
        return found[0]

    def _update(self, change: Callable[[tuple[NamedKey, ...]], tuple[NamedKey, ...]]) -> None:
        """Read, change and write the file under its lock (two commands at once lose nothing)."""
        lock = self.path.parent / f".{self.path.name}.lock"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with exclusive_lock(lock, LOCK_TIMEOUT_S):
                keys = self.read()
                new = change(keys)
                if new == keys:
                    return
                self._create_private()
                atomic_write_bytes(self.path, serialise_keys(new))
        except LockTimeout:
            raise KeyRingCorrupt(f"another `geo keys` command held {lock} for {LOCK_TIMEOUT_S:g} s; "
                                 "try again") from None
        except OSError as exc:
            raise KeyRingCorrupt(f"cannot be written ({exc.strerror or exc}); nothing was changed") from None

    def _create_private(self) -> None:
        """Create the file, empty and with mode 0600, when there is none: the atomic write then keeps
        that mode (it keeps an existing file's mode and owner)."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            return
        os.close(fd)


def add_commands(sub: Any) -> None:
    """Add `geo keys create|list|revoke` to the `geo` command's subparsers."""
    keys = sub.add_parser("keys", help="manage the named API keys (GEO_KEYS_FILE)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it, once (only its hash is kept)")
    create.add_argument("name", help="who holds the key, e.g. an organisation (letters, digits, . _ -)")
    create.add_argument("--role", required=True, choices=ROLES,
                        help="editor: create and update projects; admin: also delete")
    create.set_defaults(func=_create)
    listing = keys_sub.add_parser("list", help="list the keys: names, roles, created, revoked (no keys)")
    listing.set_defaults(func=_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key, for good, within a second everywhere")
    revoke.add_argument("name")
    revoke.set_defaults(func=_revoke)


def _run(action: Callable[[KeyRing], int]) -> int:
    """Run a `geo keys` command on the configured file: exit 2 for a request that cannot be done, 1 for
    a file that cannot be read or written."""
    ring = KeyRing(Settings().keys_path())
    try:
        return action(ring)
    except KeyRingError as exc:
        print(f"geo: {exc}", file=sys.stderr)
        return 2
    except KeyRingCorrupt as exc:
        print(f"geo: the keys file {ring.path}: {exc}", file=sys.stderr)
        return 1


def _create(args: Any) -> int:
    def create(ring: KeyRing) -> int:
        key = ring.create(args.name, args.role)
        print(f"Created {args.role} key {args.name!r} in {ring.path}. This is the only time it is shown; "
              "give it to its holder now:", file=sys.stderr)
        print(key)  # alone on stdout: KEY=$(geo keys create ...) takes it
        return 0

    return _run(create)


def _list(_args: Any) -> int:
    def listing(ring: KeyRing) -> int:
        rows = [(k.name, k.role, k.created, k.revoked or "-") for k in ring.read()]
        try:
            rows += [(env_key_name(key), "admin", "GEO_API_KEYS", "-")
                     for key in sorted(Settings().keys(), key=env_key_name)]
        except KeysUnavailable:
            rows.append(("(GEO_API_KEYS file unreadable)", "", "", ""))
        rows.insert(0, ("NAME", "ROLE", "CREATED", "REVOKED"))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        return 0

    return _run(listing)


def _revoke(args: Any) -> int:
    def revoke(ring: KeyRing) -> int:
        key = ring.revoke(args.name)
        print(f"{key.name}: revoked at {key.revoked}; refused within a second by every server process")
        return 0

    return _run(revoke)
