"""Benchmark the write path at 1,000, 10,000 and 100,000 projects against a bare fsync-append app.

Run: GEO_DATA_MIRROR=../shared/data .venv/bin/python bench/bench_writes.py [--sizes 1000 10000 100000]
     [--profile]

For each store size, one uvicorn worker (as `bench_items.py` starts it) is measured for:
- start-up time to the first answer, and RSS after start;
- POST p50 and p99 from one client, over 1,000 sequential POSTs (a new project each), then RSS;
- writes per second with 8 concurrent clients (wrk, keep-alive), then RSS again;
- for the largest size, start-up again with a journal of about 10 MB beside the store file.
The reference, on the same uvicorn in the same run, running beside the service for each size and measured
in turns with it (the disk's flush time drifts with whatever else runs): a bare ASGI app (`reference`
below) that appends each POST body to a file and flushes it (fdatasync, what the store's journal does)
before answering 201.
`--profile` adds a cProfile of the write path in-process (validation, province placement, the store) at
the largest size: where a POST's time goes besides HTTP.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.server import free_port, start  # noqa: E402
from bench.synth import bench_settings, synthetic_projects, write_store  # noqa: E402

KEY = "bench-key"
POSTS = 1000
BODY = (b'{"type":"Feature","geometry":{"type":"Point","coordinates":[69.1723,34.5281]},'
        b'"properties":{"name":"Girls\' secondary school","category":"school","status":"proposed",'
        b'"budget_usd":1200000,"start_date":"2027-03-01"}}')
HEADERS = {"Content-Type": "application/geo+json", "Authorization": f"Bearer {KEY}"}
WRK_POST = """
wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "application/geo+json"
wrk.headers["Authorization"] = "Bearer %s"
"""


# --- the reference: a bare ASGI app that appends each POST body to a file and flushes it ---

_LOG_FD: int | None = None


async def reference(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                    send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    """Append the request body (and a newline) to BENCH_APPEND_FILE, fdatasync, answer 201."""
    global _LOG_FD
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] == "POST":
        if _LOG_FD is None:
            _LOG_FD = os.open(os.environ["BENCH_APPEND_FILE"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(_LOG_FD, body + b"\n")
        os.fdatasync(_LOG_FD)
        status, out = 201, body
    else:
        status, out = 200, b"{}"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/geo+json"),
                            (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})


# --- measuring ---

def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found is not None
    return int(found.group(1)) / 1024


def post_latencies(port: int, path: str, count: int) -> list[float]:
    """Seconds each of `count` sequential POSTs took, on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    out: list[float] = []
    try:
        for _ in range(count):
            began = time.perf_counter()
            conn.request("POST", path, body=BODY, headers=HEADERS)
            response = conn.getresponse()
            response.read()
            out.append(time.perf_counter() - began)
            if response.status != 201:
                raise SystemExit(f"POST answered {response.status}")
    finally:
        conn.close()
    return out


def wrk_writes(url: str, seconds: int, connections: int) -> float:
    """POSTs per second from wrk with `connections` concurrent keep-alive clients."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_POST % (BODY.decode(), KEY))
        script.flush()
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", script.name, url],
                             capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert found is not None
    return float(found.group(1))


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server (its shutdown folds the journal in) and wait for it."""
    proc.terminate()
    proc.wait(120)


def write_journal(settings_path: Path, features: list[dict[str, Any]], size: int) -> int:
    """A journal of about `size` bytes beside the store file: replaces of existing projects (a new
    name each), in the store's own format (geo.store.journal); returns how many lines it holds."""
    from geo.store import journal
    from geo.store.geojson_file import content_version

    data = settings_path.read_bytes()
    st = os.stat(settings_path)
    header = journal.Header(base=content_version(data), file=(st.st_ino, st.st_size, st.st_mtime_ns),
                            gen=journal.new_gen(), continues=None, lineage=journal.new_gen(), shift=0)
    lines = [header.encode()]
    total, n = len(lines[0]), 0
    at = time.time_ns() // 1_000_000
    while total < size:
        old = features[n % len(features)]
        new = {**old, "properties": {**old["properties"], "name": f"Renamed {n}"}}
        line = journal.encode_change("replace", str(old["id"]), new, at + n)
        lines.append(line)
        total += len(line)
        n += 1
    journal.journal_path(settings_path.resolve()).write_bytes(b"".join(lines))
    return n


def profile_writes(settings_path: Path, settings: Any, count: int) -> str:
    """cProfile of `count` writes as the POST route does them, in-process: what costs besides HTTP."""
    import orjson

    from geo.catalogue import Catalogue
    from geo.http.conditional import feature_etag
    from geo.projects import new_project
    from geo.store import GeoJSONFileStore
    from geo.validation import check_feature

    store = GeoJSONFileStore(settings_path)
    catalogue = Catalogue(settings, store)
    body = orjson.loads(BODY)
    stages = {"check_feature (validation, province placement)": 0.0, "new_project": 0.0,
              "store.add (lock, journal append + fdatasync, table.apply)": 0.0, "ETag": 0.0}
    names = list(stages)
    for _ in range(20):  # warm: the provinces are loaded on the first placement
        store.add(new_project(check_feature(orjson.loads(BODY), catalogue.place), catalogue.province_names()))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        t0 = time.perf_counter()
        checked = check_feature(orjson.loads(orjson.dumps(body)), catalogue.place)
        t1 = time.perf_counter()
        feature = new_project(checked, catalogue.province_names())
        t2 = time.perf_counter()
        store.add(feature)
        t3 = time.perf_counter()
        feature_etag(orjson.dumps(feature))
        t4 = time.perf_counter()
        for name, spent in zip(names, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            stages[name] += spent
    profiler.disable()
    store.close()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(20)
    per = "\n".join(f"  {name:58} {spent / count * 1000:7.3f} ms" for name, spent in stages.items())
    return f"Per write, in-process, mean of {count}:\n{per}\n\n{text.getvalue()}"


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    """The best of each figure over repeated runs (the least disturbed by what else the machine did)."""
    most = ("writes_s",)
    return {key: (max if key in most else min)(run[key] for run in runs) for key in runs[0]}


# One client's POSTs go in batches, alternately to the reference and to the service, and wrk's 8 clients
# in turns: both see the same disk, whose flush time drifts with whatever else the machine does.
BATCHES, WRK_TURNS, WRK_TURN_S = 10, 4, 2


def measure_pair(ref_env: dict[str, str], env: dict[str, str], path: str) -> tuple[dict[str, float], ...]:
    """Start the reference and the service side by side, measure both in turns, stop them."""
    servers: list[tuple[subprocess.Popen[bytes], float, int]] = []
    try:
        for app, app_env in (("bench.bench_writes:reference", ref_env), ("server:app", env)):
            port = free_port()
            servers.append((*start(app, app_env, port), port))
        results: list[dict[str, float]] = [{"startup": startup} for _, startup, _ in servers]
        for result, (proc, _, _) in zip(results, servers, strict=True):
            result["rss_start"] = rss_mb(proc.pid)
        latencies: list[list[float]] = [[], []]
        for _ in range(BATCHES):
            for lat, (_, _, port) in zip(latencies, servers, strict=True):
                lat += post_latencies(port, path, POSTS // BATCHES)
        rates: list[list[float]] = [[], []]
        for result, lat, (proc, _, _) in zip(results, latencies, servers, strict=True):
            result.update(p50=statistics.median(lat) * 1000, p99=percentile(lat, 0.99) * 1000,
                          rss_posts=rss_mb(proc.pid))
        for _ in range(WRK_TURNS // 2):
            for rate, (_, _, port) in zip(rates, servers, strict=True):
                rate.append(wrk_writes(f"http://127.0.0.1:{port}{path}", WRK_TURN_S, 8))
        for result, rate, (proc, _, _) in zip(results, rates, servers, strict=True):
            result.update(writes_s=statistics.mean(rate), rss_wrk=rss_mb(proc.pid))
    finally:
        for proc, _, _ in servers:
            stop(proc)
    return tuple(results)


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--journal-mb", type=float, default=10.0)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure each size (and its reference) this many times; keep the best of each")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("install wrk (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="bench-writes-"))
    rows: list[tuple[str, dict[str, float]]] = []
    extra: list[str] = []
    try:
        settings = bench_settings(work)
        print(f"generating {max(args.sizes):,} synthetic projects...", file=sys.stderr)
        all_features = synthetic_projects(max(args.sizes), settings)
        ref_env = {"BENCH_APPEND_FILE": str(work / "append.log")}
        for size in sorted(args.sizes):
            store = work / f"projects-{size}.geojson"
            env = {"GEO_PROJECTS": str(store), "GEO_LAYERS_DIR": str(settings.layers_dir),
                   "GEO_DATA_MIRROR": str(settings.data_mirror), "GEO_API_KEYS": KEY,
                   "GEO_WRITE_RATE_PER_KEY": "0"}
            write_store(store, all_features[:size])
            label = f"{size:,} projects ({store.stat().st_size / 1e6:.1f} MB)"
            refs, runs = [], []
            for _ in range(args.repeat):
                write_store(store, all_features[:size])
                # Every POST sends the same body: `duplicate=allow` says it is meant (geo/duplicates.py).
                ref, run = measure_pair(ref_env, env, "/collections/projects/items?duplicate=allow")
                refs.append(ref)
                runs.append(run)
                print(f"  {size}: done", file=sys.stderr)
            rows.append(("reference: bare ASGI, append + fdatasync", best(refs)))
            rows.append((label, best(runs)))
        largest = max(args.sizes)
        store = work / f"projects-{largest}.geojson"
        write_store(store, all_features[:largest])
        lines = write_journal(store, all_features[:largest], int(args.journal_mb * 1e6))
        env = {"GEO_PROJECTS": str(store), "GEO_LAYERS_DIR": str(settings.layers_dir),
               "GEO_DATA_MIRROR": str(settings.data_mirror)}
        proc, startup = start("server:app", env, free_port())
        rss = rss_mb(proc.pid)
        stop(proc)
        journal_size = args.journal_mb
        extra.append(f"start-up with {largest:,} projects and a {journal_size:g} MB journal ({lines:,} "
                     f"changes): {startup:.2f} s, RSS {rss:.0f} MB")
        if args.profile:
            write_store(store, all_features[:largest])
            for leftover in store.parent.glob(f".{store.name}.journal*"):
                leftover.unlink()
            extra.append(profile_writes(store, settings.model_copy(update={"projects": store}), 300))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'':42} {'start s':>7} {'RSS MB':>7} {'p50 ms':>7} {'p99 ms':>7} {'p50/ref':>7} "
          f"{'w/s x8':>7} {'/ref':>5} {'RSS 1k':>7} {'RSS end':>7}")
    ref = rows[0][1]
    for name, r in rows:
        if name.startswith("reference"):
            ref = r  # each size is compared with the reference measured just before it
        print(f"{name:42} {r['startup']:7.2f} {r['rss_start']:7.0f} {r['p50']:7.2f} {r['p99']:7.2f} "
              f"{r['p50'] / ref['p50']:7.2f} {r['writes_s']:7.0f} {r['writes_s'] / ref['writes_s']:5.2f} "
              f"{r['rss_posts']:7.0f} {r['rss_wrk']:7.0f}")
    sized = [r for name, r in rows if not name.startswith("reference")]
    if len(sized) >= 2:
        print(f"POST p50, largest against smallest store: {sized[-1]['p50'] / sized[0]['p50']:.2f}x")
    for line in extra:
        print(line)


if __name__ == "__main__":
    main()
