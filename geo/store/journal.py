"""The store's journal: one JSON line per change, appended and flushed before a write is acknowledged.

It lives beside the store file, hidden: `.projects.geojson.journal` for `projects.geojson`. Line 1 is a
header tying the journal to the compacted store file it extends; every further line is one change, in
the order the changes were made:

    {"journal":1,"base":"<digest>","file":[ino,size,mtime_ns],"gen":"<random>","continues":null,
     "lineage":"<random>","shift":0}
    {"op":"add","id":"p-1","at":1767225600000,"feature":{"type":"Feature","id":"p-1",...}}
    {"op":"replace","id":"p-1","at":1767225660000,"feature":{...}}
    {"op":"delete","id":"p-1","at":1767225720000}
    {"op":"batch","n":2,"at":1767225780000,"features":[{"type":"Feature","id":"p-2",...},{...}]}

- `base` is the digest of the store file's bytes (geo.store.geojson_file.content_version): the journal
  applies to that file and no other, which is checked on start-up. `file` is that file's inode, size and
  mtime, a cheap check for a running process that follows another's compaction without re-reading it.
- `gen` names this journal file. A compaction writes a new store file holding the journal up to some
  offset, and a new journal that `continues` the old one (`[<old gen>, <offset>]`) with the old one's
  lines after that offset, so a running process can follow it without reading the store file again.
- The store's version (what page ETags and caches key on) is the same in every process and never repeats:
  the store file's digest while no change has been made since it was read, then `<lineage>.<n>` where
  `n` counts the bytes of changes since the lineage began (`shift` is that count at this journal's
  start). Compaction keeps the lineage and the count, so folding the journal in changes no version.
- `at` is when the change was made (Unix milliseconds): the store's Last-Modified, the same everywhere.
- A line is complete when it ends with a newline; a writer appends a whole line and flushes it before it
  acknowledges, so a line without its newline (or one that does not parse, at the very end of the file)
  was cut short by a crash and never acknowledged: it is dropped. A bad line followed by other lines is
  corruption: the store refuses it, naming the file, the line and the reason.
- A `batch` line is several adds made by one write (`add_many`): its `n` features are appended in
  order, as one change. Being one line, a crash keeps all of them or none: a torn batch is dropped
  whole, like any torn line. It can be megabytes long; nothing here limits a line's length.
- `add` of an id that exists, `replace` or `delete` of one that does not, are corruption too: the writer
  checked them, so a journal that says otherwise was not written by this store over this file.
- Lines carry what the ledger (geo.store.ledger) records of them, after `at`: `seq` (a batch's first;
  its features take the next ones in order), and when set `by`, `as` (the ledger's op when the journal's
  does not tell it: `update` or `status` for a replace, `restore` for an add), `idem` (the scoped
  Idempotency-Key) and `rh` (the request's digest). A crash after the line and before the ledger insert
  is caught up from these. Lines written before the ledger existed have none of them and still read.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from geo.errors import StoreCorrupt

Feature = dict[str, Any]
# One change as FeatureTable.apply takes it: (id, the new feature) adds or replaces, (id, None) deletes.
Change = tuple[str, Feature | None]
# (inode, size, mtime_ns) of a store file.
FileStamp = tuple[int, int, int]

FORMAT = 1
OPS = ("add", "replace", "delete")
# The op of a line that holds several adds made by one write.
BATCH = "batch"


def journal_path(target: Path) -> Path:
    """The journal of the store file `target` (its real path, not a symlink): hidden, beside it."""
    return target.parent / f".{target.name}.journal"


def next_path(target: Path) -> Path:
    """Where a compaction writes the journal that follows it, before renaming it into place."""
    return target.parent / f".{target.name}.journal.next"


def new_gen() -> str:
    """A fresh journal name (random: two journals never share one, so versions never repeat)."""
    return secrets.token_hex(6)


@dataclass(frozen=True)
class Header:
    """The first line of a journal: which store file it extends, its own name, and its versions."""

    base: str
    file: FileStamp | None
    gen: str
    continues: tuple[str, int] | None
    lineage: str
    shift: int

    def encode(self) -> bytes:
        """The header line, newline included."""
        doc = {"journal": FORMAT, "base": self.base, "file": self.file, "gen": self.gen,
               "continues": self.continues, "lineage": self.lineage, "shift": self.shift}
        return orjson.dumps(doc) + b"\n"

    def version(self, offset: int, start: int) -> str:
        """The store version once the journal's lines up to `offset` are applied (`start`: where its
        first change line begins, just after this header)."""
        if offset == start and self.continues is None:
            return self.base  # nothing changed since the store file was read: its digest
        return f"{self.lineage}.{self.shift + offset - start}"


def read_header(data: bytes, path: Path) -> tuple[Header, int]:
    """The header at the start of a journal's bytes and its length; StoreCorrupt when it is not one.

    A journal whose header line is not complete was being created when a crash came: the caller (under
    the write lock) may remove it, as it never held a change.
    """
    end = data.find(b"\n")
    if end < 0:
        raise StoreCorrupt(f"{path}: line 1: the header is incomplete")
    try:
        doc = orjson.loads(data[:end])
        stamp = doc["file"]
        cont = doc["continues"]
        header = Header(base=str(doc["base"]), gen=str(doc["gen"]),
                        file=None if stamp is None else (int(stamp[0]), int(stamp[1]), int(stamp[2])),
                        continues=None if cont is None else (str(cont[0]), int(cont[1])),
                        lineage=str(doc["lineage"]), shift=int(doc["shift"]))
        if doc["journal"] != FORMAT:
            raise ValueError(f"format {doc['journal']!r}, this version reads {FORMAT}")
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise StoreCorrupt(f"{path}: line 1: not a journal header ({exc}). Nothing was overwritten.") from exc
    return header, end + 1


@dataclass(frozen=True)
class Meta:
    """What a change line holds for the ledger besides the change (see the module's docstring)."""

    seq: int
    by: str | None = None
    as_op: str | None = None
    idem: str | None = None
    rh: str | None = None

    def encode(self) -> bytes:
        """The members, each with its leading comma (only those that are set, but `seq`)."""
        out = b',"seq":' + str(self.seq).encode()
        for name, value in (("by", self.by), ("as", self.as_op), ("idem", self.idem), ("rh", self.rh)):
            if value is not None:
                out += b',"' + name.encode() + b'":' + orjson.dumps(value)
        return out


def encode_change(op: str, fid: str, feature: Feature | None, at_ms: int, meta: Meta | None = None) -> bytes:
    """One change line, newline included (op and id first, so a torn line still says what it was)."""
    head = b'{"op":"' + op.encode() + b'","id":' + orjson.dumps(fid) + b',"at":' + str(at_ms).encode()
    if meta is not None:
        head += meta.encode()
    if feature is None:
        return head + b"}\n"
    return head + b',"feature":' + orjson.dumps(feature) + b"}\n"


def encode_batch(features: Sequence[Feature], at_ms: int, meta: Meta | None = None) -> bytes:
    """One line holding the adds of `features`, in order, newline included (op and count first, so a
    torn batch still says what it was)."""
    head = b'{"op":"batch","n":' + str(len(features)).encode() + b',"at":' + str(at_ms).encode()
    if meta is not None:
        head += meta.encode()
    return head + b',"features":' + orjson.dumps(list(features)) + b"}\n"


def feature_fault(feature: object) -> str | None:
    """What makes `feature` unfit to store (None when it is fit): the checks of a store file's features."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return "is not a GeoJSON Feature"
    fid = feature.get("id")
    if not isinstance(fid, str) or not fid:
        return "has no string 'id'"
    if not isinstance(feature.get("geometry"), dict) or not isinstance(feature.get("properties"), dict):
        return f"({fid}) lacks a geometry or properties object"
    return None


def checked(features: Iterable[Feature]) -> Iterator[Feature]:
    """`features`, each checked as a store file's are as it is read (ValueError says which and why, and
    when an id repeats)."""
    seen: set[str] = set()
    for n, feature in enumerate(features):
        fault = feature_fault(feature)
        if fault is not None:
            raise ValueError(f"features[{n}] {fault}")
        if feature["id"] in seen:
            raise ValueError(f"features[{n}] repeats the id {feature['id']!r}")
        seen.add(feature["id"])
        yield feature


@dataclass(frozen=True)
class Record:
    """One change line, read and checked; `line` is its line number in the journal (1 is the header)."""

    op: str
    fid: str
    feature: Feature | None
    at_ms: int
    line: int
    meta: Meta | None = None  # None on a line written before the ledger existed


def _records(raw: bytes, line: int) -> list[Record]:
    """Read one complete line (without its newline): one record, or a batch's adds (all on `line`);
    ValueError says what is wrong with it."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    op, fid, feature, at = doc.get("op"), doc.get("id"), doc.get("feature"), doc.get("at")
    if op == BATCH:
        return _batch(doc, line, _meta(doc))
    meta = _meta(doc)
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}")
    if not isinstance(fid, str) or not fid:
        raise ValueError("no string 'id'")
    if not isinstance(at, int) or isinstance(at, bool):
        raise ValueError("no integer 'at'")
    if op == "delete":
        if feature is not None:
            raise ValueError("a delete holds a feature")
        return [Record(op, fid, None, at, line, meta)]
    fault = feature_fault(feature)
    if fault is not None or not isinstance(feature, dict):
        raise ValueError(f"its feature {fault}")
    if feature["id"] != fid:
        raise ValueError(f"its feature has the id {feature['id']!r}, not {fid!r}")
    return [Record(op, fid, feature, at, line, meta)]


def _meta(doc: dict[str, Any]) -> Meta | None:
    """The ledger's members of a line (None when it has no `seq`: written before the ledger)."""
    seq = doc.get("seq")
    if seq is None:
        return None
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise ValueError(f"'seq' {seq!r} is not a positive integer")
    texts = [doc.get(name) for name in ("by", "as", "idem", "rh")]
    if any(t is not None and not isinstance(t, str) for t in texts):
        raise ValueError("'by', 'as', 'idem' or 'rh' is not a string")
    by, as_op, idem, rh = texts
    return Meta(seq, by, as_op, idem, rh)


def _batch(doc: dict[str, Any], line: int, meta: Meta | None) -> list[Record]:
    """The adds of a batch line (its JSON object), checked as single adds are."""
    n, at, features = doc.get("n"), doc.get("at"), doc.get("features")
    if not isinstance(at, int) or isinstance(at, bool):
        raise ValueError("no integer 'at'")
    if not isinstance(features, list) or not features:
        raise ValueError("a batch without a list of features")
    if n != len(features):
        raise ValueError(f"a batch of {n!r} features holds {len(features)}")
    records: list[Record] = []
    for k, feature in enumerate(features):
        fault = feature_fault(feature)
        if fault is not None:
            raise ValueError(f"its feature [{k}] {fault}")
        # Each feature of a batch is its own change in the ledger: the seqs that follow the line's.
        own = None if meta is None else Meta(meta.seq + k, meta.by)
        records.append(Record("add", feature["id"], feature, at, line, own))
    return records


@dataclass(frozen=True)
class Lines:
    """What `read_records` found: the records of the complete lines, where they end, and the rest."""

    records: list[Record]
    end: int  # offset just past the last record's newline
    rest: bytes  # what follows `end`: nothing, a line being written, or a torn last line
    next_line: int  # the line number of what comes after `end`


def read_records(data: bytes, start: int, first_line: int, path: Path) -> Lines:
    """Read the complete lines of `data`, the journal's bytes from offset `start`, whose first line is
    line number `first_line`.

    Bytes after the last newline are an incomplete line: a write in progress, or one a crash cut short.
    A last line that ends with a newline but cannot be read is left in `rest` too: a power cut may keep
    the end of a line and lose its middle, and nothing can be appended after it while it is there (the
    writer cuts `rest` off under the lock first). Any other line that cannot be read raises StoreCorrupt
    with the file, the line number and the reason.
    """
    records: list[Record] = []
    pos, line = 0, first_line
    while True:
        newline = data.find(b"\n", pos)
        if newline < 0:
            break
        try:
            records.extend(_records(data[pos:newline], line))
        except ValueError as exc:
            if not data[newline + 1:].strip(b"\x00 \n"):
                break  # the last line, unreadable: torn (see above)
            raise StoreCorrupt(f"{path}: line {line}: {exc}. Nothing was overwritten; restore the store "
                               "from a backup, or remove that line by hand (the changes after it would be "
                               "kept).") from None
        pos, line = newline + 1, line + 1
    return Lines(records, start + pos, data[pos:], line)


_WHAT = re.compile(rb'"op":"(add|replace|delete)","id":("(?:[^"\\]|\\.)*")')
_BATCH = re.compile(rb'\{"op":"batch","n":([0-9]+)')


def describe_torn(rest: bytes) -> str:
    """What a torn line was, as far as can be told (its op and id come first), for the log."""
    batch = _BATCH.match(rest)
    if batch is not None:
        return f"{len(rest)} bytes, a batch of {int(batch.group(1))} adds"
    found = _WHAT.search(rest)
    if found is None:
        return f"{len(rest)} bytes, not even its op and id"
    try:
        fid = orjson.loads(found.group(2))
    except orjson.JSONDecodeError:
        fid = found.group(2).decode("utf-8", "replace")
    return f"{len(rest)} bytes, {found.group(1).decode()} of {fid!r}"


def changes(records: Sequence[Record], exists: Callable[[str], bool], path: Path) -> list[Change]:
    """The changes `records` make to a version where `exists(fid)` tells which features are there.

    Raises StoreCorrupt for an add of an id that is there, or a replace or delete of one that is not
    (counting the earlier records): the writer checked these, so the journal does not fit this version.
    """
    present: dict[str, bool] = {}
    out: list[Change] = []
    for rec in records:
        there = present[rec.fid] if rec.fid in present else exists(rec.fid)
        if (rec.op == "add") == there:
            state = "exists" if there else "does not exist"
            raise StoreCorrupt(f"{path}: line {rec.line}: {rec.op} of {rec.fid!r}, which {state} at that "
                               "point: the journal does not fit the store file. Nothing was overwritten.")
        present[rec.fid] = rec.op != "delete"
        out.append((rec.fid, rec.feature))
    return out


class Overlay:
    """What a journal's records do to the features of the file it extends, folded so that they are
    applied as the file is read: the table is built once, from the final features.

    The same result as applying the changes one by one (`changes` checks them; call it too): a
    replaced feature keeps its place, a deleted one goes, an added one (or one deleted and added
    again) comes after the file's, in the order of its last add.
    """

    def __init__(self, records: Sequence[Record]) -> None:
        self.changed: dict[str, Feature | None] = {}  # the file's features replaced, or deleted (None)
        self.tail: dict[str, Feature] = {}  # features after the file's, in order
        for rec in records:
            if rec.fid in self.tail:
                if rec.feature is None:
                    del self.tail[rec.fid]
                else:
                    self.tail[rec.fid] = rec.feature
            elif rec.op == "add" and rec.feature is not None:
                self.tail[rec.fid] = rec.feature
            else:
                self.changed[rec.fid] = rec.feature

    def over(self, features: Iterable[Feature]) -> Iterator[Feature]:
        """`features` (the file's, in order) with the records applied."""
        changed = self.changed
        for feature in features:
            if feature["id"] in changed:
                new = changed[feature["id"]]
                if new is not None:
                    yield new
            else:
                yield feature
        yield from self.tail.values()
