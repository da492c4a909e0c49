"""Benchmark downloads: features/s and MB/s per format for a layer of synthetic projects.

Run: GEO_DATA_MIRROR=../shared/data .venv/bin/python bench/bench_downloads.py [--projects 100000]
Each format is downloaded whole over real HTTP from uvicorn on loopback (no compression, no 304),
`--repeat` times; the median counts. The reference, measured in the same run and process as the
client, is the raw cost of orjson-serialising the same features (what any JSON output must pay at
least); the ratio is the format's features/s over the reference's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.server import free_port, start  # noqa: E402
from bench.synth import bench_settings, synthetic_projects, write_store  # noqa: E402
from geo.formats import FORMATS  # noqa: E402

MB = 1_000_000


def timed_download(client: httpx.Client, url: str) -> tuple[float, int]:
    """Seconds to receive the whole body, and its size in bytes."""
    began = time.perf_counter()
    size = 0
    with client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            size += len(chunk)
    return time.perf_counter() - began, size


def reference(features: list[dict[str, object]], repeat: int) -> tuple[float, int]:
    """Median seconds and bytes to orjson-serialise every feature (the floor for JSON output)."""
    times = []
    size = 0
    for _ in range(repeat):
        began = time.perf_counter()
        size = sum(len(orjson.dumps(f)) for f in features)
        times.append(time.perf_counter() - began)
    return statistics.median(times), size


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-downloads-"))
    try:
        settings = bench_settings(work)
        layers, mirror = settings.layers_dir, settings.data_mirror
        features = synthetic_projects(args.projects, settings)
        write_store(settings.projects, features)
        port = free_port()
        env = {"GEO_PROJECTS": str(settings.projects), "GEO_LAYERS_DIR": str(layers),
               "GEO_DATA_MIRROR": str(mirror), "GEO_ALLOW_DOWNLOAD": "false"}
        proc, _ = start("server:app", env, port)
        try:
            ref_s, ref_bytes = reference(features, args.repeat)
            ref_fps = len(features) / ref_s
            print(f"{len(features)} projects, {os.cpu_count()} CPUs, median of {args.repeat}")
            print(f"{'format':<12}{'MB':>9}{'seconds':>9}{'features/s':>13}{'MB/s':>9}{'ratio':>8}")
            print(f"{'orjson ref':<12}{ref_bytes / MB:>9.1f}{ref_s:>9.3f}{ref_fps:>13,.0f}"
                  f"{ref_bytes / MB / ref_s:>9.1f}{1.0:>8.2f}")
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
                for ext in FORMATS:
                    url = f"/layers/projects.{ext}"
                    timed_download(client, url)  # warm: the table is built on the first request
                    runs = [timed_download(client, url) for _ in range(args.repeat)]
                    seconds = statistics.median(t for t, _ in runs)
                    size = runs[-1][1]
                    fps = len(features) / seconds
                    print(f"{ext:<12}{size / MB:>9.1f}{seconds:>9.3f}{fps:>13,.0f}"
                          f"{size / MB / seconds:>9.1f}{fps / ref_fps:>8.2f}")
        finally:
            proc.terminate()
            proc.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
