"""Benchmark the PostGIS store beside the embedded (file) store, in one run, at 1,000 and 10,000 projects.

Run: GEO_DATA_MIRROR=../shared/data .venv/bin/python bench/bench_postgis.py [--url postgresql://...]
     [--sizes 1000 10000]

The database is `--url` (default: GEO_TEST_DATABASE_URL, else the loopback cluster of
scripts/system-deps.sh); the benchmark creates a schema of its own there and drops it afterwards. Needs
`wrk` (Debian package).

For each size, one server on the embedded store and one on PostGIS (one uvicorn worker each, as
bench_writes.py starts them) run side by side and are measured in turns (the disk's flush time and the
other processes on the machine drift; turns share the drift out):
- start-up to the first answer (PostGIS: reading every row);
- POST latency p50/p95 and sequential writes/s, over 1,000 POSTs from one keep-alive client;
- writes/s with 8 concurrent clients (wrk);
- new item page each request (limit=10..49, offset varies, so never from the response cache) req/s,
  16 connections (wrk, as bench_items.py): both stores serve reads from the same in-memory table.
At the largest size, a second server on the same store (PostGIS: the same schema; embedded: the same file,
which the file store shares between processes) and, for each kind:
- combined writes/s of 8 clients, 4 on each server, against 8 clients on one server;
- visibility delay: from a 201 on A to the item answering 200 on B (B polled without pause), p50/p95
  over 200 writes.
Ratios are PostGIS against the embedded store measured in the same run (and two servers against one).

`--record` measures the store object itself, in process, without HTTP (issue 14's record of changes):
the latency of `add` (with a key's name and an Idempotency-Key: the key lookup and the known-id test),
`replace` (a status change) and `delete` on a store of 1,000 projects, then, once the change log holds
`--changes` rows (10,000 by default), `changes(since, 100)` at its start, middle and end, `history` of a
project with many changes and of one with one, `deleted`, `seq_before` and `idempotent`. Run from an
older checkout (one whose store takes no `meta`), it measures the writes only: the before and after of
the write path.
"""

from __future__ import annotations

import argparse
import http.client
import inspect
import itertools
import json
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_items import wrk  # noqa: E402
from bench.bench_writes import BODY, HEADERS, KEY, WRK_POST, percentile, post_latencies  # noqa: E402
from bench.server import free_port, start  # noqa: E402
from bench.synth import bench_settings, synthetic_projects, write_store  # noqa: E402
from tests.pg import database_url, with_schema  # noqa: E402

ITEMS = "/collections/projects/items"
# Every POST sends the same body: `duplicate=allow` says it is meant (geo/duplicates.py's guard).
POSTS_TO = f"{ITEMS}?duplicate=allow"
POSTS, BATCHES = 1000, 10
WRK_TURNS, WRK_TURN_S, READ_S = 2, 3, 3
VISIBILITY_WRITES = 200
STORES = ("embedded", "PostGIS")


# --- the database ---

@contextmanager
def bench_schema(url: str) -> Iterator[str]:
    """A fresh schema in the database of `url`: yields a URL that uses it; drops it afterwards."""
    name = f"bench_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield with_schema(url, name, application_name=name)
    finally:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE application_name = %s AND pid <> pg_backend_pid()", (name,))
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def load_postgis(url: str, features: list[dict[str, Any]]) -> float:
    """Fill the (empty) schema of `url` with `features` through the store's bulk load; seconds taken."""
    from geo.store.postgis import PostGISStore

    began = time.perf_counter()
    store = PostGISStore(url)
    try:
        store.load(features)
    finally:
        store.close()
    return time.perf_counter() - began


# --- the store in process (--record) ---

def timed(call: Callable[[], object], count: int) -> list[float]:
    """Seconds each of `count` calls of `call` took."""
    times = []
    for _ in range(count):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return times


def line(name: str, times: list[float]) -> str:
    """A table row: the name, then p50, p95 and mean in milliseconds."""
    return (f"{name:36} {statistics.median(times) * 1000:7.2f} {percentile(times, 0.95) * 1000:7.2f} "
            f"{statistics.mean(times) * 1000:8.2f}")


def record(url: str, settings_work: Path, writes: int, changes: int) -> None:
    """The store's write latency and its record's reads (see the module docstring); prints a table."""
    from geo.store.changes import WriteMeta  # the older checkouts measured (before/after) have it too
    from geo.store.postgis import PostGISStore

    features = synthetic_projects(1_000 + writes, bench_settings(settings_work))
    with bench_schema(url) as schema_url:
        store = PostGISStore(schema_url)
        try:
            has_record = "meta" in inspect.signature(store.add).parameters
            store.load(features[:1_000])
            rows: list[tuple[str, list[float]]] = []
            fresh = iter(features[1_000:])
            if has_record:
                keys = iter(range(writes))
                rows.append(("add (by, Idempotency-Key)", timed(lambda: store.add(
                    next(fresh), WriteMeta(by="bench", idempotency_key=f"k{next(keys)}",
                                           request_hash="h")), writes)))  # type: ignore[call-arg]
            else:
                rows.append(("add", timed(lambda: store.add(next(fresh)), writes)))
            target = features[0]
            statuses = itertools.cycle(["planned", "approved"])

            def status_change() -> None:
                changed = {**target, "properties": {**target["properties"], "status": next(statuses)}}
                store.replace(str(target["id"]), changed)

            rows.append(("replace (a status change)", timed(status_change, writes)))
            doomed = iter(f["id"] for f in features[1:1_000])
            rows.append(("delete", timed(lambda: store.delete(str(next(doomed))), min(writes, 900))))
            print(f"\n{'store write, 1,000 projects':36} {'p50 ms':>7} {'p95 ms':>7} {'mean ms':>8}")
            for name, times in rows:
                print(line(name, times))
            if not has_record:
                return
            with psycopg.connect(schema_url, autocommit=True) as conn:
                logged = int((conn.execute("SELECT count(*) FROM project_changes").fetchone() or (0,))[0])
            middle_at = datetime.now(UTC)
            for n in range(changes - logged):  # more status changes of one project, to reach `changes`
                if n == (changes - logged) // 2:
                    middle_at = datetime.now(UTC)  # for seq_before: a time halfway through the log
                status_change()
            with psycopg.connect(schema_url, autocommit=True) as conn:
                last = int((conn.execute("SELECT max(seq) FROM project_changes").fetchone() or (0,))[0])
            busy = str(target["id"])
            usual = features[999]  # a project with a history of a usual length: 20 status changes
            for n in range(20):
                props = {**usual["properties"], "status": "approved" if n % 2 else "planned"}
                store.replace(str(usual["id"]), {**usual, "properties": props})
            seen = WriteMeta(by="bench", idempotency_key="k1")
            reads = [
                ("changes(0, 100)", lambda: store.changes(0, 100)),
                (f"changes({last // 2}, 100)", lambda: store.changes(last // 2, 100)),
                (f"changes({last - 100}, 100)", lambda: store.changes(last - 100, 100)),
                (f"history: {len(store.history(busy)):,} changes", lambda: store.history(busy)),
                ("history: 21 changes", lambda: store.history(str(usual["id"]))),
                ("history: 1 change", lambda: store.history(str(features[-1]["id"]))),
                ("deleted (a deleted id)", lambda: store.deleted(str(features[1]["id"]))),
                ("seq_before(a time)", lambda: store.seq_before(middle_at)),
                ("idempotent (a key seen)", lambda: store.idempotent(seen)),
            ]
            print(f"\n{f'record reads, {last:,} changes':36} {'p50 ms':>7} {'p95 ms':>7} {'mean ms':>8}")
            for name, read in reads:
                print(line(name, timed(read, 50)))
        finally:
            store.close()


# --- servers ---

@contextmanager
def server(env: dict[str, str]) -> Iterator[tuple[int, float]]:
    """A uvicorn worker of the service on `env`: yields its port and its start-up seconds."""
    port = free_port()
    proc, startup = start("server:app", env, port)
    try:
        yield port, startup
    finally:
        proc.terminate()
        proc.wait(120)


# --- measuring ---

def wrk_posts(ports: list[int], seconds: int, connections: int) -> float:
    """POSTs per second, summed, from one wrk per server running at once, `connections` clients each."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_POST % (BODY.decode(), KEY))
        script.flush()
        runs = [subprocess.Popen(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name,
                                  f"http://127.0.0.1:{port}{POSTS_TO}"], stdout=subprocess.PIPE, text=True)
                for port in ports]
        outs = [run.communicate()[0] for run in runs]
    total = 0.0
    for out in outs:
        if "Non-2xx" in out:
            raise SystemExit(f"wrk saw errors:\n{out}")
        found = re.search(r"Requests/sec:\s+([\d.]+)", out)
        assert found is not None, out
        total += float(found.group(1))
    return total


def measure(ports: dict[str, int]) -> dict[str, dict[str, float]]:
    """POST latency, sequential and concurrent writes/s and new-page reads/s of each server, in turns."""
    latencies: dict[str, list[float]] = {name: [] for name in ports}
    for _ in range(BATCHES):
        for name, port in ports.items():
            latencies[name] += post_latencies(port, POSTS_TO, POSTS // BATCHES)
    rates: dict[str, list[float]] = {name: [] for name in ports}
    reads: dict[str, list[float]] = {name: [] for name in ports}
    for _ in range(WRK_TURNS):
        for name, port in ports.items():
            rates[name].append(wrk_posts([port], WRK_TURN_S, 8))
        for name, port in ports.items():
            reads[name].append(wrk(f"http://127.0.0.1:{port}{ITEMS}?f=json", READ_S, 16, distinct="page")[0])
    return {name: {"p50": statistics.median(lat) * 1000, "p95": percentile(lat, 0.95) * 1000,
                   "seq_s": len(lat) / sum(lat), "w8_s": statistics.mean(rates[name]),
                   "read_s": statistics.mean(reads[name])} for name, lat in latencies.items()}


def visibility(a: int, b: int, count: int) -> list[float]:
    """Seconds from each of `count` 201s on server `a` to the new item answering 200 on server `b`."""
    post = http.client.HTTPConnection("127.0.0.1", a)
    get = http.client.HTTPConnection("127.0.0.1", b)
    delays: list[float] = []
    try:
        for _ in range(count):
            post.request("POST", POSTS_TO, body=BODY, headers=HEADERS)
            response = post.getresponse()
            created = response.read()
            acknowledged = time.perf_counter()
            if response.status != 201:
                raise SystemExit(f"POST answered {response.status}")
            path = f"{ITEMS}/{json.loads(created)['id']}"
            while True:
                get.request("GET", path)
                answer = get.getresponse()
                answer.read()
                if answer.status == 200:
                    break
                if time.perf_counter() - acknowledged > 10:
                    raise SystemExit(f"{path} not visible on the other server after 10 s")
            delays.append(time.perf_counter() - acknowledged)
    finally:
        post.close()
        get.close()
    return delays


def two_servers(a: int, b: int) -> dict[str, float]:
    """Combined writes/s of 4 clients on each of two servers against 8 on one (in turns), and the
    visibility delay from one to the other."""
    one, two = [], []
    for _ in range(WRK_TURNS):
        one.append(wrk_posts([a], WRK_TURN_S, 8))
        two.append(wrk_posts([a, b], WRK_TURN_S, 4))
    delays = visibility(a, b, VISIBILITY_WRITES)
    return {"one": statistics.mean(one), "two": statistics.mean(two),
            "vis_p50": statistics.median(delays) * 1000, "vis_p95": percentile(delays, 0.95) * 1000,
            "vis_max": max(delays) * 1000}


# --- the run ---

def main() -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=database_url(),
                        help="a PostgreSQL database with the postgis extension (default: %(default)s)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--record", action="store_true",
                        help="measure the store in process: write latency and the record's reads")
    parser.add_argument("--writes", type=int, default=500, help="--record: writes of each kind")
    parser.add_argument("--changes", type=int, default=10_000, help="--record: change-log rows to read")
    args = parser.parse_args()
    if args.record:
        work = Path(tempfile.mkdtemp(prefix="bench-record-"))
        try:
            record(args.url, work, args.writes, args.changes)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("install wrk (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="bench-postgis-"))
    rows: list[tuple[int, dict[str, float], dict[str, dict[str, float]]]] = []
    pairs: dict[str, dict[str, float]] = {}
    largest = max(args.sizes)
    try:
        settings = bench_settings(work)
        print(f"generating {largest:,} synthetic projects...", file=sys.stderr)
        features = synthetic_projects(largest, settings)
        common = {"GEO_LAYERS_DIR": str(settings.layers_dir), "GEO_DATA_MIRROR": str(settings.data_mirror),
                  "GEO_API_KEYS": KEY, "GEO_WRITE_RATE_PER_KEY": "0"}
        for size in sorted(args.sizes):
            with ExitStack() as stack:
                store = work / f"projects-{size}.geojson"
                write_store(store, features[:size])
                url = stack.enter_context(bench_schema(args.url))
                loaded = load_postgis(url, features[:size])
                envs = {"embedded": {**common, "GEO_PROJECTS": str(store), "GEO_DATABASE_URL": ""},
                        "PostGIS": {**common, "GEO_PROJECTS": str(work / "unused.geojson"),
                                    "GEO_DATABASE_URL": url}}
                started = {name: stack.enter_context(server(env)) for name, env in envs.items()}
                print(f"  {size:,}: measuring", file=sys.stderr)
                results = measure({name: port for name, (port, _) in started.items()})
                for name, (_, startup) in started.items():
                    results[name]["startup"] = startup
                rows.append((size, {"load": loaded}, results))
                if size == largest:
                    print(f"  {size:,}: two servers", file=sys.stderr)
                    for name, env in envs.items():
                        second, _ = stack.enter_context(server(env))
                        pairs[name] = two_servers(started[name][0], second)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(rows, pairs, largest)


def report(rows: list[tuple[int, dict[str, float], dict[str, dict[str, float]]]],
           pairs: dict[str, dict[str, float]], largest: int) -> None:
    """Print the tables: each store's figures, and PostGIS against the embedded store."""
    print(f"{'':28} {'start s':>7} {'p50 ms':>7} {'p95 ms':>7} {'seq w/s':>8} {'w/s x8':>7} {'page r/s':>8}")
    for size, extra, results in rows:
        for name in STORES:
            r = results[name]
            print(f"{f'{size:,} projects, {name}':28} {r['startup']:7.2f} {r['p50']:7.2f} {r['p95']:7.2f} "
                  f"{r['seq_s']:8.0f} {r['w8_s']:7.0f} {r['read_s']:8.0f}")
        e, p = results["embedded"], results["PostGIS"]
        print(f"{f'{size:,}, PostGIS / embedded':28} {p['startup'] / e['startup']:7.2f} "
              f"{p['p50'] / e['p50']:7.2f} {p['p95'] / e['p95']:7.2f} {p['seq_s'] / e['seq_s']:8.2f} "
              f"{p['w8_s'] / e['w8_s']:7.2f} {p['read_s'] / e['read_s']:8.2f}")
        print(f"  (PostGIS bulk load of {size:,} projects: {extra['load']:.2f} s)")
    if pairs:
        print(f"\nTwo servers on one store, {largest:,} projects:")
        print(f"{'':28} {'1 srv w/s':>9} {'2 srv w/s':>9} {'2/1':>5} {'vis p50 ms':>10} {'vis p95 ms':>10} "
              f"{'vis max':>8}")
        for name in STORES:
            t = pairs[name]
            print(f"{name:28} {t['one']:9.0f} {t['two']:9.0f} {t['two'] / t['one']:5.2f} "
                  f"{t['vis_p50']:10.2f} {t['vis_p95']:10.2f} {t['vis_max']:8.2f}")


if __name__ == "__main__":
    main()
