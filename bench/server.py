"""Start servers for benchmarks: a free loopback port, uvicorn in a subprocess, time to first answer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(app: str, env: dict[str, str], port: int) -> tuple[subprocess.Popen[bytes], float]:
    """Start uvicorn on `app`; return the process and the seconds until it answered."""
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", app, "--port", str(port), "--log-level",
                             "warning", "--no-access-log"], cwd=ROOT, env={**os.environ, **env})
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/collections", timeout=1).read()
            return proc, time.perf_counter() - began
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"{app} exited with {proc.returncode}") from None
            time.sleep(0.02)
