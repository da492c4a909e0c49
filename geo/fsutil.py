"""Durable file writes and a cross-process lock that leaves no file behind.

`atomic_write_bytes` (or `write_temporary` then `durable_rename`): a crash leaves either the old file
or the new one, never a torn one; the file keeps its mode, owner and (when it is a symlink) its link.
`append_durably`: a journal line that is on disk when it returns, and leaves nothing behind when it
fails. `exclusive_lock`: one holder at a time
across processes, and the lock file exists only while someone holds it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
import stat
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)


class LockTimeout(Exception):
    """The lock was not free within the time allowed."""


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries to disk so that a rename in it survives a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def real_target(path: Path) -> Path:
    """The file a write to `path` must replace: the end of its symlink chain (or `path` itself)."""
    # realpath also resolves a dangling link, so the first write creates the file it points to.
    return Path(os.path.realpath(path))


def temporary_name(target: Path) -> Path:
    """A fresh hidden temporary name beside `target` (the pattern the store sweeps: .<name>.*.tmp)."""
    return target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"


def _adopt_ownership(fd: int, old: os.stat_result) -> None:
    """Give the new file the old one's mode and, where permitted, its owner and group."""
    os.fchmod(fd, stat.S_IMODE(old.st_mode))
    if (old.st_uid, old.st_gid) == (os.geteuid(), os.getegid()):
        return
    try:
        os.fchown(fd, old.st_uid, old.st_gid)
    except PermissionError:
        # Only root may give a file away; a member of the group may still keep the group.
        with contextlib.suppress(PermissionError):
            os.fchown(fd, -1, old.st_gid)


def _write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd` (os.write may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_durably(fd: int, data: bytes | Iterable[bytes]) -> None:
    """Write all of `data` (bytes, or its chunks in order) to `fd` and flush it to disk."""
    for chunk in (data,) if isinstance(data, bytes) else data:
        _write_all(fd, chunk)
    os.fsync(fd)


def write_temporary(target: Path, data: bytes | Iterable[bytes],
                    like: Path | None = None) -> tuple[Path, os.stat_result]:
    """A new hidden temporary file beside `target` holding `data` (bytes, or its chunks: a large file
    need not be in memory at once), flushed to disk; return its path and its stat (the identity it keeps
    once renamed).

    It takes the mode and owner of `like` (by default `target`) when that file exists, else 0o666 minus
    the umask like any new file (mkstemp would force 0600). Raises OSError when it cannot be written,
    and then leaves no temporary behind.
    """
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        old: os.stat_result | None = os.stat(like or target)
    except FileNotFoundError:
        old = None
    tmp = temporary_name(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        try:
            if old is not None:
                _adopt_ownership(fd, old)
            write_durably(fd, data)
            st = os.fstat(fd)
        finally:
            os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, st


def durable_rename(tmp: Path, target: Path) -> bool:
    """Rename `tmp` over `target` and flush the folder. Raises OSError when the rename failed (then
    `tmp` is still there); returns False when only the folder's fsync failed (logged: the new file is in
    place, but its survival of a power cut is not certain), True otherwise."""
    os.replace(tmp, target)
    try:
        fsync_dir(target.parent)
    except OSError as exc:
        log.error("%s was written, but the fsync of its folder failed (%s): the new version is in place "
                  "but may not survive a power cut", target, exc)
        return False
    return True


def atomic_write_bytes(path: Path, data: bytes) -> bool:
    """Write `data` to `path` atomically and durably: temporary file, fsync, rename, fsync folder.

    An existing file keeps its mode and owner; a symlink stays a symlink and its target is replaced.
    Raises OSError when nothing was written (the old file is untouched, no temporary is left). Once the
    rename is done the write has happened: a failing fsync of the folder is logged and reported by
    returning False (the data is in place, its survival of a power cut is not certain); True otherwise.
    """
    target = real_target(path)
    tmp, _ = write_temporary(target, data)
    try:
        return durable_rename(tmp, target)
    except BaseException:
        # Leave no temporary behind; the target is untouched (or, past the rename, `tmp` is gone already).
        tmp.unlink(missing_ok=True)
        raise


def append_durably(fd: int, data: bytes, size: int) -> None:
    """Append `data` to the file open as `fd` (with O_APPEND), now `size` bytes long, and flush it.

    On failure (a full disk, an I/O error) the file is cut back to `size`, so no partial record stays
    to be read, and the error is raised again. A failed flush cuts back too: whether the bytes reached
    the disk is unknown, and the caller reports the write as not done.
    """
    try:
        _write_all(fd, data)
        os.fdatasync(fd)
    except BaseException:
        try:
            os.ftruncate(fd, size)
            os.fdatasync(fd)
        except OSError as exc:
            # The next writer finds the partial record (no newline) under the lock and cuts it off.
            log.error("a failed append could not be cut back to %d bytes (%s)", size, exc)
        raise


# Polling between attempts: short at first (a write holds the lock for one flush of its journal line,
# well under a millisecond on a quiet disk), then capped low so a waiter follows soon after.
_POLL_MIN_S, _POLL_MAX_S = 0.0005, 0.005


@contextlib.contextmanager
def exclusive_lock(path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive cross-process lock on `path` (created on demand, removed on release).

    Raises LockTimeout after `timeout` seconds, and OSError when the lock file cannot be created.
    Removing the file on release is safe because each acquirer checks, once it holds the flock, that the
    path still names the inode it locked; a waiter left holding a removed inode starts again. Threads of
    one process exclude each other too: each attempt opens its own descriptor, and flock locks belong to
    open file descriptions.
    """
    deadline = time.monotonic() + timeout
    pause = _POLL_MIN_S
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise
            if time.monotonic() >= deadline:
                raise LockTimeout(f"{path} is still held after {timeout:g} s") from None
            time.sleep(pause)
            pause = min(pause * 2, _POLL_MAX_S)
            continue
        try:
            named = _names(path, fd)
        except BaseException:
            os.close(fd)
            raise
        if named:
            break
        # The previous holder removed the file between our open and our flock: try again on the new one.
        os.close(fd)
    try:
        yield
    finally:
        # Unlink while still holding: a waiter on this inode will find it no longer named and retry.
        # A failure here must not turn a finished write into an error: the lock is released by the close.
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("the lock file %s could not be removed (%s); it is harmless and reused", path, exc)
        os.close(fd)


def _names(path: Path, fd: int) -> bool:
    """Whether `path` still names the file open as `fd`."""
    try:
        on_path = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (on_path.st_dev, on_path.st_ino) == (held.st_dev, held.st_ino)

