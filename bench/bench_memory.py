"""Benchmark the in-memory read model: the cost of one write (`FeatureTable.apply`) and the memory a
table of synthetic projects holds.

Run: GEO_DATA_MIRROR=../shared/data .venv/bin/python bench/bench_memory.py [--sizes 1000,10000,100000]

For each size, in a fresh process: the resident memory (VmRSS) after the imports, after loading the
table, after the reads a server does (items pages, bbox, status, datetime, CQL2, sortby, stats), and
after `--writes` writes each followed by such reads; and the time of one `apply` (one change: a
replace, an add or a delete in turn) and of the first reads after it (which move what the previous
version derived). The projects are drawn once per size by bench/synth.py and kept in a cache folder.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CACHE = Path(tempfile.gettempdir()) / "geo-bench-memory"


def rss_mb() -> float:
    """This process's resident set size in MB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def projects_file(count: int) -> Path:
    """A store file of `count` synthetic projects (drawn once, then read from the cache)."""
    path = CACHE / f"projects-{count}.geojson"
    if not path.exists():
        from bench.synth import bench_settings, synthetic_projects, write_store

        CACHE.mkdir(parents=True, exist_ok=True)
        settings = bench_settings(Path(tempfile.mkdtemp(prefix="bench-memory-")))
        write_store(path, synthetic_projects(count, settings))
    return path


def p90(values: list[float]) -> float:
    """The 90th percentile."""
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def features_of(data: bytes, whole: bool) -> Any:
    """The features of a store file: parsed whole, or a line at a time (the store writes one feature
    per line), so that only a chunk of parsed features is alive while the table is built."""
    import orjson

    if whole:
        return orjson.loads(data)["features"]
    lines = data.split(b"\n")
    return (orjson.loads(line.rstrip(b",")) for line in lines[1:] if line.startswith(b"{"))


def _reads(table: Any, queryables: Any, cql: Any, stats: Any, rng: random.Random) -> None:
    """What a server asks of a version: pages, a bbox, a status, a datetime, CQL2, sortby, stats."""
    import numpy as np

    n = len(table)
    offset = rng.randrange(max(1, n - 50))
    table.feature_collection(np.arange(offset, min(n, offset + 50)))
    table.select(bbox=(68.5, 34.0, 69.8, 35.0))
    table.select(equals={"status": ["proposed", "planned"]})
    table.select(interval=(np.datetime64("2024-01-01T00:00:00", "s"), None))
    frame = table.frame(queryables)
    cql.evaluate(cql.parse("category = 'school' AND budget_usd > 1000000", "cql2-text"), frame)
    frame.rank("budget_usd", True)
    if stats is not None:
        stats(table)


def child(count: int, writes: int, whole: bool) -> dict[str, Any]:
    """Measure one size in this process; the numbers as a dict."""
    import numpy as np

    from geo.query import cql
    from geo.query.featuretable import FeatureTable
    from geo.schema import PROJECT_FILTERS, PROJECT_QUERYABLES, PROJECT_TEMPORAL

    # The provinces the server knows (the synthetic projects are placed in them).
    known = ("AF-BAL", "AF-BAM", "AF-BDG", "AF-BDS", "AF-BGL", "AF-DAY", "AF-FRA", "AF-FYB", "AF-GHA",
             "AF-GHO", "AF-HEL", "AF-HER", "AF-JOW", "AF-KAB", "AF-KAN", "AF-KAP", "AF-KDZ", "AF-KHO",
             "AF-KNR", "AF-LAG", "AF-LOG", "AF-NAN", "AF-NIM", "AF-NUR", "AF-PAN", "AF-PAR", "AF-PIA",
             "AF-PKA", "AF-SAM", "AF-SAR", "AF-TAK", "AF-URU", "AF-WAR", "AF-ZAB")
    try:
        from geo.stats import inputs_of

        def stats(table: Any) -> Any:
            return inputs_of(table, known)
    except ImportError:
        stats = None  # an older tree
    import fastapi  # noqa: F401  (the server's imports count in its memory)
    import geopandas  # noqa: F401
    import pandas  # noqa: F401

    out: dict[str, Any] = {"rows": count, "rss_imports": rss_mb()}
    data = projects_file(count).read_bytes()
    began = time.perf_counter()
    features = features_of(data, whole or not hasattr(FeatureTable, "apply"))
    table = FeatureTable(features if hasattr(FeatureTable, "apply") else tuple(features), "v0",
                         filter_columns=PROJECT_FILTERS, temporal=PROJECT_TEMPORAL)
    del features, data
    out["load_s"] = time.perf_counter() - began
    gc.collect()
    out["rss_loaded"] = rss_mb()
    rng = random.Random(7)
    began = time.perf_counter()
    _reads(table, PROJECT_QUERYABLES, cql, stats, rng)
    out["first_reads_s"] = time.perf_counter() - began
    gc.collect()
    out["rss_read"] = rss_mb()
    incremental = hasattr(table, "apply")
    apply_ms: list[float] = []
    read_ms: list[float] = []
    ids = list(table.ids)
    for n in range(writes):
        kind = n % 3
        if kind == 0 or len(ids) < 2:  # replace
            fid = ids[rng.randrange(len(ids))]
            feature = table.get(fid)
            feature["properties"]["budget_usd"] = rng.randrange(10_000, 50_000_000)
            change: tuple[str, Any] = (fid, feature)
        elif kind == 1:  # add
            fid = f"new-{n:06d}"
            feature = {**table.features[0], "id": fid}
            ids.append(fid)
            change = (fid, feature)
        else:  # delete
            fid = ids.pop(rng.randrange(len(ids)))
            change = (fid, None)
        began = time.perf_counter()
        if incremental:
            table = table.apply([change], version=f"v{n + 1}")
        else:  # the table before `apply`: rebuilt from all features, as the store did
            feats = {f["id"]: f for f in table.features}
            if change[1] is None:
                del feats[change[0]]
            else:
                feats[change[0]] = change[1]
            table = FeatureTable(tuple(feats.values()), f"v{n + 1}", filter_columns=PROJECT_FILTERS,
                                 temporal=PROJECT_TEMPORAL)
        apply_ms.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        _reads(table, PROJECT_QUERYABLES, cql, stats, rng)
        read_ms.append((time.perf_counter() - began) * 1000)
    gc.collect()
    out["rss_written"] = rss_mb()
    if apply_ms:
        out["apply_p50_ms"] = statistics.median(apply_ms)
        out["apply_p90_ms"] = p90(apply_ms)
        out["apply_max_ms"] = max(apply_ms)
        out["reads_after_p50_ms"] = statistics.median(read_ms)
        out["reads_after_p90_ms"] = p90(read_ms)
    out["writes"] = writes
    out["check"] = int(np.asarray(table.select(bbox=(60, 29, 75, 39))).size)
    return out


def main() -> None:
    """Run each size in a fresh process and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--whole", action="store_true", help="parse the store file whole before the table")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.writes, args.whole)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    for size in sizes:
        projects_file(size)  # drawn here, outside the measured processes
    print(f"{'rows':>8} {'load s':>7} {'RSS MB: imports':>16} {'loaded':>7} {'read':>7} "
          f"{'+writes':>8} {'apply p50 ms':>13} {'p90':>6} {'max':>7} {'reads after p50':>16} {'p90':>7}")
    for size in sizes:
        command = [sys.executable, __file__, "--child", str(size), "--writes", str(args.writes)]
        done = subprocess.run(command + (["--whole"] if args.whole else []), capture_output=True, text=True,
                              check=True, env={**os.environ})
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{r['rows']:>8,} {r['load_s']:7.2f} {r['rss_imports']:16.0f} {r['rss_loaded']:7.0f} "
              f"{r['rss_read']:7.0f} {r['rss_written']:8.0f} {r.get('apply_p50_ms', 0):13.3f} "
              f"{r.get('apply_p90_ms', 0):6.3f} {r.get('apply_max_ms', 0):7.1f} "
              f"{r.get('reads_after_p50_ms', 0):16.2f} {r.get('reads_after_p90_ms', 0):7.2f}")
    print(f"({args.writes} writes per size: replace, add, delete in turn, each followed by the reads; "
          f"the store file parsed {'whole' if args.whole else 'a line at a time'})")


if __name__ == "__main__":
    main()
