"""Benchmark the web map: time to a rendered map with 10,000 projects in headless Chromium, and page size.

Run: GEO_DATA_MIRROR=../shared/data .venv/bin/python bench/bench_map.py [--projects 10000] [--runs 5]
Needs Debian's Chromium (/usr/bin/chromium; scripts/system-deps.sh installs it) and Playwright.

Two servers run the same code on the same machine in the same run: one whose store holds N synthetic
projects, the reference whose store is empty. For each, a fresh browser page opens /map and the clock
stops when geomap.js reports every layer loaded and every marker clustered (GeoMap.state.ready). It
prints the median times, the ratio to the reference, the HTML page's size and the bytes transferred.

Above MapOptions.tiled_above projects (5,000) the page draws them from the vector tiles (tiles.js): the
clock then stops when the tiles in view are drawn, and "markers" counts the clusters and points drawn.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.server import free_port, start  # noqa: E402
from bench.synth import bench_settings, synthetic_projects, write_store  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
READY = "() => window.GeoMap && GeoMap.state.ready && GeoMap.state.layers"


def measure(browser: object, url: str, runs: int) -> tuple[list[float], int, int, int]:
    """Seconds from navigation to a rendered map, per run; markers shown; bytes received and tiles
    fetched in the last run."""
    times: list[float] = []
    received = shown = tiles = 0
    for _ in range(runs):
        context = browser.new_context()  # type: ignore[attr-defined]  # fresh cache each run
        page = context.new_page()
        began = time.perf_counter()
        page.goto(url)
        page.wait_for_function(READY, timeout=120_000, polling=20)
        times.append(time.perf_counter() - began)
        shown = int(page.evaluate("() => GeoMap.state.markers"))
        tiles = int(page.evaluate(
            "() => performance.getEntries().filter(e => e.name.includes('/tiles/')).length"))
        # Bytes as delivered (after gzip where the server compressed), page and every fetch.
        received = int(page.evaluate("""() => performance.getEntries()
            .filter(e => 'transferSize' in e).reduce((n, e) => n + e.transferSize, 0)"""))
        context.close()
    return times, shown, received, tiles


def main() -> None:
    """Run the benchmark and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="bench-map-"))
    try:
        settings = bench_settings(work)
        layers = settings.layers_dir
        full, empty = work / "projects.geojson", work / "empty.geojson"
        write_store(full, synthetic_projects(args.projects, settings))
        write_store(empty, [])
        servers = []
        urls = {}
        for label, store in (("reference (no projects)", empty), (f"{args.projects} projects", full)):
            port = free_port()
            proc, _ = start("server:app", {"GEO_PROJECTS": str(store), "GEO_LAYERS_DIR": str(layers),
                                           "GEO_MAP_TILES": "none", "GEO_API_KEYS": ""}, port)
            servers.append(proc)
            urls[label] = f"http://127.0.0.1:{port}/map"
        try:
            page_bytes = len(urllib.request.urlopen(next(iter(urls.values()))).read())
            results = {}
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                for label, url in urls.items():
                    measure(browser, url, 1)  # warm the server's caches and the OS
                    results[label] = measure(browser, url, args.runs)
                browser.close()
        finally:
            for proc in servers:
                proc.terminate()
                proc.wait(timeout=10)
        print(f"map page HTML: {page_bytes:,} bytes (no data embedded)")
        medians = {}
        for label, (times, shown, received, tiles) in results.items():
            medians[label] = statistics.median(times)
            print(f"{label:>26}: median {medians[label] * 1000:7.0f} ms to a rendered map "
                  f"(runs: {', '.join(f'{t * 1000:.0f}' for t in times)} ms); {shown} markers; "
                  f"{tiles} tiles; {received / 1e6:.2f} MB received")
        ref, big = medians.values()
        print(f"ratio {args.projects} projects / reference: {big / ref:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
