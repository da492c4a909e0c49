"""Memory stays bounded under cache-busting traffic: a real server, thousands of distinct requests.

Every request differs in its query string, its Host and an 8 kB Accept header, so a cache keyed on
raw headers would add an entry (and 8 kB of key) each time. The caches are given small budgets
here; the server process's resident memory (from /proc) must grow by no more than those budgets
plus a margin for the allocator and warm code paths.
"""

from __future__ import annotations

import os
import random
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
