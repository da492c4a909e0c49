"""Bounded work per client: export slots, and slow or stalled clients that cannot hold the server.

The slot tests block a real export on an event, so requests overlap by construction. The slow-client
tests run a real uvicorn server and talk to it over raw sockets, the way a stalled client would.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from geo import formats
from geo.app import create_app
from geo.cli import build_parser, uvicorn_options
from geo.formats import FORMATS, Selection
from geo.formats.slots import ExportSlots
from geo.http.serving import GuardedHttpTools
from geo.settings import Settings
from tests.conftest import AUTH, KEY, point_feature, workspace
from tests.server import _env as server_env
from tests.server import live_server

ITEMS = "/collections/projects/items"


class BlockedExport:
    """The GeoPackage writer, held on an event once it has started (so a test knows it is running)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.real = FORMATS["gpkg"].write

    def __call__(self, sel: Selection, path: Path) -> None:
        self.started.set()
        assert self.release.wait(30), "the test never released the export"
        assert self.real is not None
        self.real(sel, path)


@pytest.fixture
def blocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[BlockedExport]:
    """GeoPackage downloads block until `release` is set (and are released at the end regardless)."""
    export = BlockedExport()
    monkeypatch.setitem(formats.FORMATS, "gpkg", dataclasses.replace(FORMATS["gpkg"], write=export))
    yield export
    export.release.set()


def _client(tmp_path: Path, provinces_cache: Path, **settings: Any) -> TestClient:
    return TestClient(create_app(workspace(tmp_path, provinces_cache, api_keys=KEY, **settings)))


def test_exports_past_the_limit_get_503_with_retry_after(tmp_path: Path, provinces_cache: Path,
                                                         blocked: BlockedExport) -> None:
    with _client(tmp_path, provinces_cache, max_concurrent_exports=1, export_wait_s=0) as client, \
            ThreadPoolExecutor(1) as pool:
        first = pool.submit(client.get, "/layers/projects.gpkg")
        assert blocked.started.wait(30)
        # The one slot is taken: another expensive format is refused at once, with a hint.
        for fmt in ("kml", "csv", "shp.zip", "fgb", "parquet"):
            busy = client.get(f"/layers/provinces.{fmt}", params={"bbox": "60,30,70,35"})
            assert busy.status_code == 503, fmt
            assert busy.headers["retry-after"] == "5"
            assert busy.headers["content-type"] == "application/problem+json"
            assert busy.json()["type"].endswith("exports-busy")
        # Joining stored bytes costs nothing: GeoJSON is not limited; HEAD builds nothing.
        assert client.get("/layers/provinces.geojson").status_code == 200
        head = client.head("/layers/provinces.kml")
        assert head.status_code == 200 and head.headers["etag"]
        blocked.release.set()
        done = first.result(timeout=30)
        assert done.status_code == 200 and done.content.startswith(b"SQLite format 3")
        # The slot came back.
        assert client.get("/layers/provinces.kml").status_code == 200


def test_an_export_waits_for_a_slot_that_frees_in_time(tmp_path: Path, provinces_cache: Path,
                                                       blocked: BlockedExport) -> None:
    with _client(tmp_path, provinces_cache, max_concurrent_exports=1, export_wait_s=30) as client, \
            ThreadPoolExecutor(2) as pool:
        slots: ExportSlots = client.app.state.export_slots  # type: ignore[attr-defined]
        first = pool.submit(client.get, "/layers/projects.gpkg")
        assert blocked.started.wait(30)
        second = pool.submit(client.get, "/layers/projects.kml")
        deadline = time.monotonic() + 30
        while slots.waiting != 1:  # the second is queued behind the first
            assert time.monotonic() < deadline, "the second export never waited"
            time.sleep(0.01)
        blocked.release.set()
        assert first.result(timeout=30).status_code == 200
        assert second.result(timeout=30).status_code == 200
        assert slots.waiting == 0


def test_a_failed_export_gives_its_slot_back(tmp_path: Path, provinces_cache: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(sel: Selection, path: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setitem(formats.FORMATS, "gpkg", dataclasses.replace(FORMATS["gpkg"], write=broken))
    with _client(tmp_path, provinces_cache, max_concurrent_exports=1, export_wait_s=0) as client:
        client_errors = TestClient(client.app, raise_server_exceptions=False)
        for _ in range(3):
            assert client_errors.get("/layers/projects.gpkg").status_code == 500
        assert client.get("/layers/projects.kml").status_code == 200


# --- slow clients, through a real server -----------------------------------------------------------


def _connect(base: str, rcvbuf: int | None = None) -> socket.socket:
    url = urlsplit(base)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connecting: a small window
    sock.connect((url.hostname or "127.0.0.1", url.port or 80))
    return sock


def _read_all(sock: socket.socket, limit_s: float) -> bytes:
    """Everything until the server closes the connection (or `limit_s` passes: then a failure)."""
    sock.settimeout(limit_s)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_stalled_upload_times_out_while_others_are_served(tmp_path: Path, provinces_cache: Path) -> None:
    log = tmp_path / "server.log"
    settings = workspace(tmp_path / "w", provinces_cache, api_keys=KEY, body_timeout_s=1.0)
    with live_server(settings, log=log) as base:
        before = httpx.get(f"{base}{ITEMS}").json()["numberMatched"]
        stalled = _connect(base)
        began = time.monotonic()
        stalled.sendall(b"POST " + ITEMS.encode() + b" HTTP/1.1\r\nHost: test\r\n"
                        b"Authorization: Bearer " + KEY.encode() + b"\r\n"
                        b"Content-Type: application/geo+json\r\nContent-Length: 400\r\n\r\n"
                        b'{"type": "Feature", "geometry": ')  # ... and nothing more
        # Meanwhile the server answers other clients, reads and writes.
        assert httpx.get(f"{base}/conformance").status_code == 200
        created = httpx.post(f"{base}{ITEMS}", json=point_feature(name="While another stalls"), headers=AUTH)
        assert created.status_code == 201
        answer = _read_all(stalled, limit_s=15)  # the server answers, then closes the connection
        waited = time.monotonic() - began
        stalled.close()
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"application/problem+json" in answer and b"request-timeout" in answer
        assert 1.0 <= waited < 10, waited
        assert httpx.get(f"{base}{ITEMS}").json()["numberMatched"] == before + 1  # only the good write
    assert "Traceback" not in log.read_text()


def _socket_buffer_limit() -> int:
    """The most a TCP socket's send buffer grows to (net.ipv4.tcp_wmem's maximum; 4 MB by default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 4 << 20


def test_a_client_that_stops_reading_a_download_is_cut_off(tmp_path: Path, provinces_cache: Path) -> None:
    settings = workspace(tmp_path / "w", provinces_cache, stall_timeout_s=1.0)
    # A store (long descriptions) more than twice what the kernel's socket buffers hold, 10 MB here.
    size = 2 * _socket_buffer_limit() + 2_000_000
    doc = json.loads(settings.projects.read_text(encoding="utf-8"))
    template = doc["features"][0]
    doc["features"] += [{**template, "id": f"copy-{i}",
                         "properties": {**template["properties"], "description": f"{i} " + "x" * 30_000}}
                        for i in range(size // 30_000)]
    settings.projects.write_text(json.dumps(doc), encoding="utf-8")
    log = tmp_path / "server.log"
    with live_server(settings, log=log) as base:
        reader = _connect(base, rcvbuf=4096)
        reader.sendall(b"GET /layers/projects.geojson HTTP/1.1\r\nHost: test\r\n"
                       b"Accept-Encoding: identity\r\n\r\n")
        time.sleep(3)  # read nothing for longer than the stall limit
        # The server is still free for others meanwhile.
        assert httpx.get(f"{base}/collections/projects/items?limit=1").status_code == 200
        received = _read_all(reader, limit_s=15)
        reader.close()
        head, _, body = received.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        assert length > size and len(body) < length  # cut off, not delivered late
    text = log.read_text()
    assert "closed a download the client had not read" in text and "Traceback" not in text


# --- `geo serve`: the uvicorn limits it sets -------------------------------------------------------


@contextmanager
def geo_serve(settings: Settings, *options: str) -> Iterator[str]:
    """`geo serve` in a subprocess on a socket bound here (no race for the port); its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    proc = subprocess.Popen([sys.executable, "-m", "geo.cli", "serve", "--fd", str(sock.fileno()), *options],
                            env=server_env(settings), pass_fds=(sock.fileno(),), stderr=subprocess.DEVNULL)
    sock.close()
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "geo serve exited during start-up"
            try:
                if httpx.get(f"{base}/conformance", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "geo serve did not start"
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_geo_serve_limits_connections_and_idle_keep_alive(tmp_path: Path, provinces_cache: Path) -> None:
    settings = workspace(tmp_path, provinces_cache)
    with geo_serve(settings, "--limit-concurrency", "3", "--timeout-keep-alive", "1") as base:
        # An idle keep-alive connection is closed after the timeout.
        idle = _connect(base)
        idle.sendall(b"GET /conformance HTTP/1.1\r\nHost: test\r\n\r\n")
        began = time.monotonic()
        assert _read_all(idle, limit_s=10).startswith(b"HTTP/1.1 200 ")  # then closed by the server
        assert time.monotonic() - began < 5
        idle.close()
        # Past the connection limit new requests get a 503 instead of piling up.
        held = [_connect(base) for _ in range(3)]
        try:
            assert httpx.get(f"{base}/conformance").status_code == 503
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 10
        while httpx.get(f"{base}/conformance").status_code != 200:  # the server notices the closes
            assert time.monotonic() < deadline
            time.sleep(0.05)


class QuickHeads(GuardedHttpTools):
    """The guarded protocol with a one-second head deadline, for tests."""

    head_timeout_s = 1.0


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.fixture
def guarded_server() -> Iterator[str]:
    """A real uvicorn server running the guarded protocol (4 kB heads, 1 s deadline) in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = uvicorn.Config(_hello, http=QuickHeads, h11_max_incomplete_event_size=4096,
                            log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_slow_request_heads_are_cut_off_while_others_are_served(guarded_server: str) -> None:
    silent = _connect(guarded_server)  # connects and sends nothing
    slow = _connect(guarded_server)
    began = time.monotonic()
    for byte in b"GET / HTTP/1.1\r\nHost: te":  # slowloris: a byte at a time, never finishing
        slow.sendall(bytes([byte]))
        time.sleep(0.02)
    assert httpx.get(guarded_server).text == "hello"  # others are served meanwhile
    for sock in (silent, slow):
        answer = _read_all(sock, limit_s=10)  # closed by the server, after its 408
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        sock.close()
    assert 1.0 <= time.monotonic() - began < 5


def test_oversized_request_heads_are_refused(guarded_server: str) -> None:
    big = _connect(guarded_server)
    big.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
    assert _read_all(big, limit_s=10).startswith(b"HTTP/1.1 400 ")
    big.close()
    assert httpx.get(guarded_server, headers={"X-Fits": "a" * 3000}).text == "hello"


def test_the_head_deadline_does_not_cut_idle_keep_alive_or_slow_apps(guarded_server: str) -> None:
    with httpx.Client(base_url=guarded_server) as client:
        assert client.get("/").text == "hello"
        time.sleep(1.5)  # idle between requests: uvicorn's keep-alive (5 s) applies, not the deadline
        assert client.get("/").text == "hello"


def test_geo_serve_runs_the_guarded_protocol() -> None:
    options = uvicorn_options(build_parser().parse_args(["serve"]))
    assert options["http"] is GuardedHttpTools and options["h11_max_incomplete_event_size"] == 64 * 1024
    assert options["limit_concurrency"] == 1000 and options["timeout_keep_alive"] == 5
