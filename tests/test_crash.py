"""Crashes: SIGKILL during writes and during compaction, 22 times in all; every restart is clean and
finds every acknowledged write.

- Through the server (`geo serve`, as deployed): three clients write (POST, PATCH, DELETE) to a store
  whose journal is compacted every few writes; the server is killed at a seeded random moment, then
  started again on the same files.
- At chosen points (seeded): a process writing through the store kills itself with SIGKILL at a point
  drawn from those a write and a compaction pass through (before the append, halfway through the line,
  after the flush; while the new file is written, between each rename and flush of a compaction), so
  that every point is hit, not only the ones a timer happens to land on.

After each kill the state read back must be what the acknowledged writes made, plus or minus the one
write in flight (not acknowledged, so either is right), and nothing but the store file and its journal
may remain once the store is opened again.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import pytest

from geo.settings import Settings
from geo.store import GeoJSONFileStore, geojson_file
from geo.store.geojson_file import encode_store
from tests.conftest import AUTH, point_feature
from tests.server import live_server, server_pid

ITEMS = "/collections/projects/items"
# The store's ledger of changes (geo.store.ledger): beside the file, kept for ever.
LEDGER = "p.geojson.ledger.sqlite"
Feature = dict[str, Any]
# What a writer reports: ("begin" | "ack", op, id, feature or None).
Event = tuple[str, str, str, Feature | None]


def _feature(fid: str, name: str) -> Feature:
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [69.1, 34.5]},
            "properties": {"name": name, "category": "water", "status": "planned"}}


def _apply(state: dict[str, Feature], op: str, fid: str, feature: Feature | None) -> dict[str, Feature]:
    """`state` after one write (a dict keeps the store's order: a replace keeps its place)."""
    out = dict(state)
    if feature is None:
        out.pop(fid, None)
    else:
        out[fid] = feature
    return out


def _expected(start: dict[str, Feature],
              events: list[Event]) -> tuple[dict[str, Feature], dict[str, Feature]]:
    """The state the acknowledged writes make, and the same with the write in flight at the kill."""
    state, in_flight = dict(start), None
    for kind, op, fid, feature in events:
        if kind == "begin":
            in_flight = (op, fid, feature)
        else:
            state, in_flight = _apply(state, op, fid, feature), None
    return state, state if in_flight is None else _apply(state, *in_flight)


# --- at chosen points: a writing process kills itself -------------------------------------------------

# Where a writer may be killed: during a write (the journal append), or during a compaction.
WRITE_POINTS = ("before the append", "halfway through the line", "after the flush")
COMPACTION_POINTS = ("halfway through the new file", "after the new file is flushed",
                     "after the next journal is in place", "after the file is renamed",
                     "after the folder is flushed", "after the journal is renamed")


def _arm(point: str, after: int) -> None:
    """In the writer process: SIGKILL it at the `after`-th time it reaches `point`."""
    seen = [0]

    def due() -> bool:
        seen[0] += 1
        return seen[0] >= after

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def wrap(module: Any, name: str, before: Callable[..., bool] | None = None,
             after_call: Callable[..., bool] | None = None) -> None:
        real = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if before is not None and before(*args, **kwargs) and due():
                die()
            out = real(*args, **kwargs)
            if after_call is not None and after_call(*args, **kwargs) and due():
                die()
            return out

        setattr(module, name, wrapper)

    def torn_append(fd: int, data: bytes, size: int) -> None:
        os.write(fd, data[:len(data) // 2])
        die()

    import geo.fsutil as fsutil

    if point == "before the append":
        wrap(geojson_file, "append_durably", before=lambda *a: True)
    elif point == "halfway through the line":
        real_append = geojson_file.append_durably
        geojson_file.append_durably = (  # type: ignore[assignment]
            lambda fd, data, size: torn_append(fd, data, size) if due() else real_append(fd, data, size))
    elif point == "after the flush":
        wrap(geojson_file, "append_durably", after_call=lambda *a: True)
    elif point == "halfway through the new file":
        real_durably = fsutil.write_durably

        def half(fd: int, data: bytes | Iterable[bytes]) -> None:
            whole = data if isinstance(data, bytes) else b"".join(data)
            if len(whole) > 2000 and due():  # the new store file, not a journal header
                os.write(fd, whole[:len(whole) // 2])
                die()
            real_durably(fd, whole)

        fsutil.write_durably = half  # type: ignore[assignment]
    elif point == "after the new file is flushed":
        # The new store file is the one written in chunks (a journal is written as bytes).
        wrap(geojson_file, "write_temporary", after_call=lambda target, data, like=None: not isinstance(
            data, bytes))
    elif point == "after the next journal is in place":
        wrap(os, "replace", after_call=lambda src, dst: str(dst).endswith(".journal.next"))
    elif point == "after the file is renamed":
        wrap(os, "replace", after_call=lambda src, dst: str(dst).endswith(".geojson"))
    elif point == "after the folder is flushed":
        wrap(geojson_file, "fsync_dir", after_call=lambda folder: True)
    elif point == "after the journal is renamed":
        wrap(geojson_file, "durable_rename", after_call=lambda src, dst: str(dst).endswith(".journal"))
    else:
        raise AssertionError(point)


def _writer(path: str, seed: int, point: str, after: int, out: Connection) -> None:
    """A process writing through the store until the armed point kills it; it reports each write."""
    rng = random.Random(seed)
    _arm(point, after)
    # Compaction by size, every few writes, in the background thread; and now and then in this one.
    store = GeoJSONFileStore(Path(path), journal_max_bytes=1200, journal_max_age_s=3600)
    mine = [fid for fid in store.snapshot().ids if fid.startswith(f"s{seed}-")]
    n = 0
    while True:
        n += 1
        roll = rng.random()
        if not mine or roll < 0.5:
            op, fid = "add", f"s{seed}-{n}"
            feature: Feature | None = _feature(fid, f"added {n}")
        elif roll < 0.85:
            op, fid = "replace", rng.choice(mine)
            feature = _feature(fid, f"renamed {n}")
        else:
            op, fid, feature = "delete", rng.choice(mine), None
        out.send(("begin", op, fid, feature))
        if op == "add":
            store.add(feature)  # type: ignore[arg-type]
            mine.append(fid)
        elif op == "replace":
            store.replace(fid, feature)  # type: ignore[arg-type]
        else:
            store.delete(fid)
            mine.remove(fid)
        out.send(("ack", op, fid, feature))
        if n % 7 == 0:
            store.compact()


def _state(path: Path) -> dict[str, Feature]:
    store = GeoJSONFileStore(path)  # a restart: recovery runs here
    table = store.snapshot()
    return {fid: table.get(fid) for fid in table.ids}  # type: ignore[misc]


ROUNDS = [(point, seed) for seed in (1, 2) for point in WRITE_POINTS + COMPACTION_POINTS]


def test_a_writer_killed_at_any_point_loses_no_acknowledged_write(tmp_path: Path) -> None:
    path = tmp_path / "p.geojson"
    path.write_bytes(encode_store([_feature(f"seed-{n}", f"seed {n}") for n in range(40)]))
    ctx = multiprocessing.get_context("fork")  # the writer starts in milliseconds, modules imported
    state = _state(path)
    kills_in_compaction = 0
    for number, (point, seed) in enumerate(ROUNDS):
        receive, send = ctx.Pipe(duplex=False)
        rng = random.Random(number * 100 + seed)
        proc = ctx.Process(target=_writer, args=(str(path), number * 10 + seed, point,
                                                 rng.randrange(1, 4), send))
        proc.start()
        send.close()
        events: list[Event] = []
        while True:
            try:
                events.append(receive.recv())
            except EOFError:
                break
        proc.join(30)
        assert proc.exitcode == -signal.SIGKILL, (point, proc.exitcode)
        left = {p.name for p in tmp_path.iterdir()}
        kills_in_compaction += any(name.endswith((".tmp", ".next")) for name in left)
        acked, with_in_flight = _expected(state, events)
        state = _state(path)
        assert state in (acked, with_in_flight), (point, seed)
        assert list(state) in (list(acked), list(with_in_flight))  # the order too
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) in (
            [".p.geojson.journal", "p.geojson", LEDGER], ["p.geojson", LEDGER]), (point, sorted(left))
    # Killed with a compaction's files about: the temporary new file, or the next journal.
    assert kills_in_compaction >= 4


# --- a large batch (add_many): all of it or none ------------------------------------------------------

def _big_batch() -> list[Feature]:
    """10,000 new projects of a typical size (a 300-character description): a journal line of ~4 MB."""
    return [{**_feature(f"imp-{k:05d}", f"imported {k}"),
             "properties": {"name": f"imported {k}", "category": "water", "status": "planned",
                            "description": "x" * 300}} for k in range(10_000)]


def _batch_writer(path: str, point: str, out: Connection) -> None:
    """A process that writes one large batch and is killed: by itself at an armed point of the append,
    or (`from outside`) by the test, which it tells when the append begins."""
    if point == "from outside":
        real = geojson_file.append_durably

        def announced(fd: int, data: bytes, size: int) -> None:
            out.send("appending")
            real(fd, data, size)

        geojson_file.append_durably = announced  # type: ignore[assignment]
    else:
        _arm(point, 1)
    store = GeoJSONFileStore(Path(path), journal_max_bytes=1 << 30)
    store.add_many(_big_batch())
    out.send("ack")
    time.sleep(60)  # until killed


# (point, delay before the kill from outside, what the restart must find: all, none, or either)
BATCH_ROUNDS = [("before the append", 0.0, "none"), ("halfway through the line", 0.0, "none"),
                ("after the flush", 0.0, "all"), ("from outside", 0.0, "either"),
                ("from outside", 0.005, "either"), ("from outside", 0.02, "either")]


def test_a_large_batch_killed_at_any_point_is_stored_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "p.geojson"
    start = {f"seed-{n}": _feature(f"seed-{n}", f"seed {n}") for n in range(3)}
    path.write_bytes(encode_store(list(start.values())))
    whole = {**start, **{f["id"]: f for f in _big_batch()}}
    ctx = multiprocessing.get_context("fork")
    found = []
    for point, delay, expect in BATCH_ROUNDS:
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_batch_writer, args=(str(path), point, send))
        proc.start()
        send.close()
        if point == "from outside":
            assert receive.poll(30) and receive.recv() == "appending"
            time.sleep(delay)
            os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
        proc.join(30)
        assert proc.exitcode == -signal.SIGKILL, (point, proc.exitcode)
        state = _state(path)  # a restart: a torn batch is cut off here
        assert state in (start, whole), (point, len(state))
        assert list(state) in (list(start), list(whole))  # the order too
        assert {"none": start, "all": whole}.get(expect, state) == state, point
        found.append("all" if state == whole else "none")
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) in (
            [".p.geojson.journal", "p.geojson", LEDGER], ["p.geojson", LEDGER]), point
        if state == whole:  # back to the start for the next round
            path.write_bytes(encode_store(list(start.values())))
            (tmp_path / ".p.geojson.journal").unlink(missing_ok=True)
            (tmp_path / LEDGER).unlink()  # which would refuse the batch's ids, never to be reused
    assert found[:3] == ["none", "none", "all"]


# --- through the server, at random moments ------------------------------------------------------------

class Client(threading.Thread):
    """Writes through the server until it dies, keeping what was acknowledged and what is in flight."""

    def __init__(self, base: str, rng: random.Random, start: dict[str, Feature], tag: str) -> None:
        super().__init__(daemon=True)
        self.base, self.rng, self.tag = base, rng, tag
        self.mine = [fid for fid, f in start.items() if f["properties"].get("description") == tag]
        self.events: list[Event] = []

    def run(self) -> None:
        try:
            while True:
                self._one()
        except httpx.TransportError:
            return  # the server was killed

    def _one(self) -> None:
        roll = self.rng.random()
        if not self.mine or roll < 0.5:
            # The same project each time: past the duplicate guard (geo/duplicates.py).
            response = httpx.post(f"{self.base}{ITEMS}", headers=AUTH, timeout=30,
                                  params={"duplicate": "allow"},
                                  json=point_feature(name="new", description=self.tag))
            assert response.status_code == 201, response.text
            feature = response.json()
            # The in-flight POST is not known by id until answered: a kill then may leave it or not.
            self.events.append(("ack", "add", feature["id"], feature))
            self.mine.append(feature["id"])
        elif roll < 0.85:
            fid = self.rng.choice(self.mine)
            name = f"renamed {self.rng.random()}"
            self.events.append(("begin", "replace", fid, {"name": name}))
            response = httpx.patch(f"{self.base}{ITEMS}/{fid}", headers=AUTH, timeout=30,
                                   json={"properties": {"name": name}})
            assert response.status_code == 200, response.text
            self.events.append(("ack", "replace", fid, response.json()))
        else:
            fid = self.rng.choice(self.mine)
            self.events.append(("begin", "delete", fid, None))
            assert httpx.delete(f"{self.base}{ITEMS}/{fid}", headers=AUTH, timeout=30).status_code == 204
            self.events.append(("ack", "delete", fid, None))
            self.mine.remove(fid)


def _served(base: str) -> dict[str, Feature]:
    page = httpx.get(f"{base}{ITEMS}", params={"limit": 10_000}, timeout=30).json()
    return {f["id"]: f for f in page["features"]}


def _check(served: dict[str, Feature], before: dict[str, Feature], clients: list[Client]) -> None:
    """Every acknowledged write is served. A write in flight at the kill may show or not: a PATCH as the
    acknowledged version or one with the name it sent, a DELETE as the feature or its absence, a POST
    (not known by id until answered) as at most one feature more per client."""
    expected = dict(before)
    in_flight: dict[str, tuple[str, Feature | None]] = {}
    for client in clients:
        for kind, op, fid, feature in client.events:
            if kind == "begin":
                in_flight[fid] = (op, feature)
            else:
                in_flight.pop(fid, None)
                expected = _apply(expected, op, fid, feature)
    for fid, feature in expected.items():
        got = served.get(fid)
        if fid not in in_flight or got == feature:
            assert got == feature, fid
        elif in_flight[fid][0] == "delete":
            assert got is None, fid
        else:
            sent = in_flight[fid][1]
            assert got is not None and sent is not None and got["properties"]["name"] == sent["name"], fid
    extra = set(served) - set(expected)
    assert len(extra) <= len(clients), extra


@pytest.mark.parametrize("seed", [11])
def test_the_server_killed_at_random_moments_restarts_with_every_acknowledged_write(
        settings: Settings, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    compacting = settings.model_copy(update={"journal_max_bytes": 3000, "journal_max_age_s": 0.2,
                                             "write_rate_per_key": 0})
    log = tmp_path / "server.log"
    before: dict[str, Feature] = {}
    clients: list[Client] = []
    for _round in range(4):
        with live_server(compacting, log=log) as base:
            served = _served(base)
            if clients:
                _check(served, before, clients)  # what the previous round's clients were told is all there
            before = served
            clients = [Client(base, random.Random(rng.random()), served, f"client {n}") for n in range(3)]
            for client in clients:
                client.start()
            time.sleep(rng.uniform(0.3, 1.2))
            os.kill(server_pid(base), signal.SIGKILL)
            for client in clients:
                client.join(30)
    with live_server(compacting, log=log) as base:
        _check(_served(base), before, clients)
    assert "Traceback" not in log.read_text()
