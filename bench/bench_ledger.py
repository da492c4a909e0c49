"""Benchmark the embedded store's ledger of changes (geo/store/ledger.py), in-process.

Run: GEO_DATA_MIRROR=../shared/data .venv/bin/python bench/bench_ledger.py [--projects 100000] [--writes 300]

Measures:
- the first start of a store of N projects made before the ledger (every project recorded as created,
  one transaction) against a start whose ledger already knows them, and the ledger's size;
- reads at N changes: `changes(since, 100)` at random cursors, `history(fid)`, `deleted(fid)`,
  `seq_before(at)`, each p50 and p99 over 200 calls (a connection per call, as the store does);
- a write's cost on that store with the ledger against the same store with the ledger's work stubbed
  out (the store as it was before the ledger): `add` with an Idempotency-Key and `replace`, p50 and
  p99, in alternating blocks (the disk's flush time drifts with whatever else runs).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.synth import bench_settings, synthetic_projects, write_store  # noqa: E402
from geo.store import ledger  # noqa: E402
from geo.store.changes import WriteMeta  # noqa: E402
from geo.store.geojson_file import GeoJSONFileStore  # noqa: E402

BLOCKS = 6


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    return (f"p50 {statistics.median(ordered) * 1000:7.3f} ms  "
            f"p99 {ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000:7.3f} ms")


def _timed(call: Callable[[], Any], count: int) -> list[float]:
    out = []
    for _ in range(count):
        t = time.perf_counter()
        call()
        out.append(time.perf_counter() - t)
    return out


@contextmanager
def _without_ledger() -> Iterator[None]:
    """The store with the ledger's work stubbed out: what a write cost before the ledger."""
    saved = {name: getattr(ledger.Writer, name) for name in ("record", "known", "idempotent", "tip")}
    catch_up = GeoJSONFileStore._catch_up
    ledger.Writer.record = lambda self, rows: None  # type: ignore[assignment,method-assign]
    ledger.Writer.known = lambda self, fids: set()  # type: ignore[assignment,method-assign]
    ledger.Writer.idempotent = lambda self, idem, not_before: None  # type: ignore[assignment,method-assign]
    ledger.Writer.tip = lambda self: (0, 0)  # type: ignore[assignment,method-assign]
    GeoJSONFileStore._catch_up = lambda self, s: None  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        for name, real in saved.items():
            setattr(ledger.Writer, name, real)
        GeoJSONFileStore._catch_up = catch_up  # type: ignore[method-assign]


def _feature(fid: str, name: str) -> dict[str, Any]:
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [69.1723, 34.5281]},
            "properties": {"name": name, "category": "school", "status": "proposed"}}


def bench_writes(path: Path, count: int) -> list[str]:
    """add (with a key) and replace on the store `path`, with and without the ledger, in alternating
    blocks."""
    times: dict[str, list[float]] = {"add, ledger": [], "add, no ledger": [], "replace, ledger": [],
                                     "replace, no ledger": []}
    per_block = max(1, count // BLOCKS)
    n = 0
    for block in range(BLOCKS * 2):
        with_ledger = block % 2 == 0
        store = GeoJSONFileStore(path, journal_max_bytes=1 << 40, journal_max_age_s=1e9)
        label = "ledger" if with_ledger else "no ledger"
        with nullcontext() if with_ledger else _without_ledger():
            fids = []
            for _ in range(per_block):
                n += 1
                fid = f"p-{n}"
                fids.append(fid)
                meta = WriteMeta(by="bench", idempotency_key=f"k-{n}", request_hash="h")
                t = time.perf_counter()
                store.add(_feature(fid, "a school"), meta)
                times[f"add, {label}"].append(time.perf_counter() - t)
            for fid in fids:
                t = time.perf_counter()
                store.replace(fid, _feature(fid, "renamed"), meta=WriteMeta(by="bench"))
                times[f"replace, {label}"].append(time.perf_counter() - t)
            store.close()
    lines = [f"  {name:22} {_ms(values)}" for name, values in times.items()]
    for op in ("add", "replace"):
        ratio = statistics.median(times[f"{op}, ledger"]) / statistics.median(times[f"{op}, no ledger"])
        lines.append(f"  {op} p50 with the ledger / without: {ratio:.2f}x")
    return lines


def bench_store(work: Path, projects: int) -> tuple[Path, list[str]]:
    """The baseline of a store made before the ledger, then reads at `projects` changes."""
    settings = bench_settings(work)
    print(f"generating {projects:,} synthetic projects...", file=sys.stderr)
    features = synthetic_projects(projects, settings)
    path = work / "projects.geojson"
    write_store(path, features)
    lines = []
    t = time.perf_counter()
    store = GeoJSONFileStore(path)
    first = time.perf_counter() - t
    store.close()
    t = time.perf_counter()
    store = GeoJSONFileStore(path)
    again = time.perf_counter() - t
    size = ledger.ledger_path(path).stat().st_size / 1e6
    lines.append(f"  first start, {projects:,} projects recorded as created: {first:.2f} s; a start whose "
                 f"ledger knows them: {again:.2f} s (baseline: {first - again:.2f} s); ledger {size:.0f} MB")
    total = len(features)
    rng = random.Random(7)
    ids = [f["id"] for f in features]
    for n in range(20):  # some deletes, so that `deleted` finds something
        store.delete(ids[n])
    total += 20
    lines.append(f"  reads at {total:,} changes (200 calls each, a connection per call):")
    page = _timed(lambda: store.changes(rng.randrange(total), 100), 200)
    lines.append(f"    changes(since, 100)  {_ms(page)}")
    lines.append(f"    history(fid)         {_ms(_timed(lambda: store.history(rng.choice(ids)), 200))}")
    lines.append(f"    deleted(fid)         {_ms(_timed(lambda: store.deleted(rng.choice(ids)), 200))}")
    now = datetime.now(UTC)
    lines.append(f"    seq_before(at)       {_ms(_timed(lambda: store.seq_before(now), 200))}")
    store.close()
    return path, lines


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=100_000)
    parser.add_argument("--writes", type=int, default=300)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    try:
        path, lines = bench_store(work, args.projects)
        out = ["store start and reads:", *lines,
               f"writes on that store ({args.writes} of each, in-process, one thread):",
               *bench_writes(path, args.writes)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(out))


if __name__ == "__main__":
    main()
