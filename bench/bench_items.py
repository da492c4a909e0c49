"""Benchmark the read path: start-up time and item-page throughput against a bare ASGI app.

Run: GEO_DATA_MIRROR=../shared/data .venv/bin/python bench/bench_items.py [--projects 10000]
Needs `wrk` (Debian package) for the load; prints requests/s, latency, the ratio to the reference
(a bare ASGI app serving the same bytes as the items page, on the same uvicorn, in the same run) and the
server's CPU time per request (from /proc: what a shared machine's load moves least).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.server import free_port, start  # noqa: E402
from bench.synth import bench_settings, synthetic_projects, write_store  # noqa: E402

# Every request a different page (offset and limit vary), so none is answered by the response cache.
DISTINCT = """
counter = 0
request = function()
  counter = counter + 1
  local limit = 10 + math.floor(counter / 9000) % 40
  local path = string.format("%s&offset=%d&limit=%d", wrk.path, counter % 9000, limit)
  return wrk.format(nil, path)
end
"""
# Every request a different CQL2 filter (its number varies; the path ends in `...%3E`), so neither the
# response cache nor the filters read and evaluated before (params._parsed, FeatureTable.mask) answer it.
NEW_FILTER = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, string.format("%s%d&offset=%d", wrk.path, 1000 + counter, counter % 50))
end
"""
# Every request a different bbox (its west edge moves by 0.0001 degree), so no selection kept from an
# earlier request (FeatureTable.recent) answers it: the spatial index is searched every time.
NEW_BBOX = """
counter = 0
request = function()
  counter = counter + 1
  local west = 68.0 + (counter % 10000) * 0.0001
  return wrk.format(nil, string.format("%s?bbox=%.4f,34,69.8,35&limit=10", wrk.path, west))
end
"""
SCRIPTS = {"page": DISTINCT, "filter": NEW_FILTER, "bbox": NEW_BBOX}


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, seconds: int, connections: int, distinct: str | None = None,
        server: int | None = None) -> tuple[float, float, float]:
    """Requests per second, mean latency (ms) and the CPU time the server process (pid `server`) spent
    per request (us; 0 without a pid) from wrk (distinct: "page", a new page every request; "filter", a
    new filter every request; "bbox", a new bbox every request). The CPU time per request hardly moves
    with the machine's load, which moves requests/s: it is the figure to compare between runs on a shared
    machine."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if distinct is not None:
            script.write(SCRIPTS[distinct])
            script.flush()
            command += ["-s", script.name]
        began = cpu_seconds(server) if server is not None else 0.0
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        spent = cpu_seconds(server) - began if server is not None else 0.0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    lat = re.search(r"Latency\s+([\d.]+)(us|ms|s)", out)
    assert lat is not None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[lat.group(2)]
    return rps, float(lat.group(1)) * scale, spent / max(done, 1) * 1e6


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--cases", default="", help="only the cases whose name holds one of these "
                        "comma-separated words (the reference always runs)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("install wrk (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="bench-items-"))
    settings = bench_settings(work)
    features = synthetic_projects(args.projects, settings)
    write_store(settings.projects, features)
    env = {"GEO_PROJECTS": str(settings.projects), "GEO_LAYERS_DIR": str(settings.layers_dir),
           "GEO_DATA_MIRROR": str(settings.data_mirror)}
    port = free_port()
    server, startup = start("server:app", env, port)
    base = f"http://127.0.0.1:{port}"
    page = urllib.request.urlopen(f"{base}/collections/projects/items?limit=10").read()
    (work / "body.json").write_bytes(page)
    ref_port = free_port()
    reference, _ = start("bench.bare_asgi:app", {"BENCH_BODY": str(work / "body.json")}, ref_port)
    try:
        items = f"{base}/collections/projects/items"
        cql = "filter=category%3D%27school%27%20AND%20budget_usd%3E"
        cases: dict[str, tuple[str, str | None]] = {
            "reference: bare ASGI, same bytes": (f"http://127.0.0.1:{ref_port}/", None),
            "repeated page, limit=10 (cached)": (f"{items}?limit=10", None),
            "repeated page, bbox (cached)": (f"{items}?bbox=68.5,34,69.8,35", None),
            "repeated item (cached)": (f"{items}/{features[len(features) // 2]['id']}", None),
            "new page each time, limit=10..49": (f"{items}?f=json", "page"),
            "new page each time, bbox": (f"{items}?bbox=68.5,34,69.8,35", "page"),
            "new page each time, status+category": (f"{items}?status=proposed&category=school", "page"),
            "new page each time, CQL2 filter": (f"{items}?{cql}1000000", "page"),
            "new CQL2 filter each time": (f"{items}?{cql}", "filter"),
            "new bbox each time": (items, "bbox"),
            "items, limit=1000 (cached)": (f"{items}?limit=1000", None),
        }
        wanted = [word for word in args.cases.split(",") if word]
        cases = {name: case for i, (name, case) in enumerate(cases.items())
                 if i == 0 or not wanted or any(word in name for word in wanted)}
        print(f"{args.projects:,} projects; server start-up to first answer: {startup:.2f} s")
        print(f"{'case':42} {'req/s':>9} {'mean ms':>8} {'vs ref':>7} {'server CPU us/req':>18}")
        ref_rps = 0.0
        for name, (url, distinct) in cases.items():
            pid = reference.pid if url.startswith(f"http://127.0.0.1:{ref_port}/") else server.pid
            # One request first, so that what a version builds once (the CQL2 frame: seconds at 100,000
            # projects) is not counted as the steady state, nor times out wrk's first requests.
            urllib.request.urlopen(url + ("1000" if distinct == "filter" else ""), timeout=120).read()
            rps, latency, cpu = wrk(url, args.seconds, args.connections, distinct, pid)
            ref_rps = ref_rps or rps
            print(f"{name:42} {rps:9.0f} {latency:8.2f} {rps / ref_rps:7.2f} {cpu:18.0f}", flush=True)
    finally:
        for proc in (server, reference):
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
