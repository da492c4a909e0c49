"""A real server for interop tests: `geo serve` (uvicorn) in a subprocess on a free 127.0.0.1 port.

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
# The process id of each running live server, by base URL (tests that read /proc/<pid> need it).
PIDS: dict[str, int] = {}


def server_pid(base: str) -> int:
    """The process id of the live server answering at `base`."""
    return PIDS[base]


def _env(settings: Settings) -> dict[str, str]:
    # Every setting the test chose, and none of the developer's own GEO_* variables.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEO_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"GEO_{name.upper()}"] = str(value)
    env["GEO_ALLOW_DOWNLOAD"] = "false"
    return env


@contextmanager
def live_server(settings: Settings, startup_limit_s: float = 60.0,
                log: Path | None = None) -> Iterator[str]:
    """Run the service on these settings; yield its base URL; stop it afterwards.

    With `log`, the server's stderr (its log, and any traceback) is written to that file.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    log_file = log.open("ab") if log is not None else None
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    proc = subprocess.Popen(
        # `geo serve`, as deployed: its protocol bounds request heads, and it sets TCP_NODELAY on the
        # inherited socket (plain `uvicorn --fd` leaves Nagle on: 45 ms per request on loopback).
        [sys.executable, "-m", "geo.cli", "serve", "--fd", str(sock.fileno()), "--log-level", "warning",
         "--no-access-log"],
        cwd=ROOT, env=_env(settings), pass_fds=(sock.fileno(),),
        stderr=log_file)
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
        PIDS[base] = proc.pid
        yield base
    finally:
        PIDS.pop(base, None)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log_file is not None:
            log_file.close()
