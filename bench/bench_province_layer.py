"""Benchmark the web map's provinces layer: drawn from GeoJSON (what the map does) or from vector tiles.

Run: GEO_DATA_MIRROR=../shared/data .venv/bin/python bench/bench_province_layer.py [--runs 7]
Needs Debian's Chromium (/usr/bin/chromium) and Playwright, like bench_map.py.

One server, one headless Chromium; each run a fresh browser context (an empty cache) opens a blank page of
the map's size holding Leaflet and Leaflet.VectorGrid from the service, frames Afghanistan, and draws the
34 provinces either as the map does (one GeoJSON request of the items, `L.geoJSON`) or from the provinces'
vector tiles (`L.vectorGrid.protobuf`, every tile in view). The clock runs from the start of the fetch to
the layer drawn (GeoJSON: added to the map; tiles: VectorGrid's `load`, every tile in view drawn). It prints
the median times, their ratio, the requests and the bytes received (as delivered, gzip where the server
compressed).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_map import ARGS, CHROMIUM  # noqa: E402
from bench.server import free_port, start  # noqa: E402
from bench.synth import bench_settings  # noqa: E402
from geo.web import assets  # noqa: E402

# Afghanistan, as the map frames it; the map's size in the browser tests.
BOUNDS = "[[29.3, 60.5], [38.5, 75.0]]"
WIDTH, HEIGHT = 1280, 800
DRAW = {
    "GeoJSON (the map)": """async base => {
        const began = performance.now();
        const answer = await fetch(base + '/collections/provinces/items?limit=10000');
        const layer = L.geoJSON(await answer.json(), {style: {color: '#555', weight: 1}});
        layer.addTo(window.theMap);
        return [performance.now() - began, layer.getLayers().length];
    }""",
    "vector tiles": """base => new Promise(done => {
        const began = performance.now();
        const layer = L.vectorGrid.protobuf(
            base + '/collections/provinces/tiles/WebMercatorQuad/{z}/{y}/{x}',
            {vectorTileLayerStyles: {provinces: {color: '#555', weight: 1, fill: true}}});
        layer.on('load', () => done([performance.now() - began, 0]));
        layer.addTo(window.theMap);
    })""",
}


def page(base: str) -> str:
    """A blank page of the map's size with Leaflet and VectorGrid from the service, framing the country."""
    leaflet = base + assets.url("leaflet", "leaflet.js")
    css = base + assets.url("leaflet", "leaflet.css")
    grid = base + assets.url("vendor", "leaflet.vectorgrid-1.3.0/dist/Leaflet.VectorGrid.bundled.min.js")
    return (f'<!doctype html><html><head><link rel="stylesheet" href="{css}">'
            f'<script src="{leaflet}"></script><script src="{grid}"></script></head><body style="margin:0">'
            f'<div id="m" style="width:{WIDTH}px;height:{HEIGHT}px"></div><script>'
            f'window.theMap = L.map("m", {{zoomSnap: 1}}).fitBounds({BOUNDS});</script></body></html>')


def recorder(sizes: list[int]) -> Any:
    """A `requestfinished` listener that notes the body size of each response of the provinces layer."""
    def record(request: Any) -> None:
        if "/collections/provinces/" in request.url:
            sizes.append(int(request.sizes()["responseBodySize"]))
    return record


def measure(browser: Any, base: str, draw: str, runs: int) -> tuple[list[float], int, int, int]:
    """Milliseconds to the drawn layer per run; features drawn (GeoJSON), requests and bytes of the layer
    in the last run."""
    times: list[float] = []
    shown = requests = received = 0
    for _ in range(runs):
        context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
        tab = context.new_page()
        tab.set_content(page(base), wait_until="load")
        sizes: list[int] = []  # the layer's responses, bodies as received (gzip where compressed)
        tab.on("requestfinished", recorder(sizes))
        took, shown = tab.evaluate(draw, base)
        times.append(float(took))
        tab.wait_for_timeout(100)  # the last requestfinished events
        requests, received = len(sizes), sum(sizes)
        context.close()
    return times, int(shown), requests, received


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="bench-provinces-"))
    settings = bench_settings(work)
    shutil.copy(ROOT / "projects.geojson", settings.projects)
    env = {"GEO_PROJECTS": str(settings.projects), "GEO_LAYERS_DIR": str(settings.layers_dir),
           "GEO_DATA_MIRROR": str(settings.data_mirror)}
    port = free_port()
    server, _ = start("server:app", env, port)
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            results = {name: measure(browser, base, draw, args.runs) for name, draw in DRAW.items()}
            browser.close()
        print(f"the 34 provinces drawn on a {WIDTH}x{HEIGHT} map framing Afghanistan; median of "
              f"{args.runs} runs")
        print(f"{'layer':20} {'ms':>7} {'vs GeoJSON':>11} {'requests':>9} {'bytes':>8}")
        reference = statistics.median(results["GeoJSON (the map)"][0])
        for name, (times, _, requests, received) in results.items():
            median = statistics.median(times)
            print(f"{name:20} {median:7.1f} {median / reference:11.2f} {requests:9} {received:8}")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
