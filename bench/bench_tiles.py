"""Benchmark the vector tiles: uncached tile latency by zoom, and cached tiles against a bare ASGI app.

Run: GEO_DATA_MIRROR=../shared/data .venv/bin/python bench/bench_tiles.py [--projects 100000]
Needs `wrk` (Debian package). Two servers on the same synthetic store: one with no tile cache
(GEO_TILE_CACHE_BYTES=0), timed request by request over the tiles that cover Afghanistan at each zoom
(p50, p90: what a map panning to new places waits for), and one with the cache, loaded with wrk on a
repeated tile and compared with a bare ASGI app serving the same bytes on the same uvicorn.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_items import wrk  # noqa: E402
from bench.server import free_port, start  # noqa: E402
from bench.synth import bench_settings, synthetic_projects, write_store  # noqa: E402

# Afghanistan's box (west, south, east, north) and Kabul.
COUNTRY = (60.5, 29.3, 75.0, 38.5)
KABUL = (69.1723, 34.5281)
ZOOMS = (4, 5, 6, 7, 8, 10, 12, 14)
# Most tiles timed per zoom (the deeper zooms have thousands over the country: a sample, spread evenly).
PER_ZOOM = 40


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The (x, y) of the tile holding this point at zoom z (slippy-map formula)."""
    n = 2 ** z
    return (int((lon + 180.0) / 360.0 * n),
            int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n))


def country_tiles(z: int) -> list[tuple[int, int]]:
    """Up to PER_ZOOM tiles over Afghanistan at zoom z, spread evenly."""
    x0, y0 = tile_of(COUNTRY[0], COUNTRY[3], z)
    x1, y1 = tile_of(COUNTRY[2], COUNTRY[1], z)
    tiles = [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]
    step = max(1, len(tiles) // PER_ZOOM)
    return tiles[::step][:PER_ZOOM]


def timed(url: str) -> tuple[float, int, int]:
    """Milliseconds to fetch `url` completely, its status and its size."""
    began = time.perf_counter()
    with urllib.request.urlopen(url) as answer:
        body = answer.read()
        status = answer.status
    return (time.perf_counter() - began) * 1000, status, len(body)


def main() -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("install wrk (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="bench-tiles-"))
    settings = bench_settings(work)
    write_store(settings.projects, synthetic_projects(args.projects, settings))
    env = {"GEO_PROJECTS": str(settings.projects), "GEO_LAYERS_DIR": str(settings.layers_dir),
           "GEO_DATA_MIRROR": str(settings.data_mirror)}
    uncached_port, cached_port, ref_port = free_port(), free_port(), free_port()
    uncached, _ = start("server:app", {**env, "GEO_TILE_CACHE_BYTES": "0"}, uncached_port)
    processes = [uncached]
    try:
        print(f"{args.projects:,} projects")
        print("Uncached tiles (GEO_TILE_CACHE_BYTES=0), one request at a time, over Afghanistan:")
        print(f"{'zoom':>4} {'tiles':>6} {'p50 ms':>8} {'p90 ms':>8} {'max ms':>8} {'mean kB':>8}")
        base = f"http://127.0.0.1:{uncached_port}/collections/projects/tiles/WebMercatorQuad"
        for z in ZOOMS:
            tiles = country_tiles(z)
            timed(f"{base}/{z}/{tiles[0][1]}/{tiles[0][0]}")  # the first of a zoom warms the memos
            runs = [timed(f"{base}/{z}/{y}/{x}") for x, y in tiles]
            ms = sorted(r[0] for r in runs)
            print(f"{z:4d} {len(ms):6d} {statistics.median(ms):8.2f} {ms[int(len(ms) * 0.9)]:8.2f} "
                  f"{ms[-1]:8.2f} {statistics.mean(r[2] for r in runs) / 1024:8.1f}", flush=True)
        x, y = tile_of(*KABUL, 6)
        heavy = f"{base}/6/{y}/{x}"
        filtered = f"{heavy}?status=proposed,planned&category=school"
        print("\nThe same tile again and again, uncached (wrk):")
        print(f"{'case':46} {'req/s':>9} {'mean ms':>8} {'server CPU us/req':>18}")
        for name, url in (("Kabul z6 tile, no filter", heavy), ("Kabul z6 tile, status+category", filtered)):
            rps, latency, cpu = wrk(url, args.seconds, args.connections, None, uncached.pid)
            print(f"{name:46} {rps:9.0f} {latency:8.2f} {cpu:18.0f}", flush=True)
        uncached.terminate()
        uncached.wait(10)

        cached, _ = start("server:app", env, cached_port)
        processes.append(cached)
        cached_url = f"http://127.0.0.1:{cached_port}/collections/projects/tiles/WebMercatorQuad/6/{y}/{x}"
        body = urllib.request.urlopen(cached_url).read()
        (work / "tile.pbf").write_bytes(body)
        reference, _ = start("bench.bare_asgi:app", {"BENCH_BODY": str(work / "tile.pbf")}, ref_port)
        processes.append(reference)
        print(f"\nCached tile ({len(body):,} bytes) against a bare ASGI app serving the same bytes (wrk; "
              f"{args.rounds} rounds alternating, as the shared machine's load moves requests/s):")
        print(f"{'case':46} {'req/s':>9} {'mean ms':>8} {'vs ref':>7} {'server CPU us/req':>18}")
        cases = (("reference: bare ASGI, same bytes", f"http://127.0.0.1:{ref_port}/", reference.pid),
                 ("Kabul z6 tile (cached)", cached_url, cached.pid),
                 ("Kabul z6 tile, filtered (cached)", f"{cached_url}?status=proposed,planned&category=school",
                  cached.pid))
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.rounds):
            ref_rps = 0.0
            for name, url, pid in cases:
                rps, latency, cpu = wrk(url, args.seconds, args.connections, None, pid)
                ref_rps = ref_rps or rps
                print(f"{name:46} {rps:9.0f} {latency:8.2f} {rps / ref_rps:7.2f} {cpu:18.0f}", flush=True)
                best[name] = max(best.get(name, (0.0, 0.0)), (rps, cpu), key=lambda r: r[0])
        ref_best, ref_cpu = best[cases[0][0]]
        print("\nBest of the rounds: " + "; ".join(
            f"{name}: {rps / ref_best:.2f} of the ceiling by req/s, {ref_cpu / cpu:.2f} by server CPU"
            for name, (rps, cpu) in list(best.items())[1:]))
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
