"""A real server for interop tests: `uvicorn server:app` in a subprocess on a free 127.0.0.1 port.

A subprocess, not a thread: GDAL (through pyogrio) may hold the GIL while it waits for HTTP, which
would starve a server thread in the same interpreter. The socket is bound here and handed over with
`--fd`, so there is no race for the port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from geo.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEO_")}
    env.update(GEO_PROJECTS=str(settings.projects), GEO_LAYERS_DIR=str(settings.layers_dir),
               GEO_API_KEYS=settings.api_keys or "", GEO_ALLOW_DOWNLOAD="false",
               GEO_CORS_ORIGINS=settings.cors_origins, GEO_MAP_TILES=settings.map_tiles)
    if settings.data_mirror is not None:
        env["GEO_DATA_MIRROR"] = str(settings.data_mirror)
    return env


@contextmanager
def live_server(settings: Settings, startup_limit_s: float = 60.0) -> Iterator[str]:
    """Run the service on these settings; yield its base URL; stop it afterwards."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "server:app", "--fd", str(sock.fileno()), "--log-level", "warning",
         "--no-access-log"],
        cwd=ROOT, env=_env(settings), pass_fds=(sock.fileno(),))
    sock.close()
    try:
        # Wait for start-up (a limit, not a measurement: it only turns a hang into a clear failure).
        deadline = time.monotonic() + startup_limit_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode} during start-up")
            try:
                if httpx.get(f"{base}/conformance", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
