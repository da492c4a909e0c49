"""`geo store copy SRC DST`: every current project of one store copied into another, empty one, exactly.

Either end is a GeoJSON store file (a path) or a PostGIS database (a `postgresql://` or `postgres://`
URL). The source's snapshot is read in order and handed to the destination's `load` (one atomic, durable
write into an empty store: geo.store.base.ProjectStore.load), so ids, order, timestamps, status histories
and every property arrive as they were: each feature is passed on as the bytes the source serves, and the
destination's copy is compared with them before the copy is reported done.

Only the current projects are copied, not the record of changes (geo.store.changes): the destination's
record starts with one `create` per project, made at the time of the copy, by nobody. The source's
history (field changes, status notes, who made them), its deleted projects (which the destination will
not know, so it cannot restore them nor refuse their ids) and its Idempotency-Keys stay behind; a
destination whose record knows a copied id refuses the copy. Keep the source to keep its history.

There is no `--replace`: a copy never overwrites a store. To replace one, move its file aside (or use a new
database) and copy into that.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from geo.query.featuretable import FeatureTable
from geo.settings import Settings
from geo.store import journal
from geo.store.base import Feature, ProjectStore

# Called as the features go by: (copied so far, how many in all).
Progress = Callable[[int, int], None]
# Features between two progress reports (the last one is always reported).
PROGRESS_EVERY = 500
DATABASE_SCHEMES = ("postgresql://", "postgres://")


class CopyRefused(ValueError):
    """The copy cannot be made as asked (a missing source, a destination that is not empty); nothing
    was written."""


class CopyMismatch(Exception):
    """The destination does not hold what was copied into it (never expected: a bug to report)."""


def is_database(text: str) -> bool:
    """Whether a store named on the command line is a database URL (else it is a path)."""
    return text.startswith(DATABASE_SCHEMES)


def masked(text: str) -> str:
    """A store's name fit to print: a database URL's password (in its user part or its query) as ***."""
    if not is_database(text):
        return text
    parts = urlsplit(text)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:***@{host}"
    query = parts.query
    pairs = parse_qsl(query)
    if any(k == "password" for k, _ in pairs):  # else the query is shown as it was written
        query = urlencode([(k, "***" if k == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _file_store_exists(path: Path) -> bool:
    """Whether a store file (or the journal a new store starts with, before its first compaction) is there."""
    return path.is_file() or journal.journal_path(path.resolve()).is_file()


def open_target(text: str, settings: Settings, *, source: bool = False) -> ProjectStore:
    """The store `text` names: a `postgresql://` / `postgres://` URL opens the PostGIS store, anything
    else is the path of a GeoJSON store file; `settings` give the rest (lock timeout, pool, ...).

    A source must exist (CopyRefused); a destination file need not (it is created by the copy, and its
    folder now). Raises
    StoreUnavailable (an unreachable database) or StoreCorrupt (an unreadable store file) from the store.
    """
    from geo.app import open_store  # here: the CLI's other commands need not import the web stack

    if is_database(text):
        return open_store(settings.model_copy(update={"database_url": text}))
    path = Path(text)
    if path.is_dir():
        raise CopyRefused(f"{text} is a folder; name the store file in it (e.g. {path / 'projects.geojson'})")
    if source and not _file_store_exists(path):
        raise CopyRefused(f"the source store {text} does not exist; nothing was copied")
    if not source:
        path.parent.mkdir(parents=True, exist_ok=True)  # the store's lock file is made beside it
    return open_store(settings.model_copy(update={"database_url": None, "projects": path}))


def _passed_on(table: FeatureTable, progress: Progress | None) -> Iterator[Feature]:
    """The features of `table` in order, parsed from the bytes it serves, reporting progress."""
    total = len(table)
    for n, raw in enumerate(table.encoded, 1):
        yield orjson.loads(raw)
        if progress is not None and (n % PROGRESS_EVERY == 0 or n == total):
            progress(n, total)


def copy(src: ProjectStore, dst: ProjectStore, progress: Progress | None = None) -> int:
    """Copy every feature of `src` (its current snapshot, in order) into `dst`, which must be empty;
    return how many.

    Raises CopyRefused (nothing written) when `dst` is not empty or a feature cannot be stored,
    CopyMismatch when `dst` then does not serve the very bytes `src` does, and the store errors of a
    write (StoreBusy, StoreWriteFailed) as they come.
    """
    table = src.refresh()
    try:
        count = dst.load(_passed_on(table, progress))
    except CopyRefused:
        raise
    except ValueError as exc:  # the store's refusal: not empty, or a feature it cannot hold
        raise CopyRefused(
            f"the destination was left as it was: {exc}. `geo store copy` only fills an empty store and "
            "has no --replace: copy into a new file or an empty database (a new database, then "
            "`geo db init`), or move the destination's file aside first.") from exc
    copied = dst.refresh()
    if count != len(table) or list(copied.encoded) != list(table.encoded):
        raise CopyMismatch(f"the destination holds {len(copied)} projects that differ from the source's "
                           f"{len(table)}; please report this")
    return count


class CountLine:
    """Progress on a stream: a count rewritten in place on a terminal, nothing in between otherwise
    (a log file gets only the final line the caller prints)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self._live = self.stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        """Show `done` of `total` copied."""
        if self._live:
            end = "\n" if done == total else ""
            print(f"\rcopying: {done:,}/{total:,} projects", end=end, file=self.stream, flush=True)
