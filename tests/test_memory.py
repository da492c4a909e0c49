"""Memory stays bounded under cache-busting traffic: a real server, thousands of distinct requests.

Every request differs in its query string, its Host and an 8 kB Accept header, so a cache keyed on
raw headers would add an entry (and 8 kB of key) each time. The caches are given small budgets
here; the server process's resident memory (from /proc) must grow by no more than those budgets
plus a margin for the allocator and warm code paths.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import workspace
from tests.server import live_server, server_pid

RESPONSE_CACHE_BYTES = 2 << 20
PAGE_CACHE_BYTES = 1 << 20
# What the allocator, warm code paths and in-flight requests may add (measured: see the README).
MARGIN = 16 << 20
REQUESTS = 2000
MAPS = 100
CONNECTIONS = 16

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status")


def rss(pid: int) -> int:
    """The process's resident set size in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc status")


def _accept(rng: random.Random) -> str:
    return "application/geo+json, x/" + "".join(rng.choices("abcdefghij", k=8000))


def _busting_requests(base: str, numbers: range, seed: int) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=base, timeout=30) as client:
        for i in numbers:
            response = client.get(
                "/collections/provinces/items",
                params={"limit": "3", "offset": str(i % 32), "bbox": f"60,29,75,{39 + i / 1e6}"},
                # Uncompressed: about 14 kB a page, so an unbounded cache would show at once.
                headers={"Accept": _accept(rng), "Host": f"h{i}.example", "Accept-Encoding": "identity"})
            assert response.status_code == 200, response.text
            if i % (REQUESTS // MAPS) == 0:
                page = client.get("/map", params={"bbox": f"60,29,75,{39 + i / 1e6}"},
                                  headers={"Accept": _accept(rng), "Host": f"m{i}.example"})
                assert page.status_code == 200


def _traffic(base: str, start: int, count: int) -> None:
    # Many connections at once: the live server's loopback adds a fixed latency to every request
    # (see tests/server.py), so requests overlap to keep the test short; the server's CPU is the limit.
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        jobs = [pool.submit(_busting_requests, base, range(start + k, start + count, CONNECTIONS), k)
                for k in range(CONNECTIONS)]
        for job in jobs:
            job.result()


def test_cache_busting_requests_keep_memory_within_the_budgets(tmp_path: Path, provinces_cache: Path) -> None:
    settings = workspace(tmp_path, provinces_cache, response_cache_bytes=RESPONSE_CACHE_BYTES,
                         response_cache_entries=100_000, page_cache_bytes=PAGE_CACHE_BYTES,
                         page_cache_entries=100_000)
    with live_server(settings, log=tmp_path / "server.log") as base:
        pid = server_pid(base)
        _traffic(base, 0, 200)  # warm code paths and fill the caches to their budgets
        before = rss(pid)
        _traffic(base, 200, REQUESTS)
        after = rss(pid)
    growth = after - before
    budgets = (RESPONSE_CACHE_BYTES + PAGE_CACHE_BYTES) / 2**20
    report = (f"RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB (+{growth / 2**20:.1f} MiB) after "
              f"{REQUESTS} distinct requests; budgets {budgets:.0f} MiB")
    print(report)
    if os.environ.get("GEO_MEMORY_REPORT"):
        Path(os.environ["GEO_MEMORY_REPORT"]).write_text(report + "\n")
    assert growth <= RESPONSE_CACHE_BYTES + PAGE_CACHE_BYTES + MARGIN, report
    assert "Traceback" not in (tmp_path / "server.log").read_text()


# --- the read model: how much a table holds, and that writes neither grow it nor cost more with size ---

_TABLE_PROBE = r'''
import gc, json, random, sys
from pathlib import Path
import numpy as np
import fastapi, geopandas, pandas  # the server's imports, so that their memory is counted before
from geo.query import cql
from geo.query.featuretable import FeatureTable
from geo.schema import PROJECT_FILTERS, PROJECT_QUERYABLES, PROJECT_TEMPORAL

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

def project(i, rng):
    return {"type": "Feature", "id": f"p-{i:06d}",
            "geometry": {"type": "Point", "coordinates": [round(rng.uniform(61, 74.5), 5),
                                                          round(rng.uniform(29.5, 38.4), 5)]},
            "properties": {"name": f"School {i}", "category": rng.choice(["school", "clinic", "road"]),
                           "status": rng.choice(["proposed", "planned", "ongoing"]),
                           "budget_usd": rng.randrange(10_000, 50_000_000), "province": "AF-KAB",
                           "start_date": f"20{rng.randrange(20, 30)}-0{rng.randrange(1, 10)}-15",
                           "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                           "status_history": [{"status": "proposed", "at": "2026-01-01T00:00:00Z"}]}}

def reads(table):
    table.feature_collection(np.arange(50))
    table.select(bbox=(68.5, 34.0, 69.8, 35.0))
    table.select(equals={"status": ["planned"]})
    cql.evaluate(cql.parse("budget_usd > 1000000", "cql2-text"), table.frame(PROJECT_QUERYABLES))

count, writes = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(3)
reads(FeatureTable((project(i, rng) for i in range(50)), "warm", PROJECT_FILTERS, PROJECT_TEMPORAL))
gc.collect()
before = rss()
table = FeatureTable((project(i, rng) for i in range(count)), "v0", PROJECT_FILTERS, PROJECT_TEMPORAL)
reads(table)
gc.collect()
loaded = rss()
for n in range(writes):
    fid = f"p-{rng.randrange(count):06d}"
    change = (fid, project(int(fid[2:]), rng)) if n % 2 or fid not in table.position else (fid, None)
    table = table.apply([change], version=f"v{n}")
    reads(table)
gc.collect()
print(json.dumps({"before": before, "loaded": loaded, "written": rss()}))
'''


def _probe(count: int, writes: int) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", _TABLE_PROBE, str(count), str(writes)], capture_output=True,
                          text=True, check=True, cwd=Path(__file__).resolve().parents[1], timeout=300)
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_table_holds_about_two_kilobytes_a_project_and_writes_do_not_grow_it() -> None:
    """20,000 project-like features (about 420 bytes each as GeoJSON) with their indexes and the memos
    of the usual reads (CQL2 frame, spatial tree, filter masks): the process grows by at most 2.5 kB a
    feature (the tuple of parsed dicts and orjson buffers of before held about 10 kB). 1,200 writes,
    each followed by those reads, add at most 24 MB: the allocator's working set (measured: 11 MB
    after 300 writes, 7 MB after 900), where keeping one old version a write would add 1.2 GB and 20 kB
    a write 24 MB."""
    count, writes = 20_000, 1200
    got = _probe(count, writes)
    per_feature = (got["loaded"] - got["before"]) / count
    growth = got["written"] - got["loaded"]
    report = f"{per_feature:.0f} bytes a feature; +{growth / 2**20:.1f} MiB after {writes} writes"
    print(report)
    assert per_feature < 2560, report
    assert growth < 24 << 20, report
