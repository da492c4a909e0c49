"""Debian's headless Chromium for the browser tests, driven by Playwright (no browser download)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import require

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying hosts this closed network refuses.
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextmanager
def chromium() -> Iterator[Any]:
    """One headless Chromium, closed afterwards; skips locally (fails in CI) when it is missing."""
    if not Path(CHROMIUM).is_file():
        require("Chromium is not installed (apt-get install chromium; `make test` does it as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require("the playwright package is not installed")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
