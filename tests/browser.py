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


# Records the Content-Security-Policy's refusals in the page (directive and blocked URI).
WATCH_CSP = ("window.__violations = []; document.addEventListener('securitypolicyviolation', "
             "e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));")


@contextmanager
def recording_page(browser: Any, *, bypass_csp: bool = False, console_errors: bool = False) -> Iterator[Any]:
    """A page in a fresh context that records script errors (`page.errors`; with `console_errors`
    also console errors), requested URLs (`page.requested`) and CSP refusals (`window.__violations`)."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, bypass_csp=bypass_csp)
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    page.errors = []
    page.requested = []
    if console_errors:
        page.on("console", lambda msg: msg.type == "error" and page.errors.append(msg.text))
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("request", lambda req: page.requested.append(req.url))
    try:
        yield page
    finally:
        context.close()


@contextmanager
def keyed_site(folder: Path, provinces_cache: Path) -> Iterator[str]:
    """A real server in `folder` with one API key (so /map has its editor) and no basemap tiles (no
    network), on a copy of the shipped store; yields its base URL, and fails on a traceback in its log."""
    from tests.conftest import KEY, workspace
    from tests.server import live_server

    settings = workspace(folder, provinces_cache, api_keys=KEY, map_tiles="none")
    log = folder / "server.log"
    with live_server(settings, log=log) as url:
        yield url
    assert "Traceback" not in log.read_text()
